"""Text from scanned files made safe to emit: names, keys and metadata in a hostile file may hold
lone surrogates (undecodable bytes), terminal control sequences, bidirectional overrides that
reorder what a reader sees (U+202E), or Markdown/HTML that a viewer would render.

- ``printable``: for the text report (a terminal): controls and invisible format characters
  written as ``\\x1b`` / ``\\u202e``;
- ``scrub``: for JSON and SARIF: every string encodable, controls (but newline and tab) and
  invisible format characters written as escapes;
- ``markdown_escaped``: for text a Markdown renderer will show (SARIF ``message.text`` on GitHub);
- ``uri_path``: a path as URI text that names the real file, undecodable bytes percent-encoded.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

# C0 and C1 control characters, DEL included: what a terminal may act on.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Characters that change how text around them is displayed without being visible themselves:
# bidirectional embeddings, overrides and isolates, marks, zero-width characters, line and
# paragraph separators, the byte-order mark.
_INVISIBLE = "\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
_UNSAFE = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_INVISIBLE}]")
_UNSAFE_KEEP_LINES = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{_INVISIBLE}]")
# Markdown and HTML syntax: a backslash before any of these shows the character itself.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]<>()#+!|~&])")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


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
    """Encodable, with control and invisible format characters written as escapes: safe to
    print to a terminal and to read as it is."""
    return _UNSAFE.sub(_escape, encodable(text))


def neutral(text: str) -> str:
    """Encodable, with control and invisible format characters escaped, newlines and tabs kept:
    for JSON and SARIF strings."""
    if text.isascii() and text.isprintable():
        return text
    return _UNSAFE_KEEP_LINES.sub(_escape, encodable(text))


def markdown_escaped(text: str) -> str:
    """``text`` (already neutral) with Markdown and HTML syntax backslash-escaped, so a viewer
    that renders Markdown shows the characters instead of acting on them."""
    return _MARKDOWN.sub(r"\\\1", text)


def uri_path(path: str, safe: str = "/") -> str:
    """``path`` percent-encoded for a URI; a name that is not valid UTF-8 (held as lone
    surrogates, Python's ``surrogateescape``) is encoded from its real bytes."""
    try:
        raw = path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no file name decodes to: keep it visible
        raw = path.encode("utf-8", "backslashreplace")
    return quote(raw, safe=safe)


def scrub(value: Any) -> Any:
    """A JSON-ready structure with every string (keys included) made neutral."""
    if isinstance(value, str):
        return neutral(value)
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value
