"""Hard limits that bound every parser whatever the input claims.  Hitting one is a finding."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_pickle_opcodes: int = 5_000_000
    max_pickle_stack: int = 100_000
    max_pickle_memo: int = 1_000_000
    max_pickle_nesting: int = 200  # MARK / containers nested inside each other
    max_pickles_per_stream: int = 1_000
    max_nested_pickle_depth: int = 4  # pickles carried as bytes inside pickles
    max_archive_depth: int = 6  # archives within archives
    max_archive_members: int = 100_000
    max_member_size: int = 2 * 1024**3  # bytes decompressed into memory for one member
    max_total_decompressed: int = 8 * 1024**3  # per top-level artifact, all nesting levels
    max_decompressed_in_memory: int = 256 * 1024**2  # the rest goes to temporary files
    max_compression_ratio: int = 200
    max_header_bytes: int = 100 * 1024**2  # safetensors/GGUF/JSON headers read into memory
    max_text_file_bytes: int = 10 * 1024**2  # configs, cards, code, templates
    max_template_nodes: int = 200_000
    max_repo_files: int = 100_000
    max_tree_depth: int = 64  # folders below a scanned folder


DEFAULT_LIMITS = Limits()
