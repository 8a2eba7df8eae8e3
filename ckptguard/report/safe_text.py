"""Text from scanned files made safe to emit: names, keys and metadata in a hostile file may hold
lone surrogates (undecodable bytes) or terminal control sequences."""

from __future__ import annotations

import re
from typing import Any

# C0 and C1 control characters, DEL included: what a terminal may act on.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def encodable(text: str) -> str:
    """The text with anything UTF-8 cannot encode (lone surrogates) written as ``\\udc80``."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def printable(text: str) -> str:
    """Encodable, and with control characters written as ``\\x1b``: safe to print."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", encodable(text))


def scrub(value: Any) -> Any:
    """A JSON-ready structure with every string (keys included) made encodable."""
    if isinstance(value, str):
        return encodable(value)
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value
