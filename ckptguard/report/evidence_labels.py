"""How evidence reads in the text report: human labels for evidence keys, which keys hold code,
which say why a name is dangerous, and which values mean "nothing to say".

JSON and SARIF keep the raw keys (they are a contract); only the text report relabels.
"""

from __future__ import annotations

# Evidence that is source code (or a reconstructed call): shown as an indented code block, in
# this order of preference (the first present is shown as code).
CODE_KEYS: tuple[str, ...] = ("decompiled", "snippet", "reconstruction")

# Evidence explaining why the named thing is dangerous: shown as the finding's "why".
WHY_KEYS: tuple[str, ...] = ("qualname_why", "name_why", "op_why", "tf_op_why")

# Keys whose content another line already says, or that only make sense to a machine.
HIDDEN_KEYS: frozenset[str] = frozenset({
    "raw",  # the name as spelled in the stream; the resolved name is shown
    "origin",  # repeated in the message
    "owner",
})

# Offsets and counts where a negative value means "not applicable".
NOT_APPLICABLE_NEGATIVE: frozenset[str] = frozenset({
    "trailing_offset", "offset", "first_flat_index", "line", "index",
})

# Flags shown only when set.
FLAGS: frozenset[str] = frozenset({
    "truncated", "dynamic", "stored_as_bytes", "on_global", "custom",
})

LABELS: dict[str, str] = {
    "actual": "actual value",
    "agreeing_signals": "agreeing signals",
    "argument": "argument",
    "base_license": "base model license",
    "base_model": "base model",
    "builtin_code": "builtin op code",
    "callee": "called function",
    "central": "central directory name",
    "changed_fraction": "changed fraction",
    "class_name": "class",
    "code": "extension code",
    "code_size": "bytecode size (bytes)",
    "configs": "configuration files",
    "consumer": "consuming tensor",
    "consumer_column_z": "consumer column z",
    "copies": "copies",
    "custom": "custom op",
    "declared": "declared license",
    "declared_in": "declared in",
    "dtype": "dtype",
    "dynamic": "reached dynamically",
    "effective_rank": "effective rank",
    "excess_kurtosis": "excess kurtosis",
    "expected": "expected value",
    "first_flat_index": "first element index",
    "formats": "formats",
    "function": "in function",
    "head": "first bytes (hex)",
    "helper": "helper",
    "joblib_arrays": "joblib arrays",
    "layout": "layout",
    "license": "license",
    "licenses": "licenses",
    "limit": "limit reached",
    "local": "local header name",
    "median_row_norm": "median row norm",
    "missing": "missing",
    "module": "module",
    "most_affected_row": "most affected row",
    "most_changed_row": "most changed row",
    "name_why": "why",
    "names": "strings in the code",
    "nested_artifact": "nested artifact",
    "next_unit_z": "next unit z",
    "on_global": "on a global",
    "op": "op",
    "op_type": "op type",
    "op_why": "why",
    "opcode": "opcode",
    "opcodes": "opcodes",
    "occurrences": "occurrences",
    "qualname": "callable",
    "qualname_why": "why",
    "read": "bytes read",
    "read_as": "read as",
    "reason": "reason",
    "reconstruction": "call",
    "registered_name": "registered name",
    "relative_delta_norm": "relative change norm",
    "resolved": "resolves to",
    "resolved_via": "reached through",
    "row_max_abs_z": "row max |z|",
    "row_norm": "row norm",
    "row_share_threshold": "row share threshold",
    "rows_changed": "rows changed",
    "scope": "runs at",
    "share_threshold": "share threshold",
    "singular_values": "singular values",
    "stored_as_bytes": "stored as bytes",
    "strong_threshold": "strong threshold",
    "tf_op": "TensorFlow op",
    "tf_op_why": "why",
    "top_direction_share": "top direction share",
    "top_rows_share": "top rows share",
    "top_share": "top share",
    "top_share_threshold": "top share threshold",
    "trailing_bytes": "trailing bytes",
    "trailing_kind": "trailing content",
    "trailing_offset": "trailing data at byte",
    "truncated": "truncated",
    "unread": "bytes left unread",
    "use": "used as",
    "value": "value",
}


def label(key: str) -> str:
    """The human label of an evidence key: a known label, else the key with spaces."""
    return LABELS.get(key, key.replace("_", " "))


def says_nothing(key: str, value: str) -> bool:
    """True when the value carries no information worth a line."""
    text = value.strip()
    if not text or text in ("None", "null", "()", "[]", "{}"):
        return True
    if key in FLAGS and text in ("False", "0"):
        return True
    return key in NOT_APPLICABLE_NEGATIVE and text.startswith("-") and text[1:].isdigit()


def shown_value(key: str, value: str) -> str:
    """Flags read as words."""
    if key in FLAGS and value in ("True", "1"):
        return "yes"
    return value
