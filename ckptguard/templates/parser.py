"""A standalone Jinja template file (``chat_template.jinja``, ``*.j2``) as an artifact."""

from __future__ import annotations

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.templates.analysis import analyse_template


def parse(artifact: Artifact, ctx: ParseContext) -> ParseOutput:
    out = ParseOutput(format="jinja")
    size = artifact.source.size
    if size > ctx.limits.max_text_file_bytes:
        out.add("limit.hit", artifact.location, limit="max_text_file_bytes", value=size,
                detail=f"template file of {size} bytes was not analysed")
        return out
    raw = artifact.source.read(0, size)
    text = raw.decode("utf-8", errors="replace")
    if "\ufffd" in text and b"\xef\xbf\xbd" not in raw:
        out.add("parse.error", artifact.location, format="jinja", error="not valid UTF-8",
                offset=0, read=size)
    out.facts.extend(analyse_template(text, artifact.location, ctx.limits,
                                      origin=artifact.name))
    return out
