"""Hard limits that bound every parser whatever the input claims.  Hitting one is a finding."""

from __future__ import annotations

from dataclasses import dataclass, replace

# What one memo entry costs the symbolic interpreter at most (a dict slot, its key and the
# reference), used to turn the memory budget into an entry count.
MEMO_ENTRY_BYTES = 96


@dataclass(frozen=True)
class Limits:
    # Opcode and memo counts are floors: ``for_pickle_stream`` scales them with the stream, since
    # every opcode takes at least one byte, so a count bounded by the stream's size is linear
    # work, and a large plain-data pickle must parse rather than fail closed.
    max_pickle_opcodes: int = 5_000_000
    max_pickle_stack: int = 100_000
    max_pickle_memo: int = 1_000_000
    pickle_memory_budget: int = 1024**3  # bytes the memo of one stream may take
    max_pickle_line: int = 256 * 1024**2  # one protocol-0 text argument (C has no bound)
    scale_pickle_limits: bool = True  # False: the two counts above are exact caps
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

    def for_pickle_stream(self, stream_bytes: int) -> Limits:
        """These limits with the opcode and memo bounds scaled to a stream of this size: at
        least the configured floors, at most one opcode per byte and as many memo entries as
        the memory budget holds."""
        if not self.scale_pickle_limits:
            return self
        opcodes = max(self.max_pickle_opcodes, stream_bytes)
        memo_cap = max(self.max_pickle_memo, self.pickle_memory_budget // MEMO_ENTRY_BYTES)
        memo = min(max(self.max_pickle_memo, stream_bytes // 2), memo_cap)
        if opcodes == self.max_pickle_opcodes and memo == self.max_pickle_memo:
            return self
        return replace(self, max_pickle_opcodes=opcodes, max_pickle_memo=memo)


DEFAULT_LIMITS = Limits()
