"""A standalone chat-template file (``chat_template.jinja``, ``additional_chat_templates/*.jinja``)
as an artifact.  Other Jinja files (web pages, site generators) legitimately use ``request``,
``self`` and ``{% include %}``; they are left alone, not judged as chat templates."""

from __future__ import annotations

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.templates.analysis import analyse_template

CHAT_TEMPLATE_FOLDER = "additional_chat_templates"


def is_chat_template(chain: tuple[str, ...]) -> bool:
    parts = chain[-1].replace("\\", "/").lower().split("/") if chain else [""]
    return "chat_template" in parts[-1] or CHAT_TEMPLATE_FOLDER in parts[:-1]


def parse(artifact: Artifact, ctx: ParseContext) -> ParseOutput:
    out = ParseOutput(format="jinja")
    if not is_chat_template(artifact.chain):
        return out
    size = artifact.source.size
    if size > ctx.limits.max_text_file_bytes:
        out.add("limit.hit", artifact.location, limit="max_text_file_bytes", value=size,
                detail=f"template file of {size} bytes was not analysed")
        return out
    text = artifact.source.read(0, size).decode("utf-8", errors="replace")
    out.facts.extend(analyse_template(text, artifact.location, ctx.limits,
                                      origin=artifact.name))
    return out
