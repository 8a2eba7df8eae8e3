"""Name handling: Python 2 import fixes, where a dotted getattr walk lands, and well-known names
the interpreter treats specially (deserializers, torch rebuild helpers, joblib wrappers)."""

from __future__ import annotations

import re
import sys
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING

# Module names a dotted attribute walk can reach through another module's namespace
# (``torch.nn.modules.module.os.system`` reaches ``os.system``).
WALK_MODULES: frozenset[str] = frozenset(sys.stdlib_module_names) | frozenset(
    {"__builtin__", "dill", "joblib", "cPickle", "commands", "torch", "numpy", "cloudpickle"})


def fix_imports(module: str, name: str, proto: int) -> tuple[str, str]:
    """What CPython imports for ``module``/``name`` (``fix_imports`` applies below protocol 3)."""
    if proto >= 3:
        return module, name
    mapped = NAME_MAPPING.get((module, name))
    if mapped is not None:
        return mapped
    return IMPORT_MAPPING.get(module, module), name


def walk_target(name: str) -> str | None:
    """For a dotted attribute path, the part starting at the last segment that names a module."""
    parts = name.split(".")
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] in WALK_MODULES:
            return ".".join(parts[index:])
    return None


def canonical(qualname: str) -> str:
    """Aliases that behave the same for the interpreter's resolution (C modules, Python 2)."""
    module, _, name = qualname.rpartition(".")
    return f"{_MODULE_ALIASES.get(module, module)}.{name}" if module else qualname


_MODULE_ALIASES = {"__builtin__": "builtins", "_operator": "operator", "_functools": "functools",
                   "copy_reg": "copyreg", "_pickle": "pickle", "cPickle": "pickle",
                   "_importlib": "importlib", "importlib._bootstrap": "importlib"}

# Callables that deserialize their bytes argument; True when those bytes are a pickle.
DESERIALIZERS: dict[str, bool] = {
    "pickle.loads": True, "pickle._loads": True, "dill.loads": True, "dill._dill.loads": True,
    "numpy.loads": True, "numpy.core.numeric.loads": True, "numpy.ma.loads": True,
    "torch.storage._load_from_bytes": True, "joblib.numpy_pickle.load": True,
    "cloudpickle.loads": True, "pandas.read_pickle": True,
    "marshal.loads": False, "pickle.load": True, "dill.load": True, "torch.load": True,
    "joblib.load": True, "numpy.load": True,
}

# Unpickler classes: bytes handed to their constructor (in a BytesIO) are read by .load().
UNPICKLERS = frozenset({"pickle.Unpickler", "pickle._Unpickler", "_pickle.Unpickler",
                        "dill.Unpickler", "dill._dill.Unpickler", "cloudpickle.Unpickler"})

# Loaders that accept more than a pickle (a torch zip, a joblib or NumPy file): the bytes handed
# to them are sniffed like any artifact instead of being read as a pickle.
SNIFFING_LOADERS = frozenset({"torch.storage._load_from_bytes", "torch.load", "joblib.load",
                              "joblib.numpy_pickle.load", "numpy.load"})

TORCH_REBUILD = frozenset({"torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor",
                           "torch._utils._rebuild_tensor_v3"})
TORCH_PARAMETER = frozenset({"torch._utils._rebuild_parameter",
                             "torch._utils._rebuild_parameter_with_state",
                             "torch.nn.parameter.Parameter"})

_STORAGE_DTYPES = {
    "Float": "float32", "Double": "float64", "Half": "float16", "BFloat16": "bfloat16",
    "Long": "int64", "Int": "int32", "Short": "int16", "Char": "int8", "Byte": "uint8",
    "Bool": "bool", "ComplexFloat": "complex64", "ComplexDouble": "complex128",
    "QInt8": "qint8", "QUInt8": "quint8", "QInt32": "qint32", "Untyped": "uint8",
}
_TORCH_DTYPES = {
    "float32": "float32", "float": "float32", "float64": "float64", "double": "float64",
    "float16": "float16", "half": "float16", "bfloat16": "bfloat16", "int64": "int64",
    "long": "int64", "int32": "int32", "int": "int32", "int16": "int16", "short": "int16",
    "int8": "int8", "uint8": "uint8", "bool": "bool", "complex64": "complex64",
    "complex128": "complex128", "float8_e4m3fn": "float8_e4m3fn", "float8_e5m2": "float8_e5m2",
}

JOBLIB_WRAPPERS = frozenset({"joblib.numpy_pickle.NumpyArrayWrapper",
                             "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper"})
JOBLIB_OLD_WRAPPERS = frozenset({"joblib.numpy_pickle.NDArrayWrapper",
                                 "joblib.numpy_pickle.ZNDArrayWrapper",
                                 "joblib.numpy_pickle_compat.NDArrayWrapper",
                                 "joblib.numpy_pickle_compat.ZNDArrayWrapper",
                                 "sklearn.externals.joblib.numpy_pickle.NDArrayWrapper",
                                 "sklearn.externals.joblib.numpy_pickle.ZNDArrayWrapper"})


def storage_dtype(qualname: str) -> str:
    """numpy-style dtype name for a torch storage class or dtype global ("unknown" otherwise)."""
    last = qualname.rpartition(".")[2]
    if last.endswith("Storage"):
        return _STORAGE_DTYPES.get(last[:-len("Storage")], "unknown")
    if qualname.startswith("torch."):
        return _TORCH_DTYPES.get(last, "unknown")
    return "unknown"


# An enum member's name as PEP 8 and the standard library write them: upper-case letters,
# digits and underscores.  Methods and properties of a class are lower-case or dunder, so a
# name of this shape reached on an allowlisted enum class is one of its members, never code.
MEMBER_NAME = re.compile(r"[A-Z][A-Z0-9_]*\Z")


def member_owner(module: str, name: str) -> str | None:
    """The class ``module.Cls`` when ``name`` is ``Cls.MEMBER`` (an attribute of a class with a
    member-like name, as ``getattr(Cls, 'MEMBER')`` or a dotted global reach it); else None."""
    owner, dot, last = name.rpartition(".")
    if not dot or not owner or not MEMBER_NAME.match(last):
        return None
    return f"{module}.{owner}" if module else owner
