"""GGUF value types and ggml tensor types (block size, bytes per block), from the GGUF spec and
ggml's type table.  Removed types (Q4_2, Q4_3, the 4x4/4x8/8x8 repacks) are not listed: a file
using them is not loadable by current readers."""

from __future__ import annotations

from collections.abc import Mapping

# GGUF metadata value types -> (name, fixed size in bytes or 0 for string/array).
VALUE_TYPES: Mapping[int, tuple[str, int]] = {
    0: ("uint8", 1), 1: ("int8", 1), 2: ("uint16", 2), 3: ("int16", 2), 4: ("uint32", 4),
    5: ("int32", 4), 6: ("float32", 4), 7: ("bool", 1), 8: ("string", 0), 9: ("array", 0),
    10: ("uint64", 8), 11: ("int64", 8), 12: ("float64", 8),
}
STRUCT_CODES: Mapping[int, str] = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i",
                                   6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9

# ggml type id -> (name, elements per block, bytes per block).  Q8_1 follows ggml-common.h
# (two halves + 32 quants = 36 bytes); gguf-py's table says 40, but no file stores Q8_1 tensors.
GGML_TYPES: Mapping[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66), 39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18),
}
NUMPY_NAMES: Mapping[str, str] = {"F32": "float32", "F16": "float16", "BF16": "bfloat16",
                                  "F64": "float64", "I8": "int8", "I16": "int16",
                                  "I32": "int32", "I64": "int64"}
MAX_DIMS = 4  # GGML_MAX_DIMS
DEFAULT_ALIGNMENT = 32
