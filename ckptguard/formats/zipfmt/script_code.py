"""Facts for the TorchScript code files of an archive that ``torch.jit.load`` compiles."""

from __future__ import annotations

from ckptguard.facts import ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.formats.torchscript_code import analyse
from ckptguard.formats.zipfmt.members import Member
from ckptguard.model import Location


def script_code_facts(member: Member, relative: str, where: Location, ctx: ParseContext,
                      output: ParseOutput) -> None:
    """``torchscript.class`` and ``torchscript.call`` facts for one code file, or a
    ``torchscript.unread`` fact when it is too large, not UTF-8 or not parseable."""
    size = member.source.size
    if size > ctx.limits.max_text_file_bytes:
        output.add("torchscript.unread", where, file=relative,
                   reason=f"{size} bytes, over the {ctx.limits.max_text_file_bytes}-byte limit")
        return
    try:
        module = analyse(relative, member.source.read(0, size).decode("utf-8"))
    except (UnicodeDecodeError, SyntaxError, ValueError, RecursionError) as exc:
        output.add("torchscript.unread", where, file=relative,
                   reason=f"{type(exc).__name__}: {exc}"[:300])
        return
    for item in module.classes:
        output.add("torchscript.class", where.within(line=item.line), qualname=item.qualname,
                   file=relative, setstate=item.setstate, line=item.line)
    for call in module.calls:
        output.add("torchscript.call", where.within(line=call.line), name=call.name,
                   file=relative, line=call.line, function=call.function,
                   at_load=call.function == "__setstate__",
                   when=("while the archive loads (__setstate__)"
                         if call.function == "__setstate__" else "when the model runs"),
                   namespace=call.namespace,
                   custom=call.custom)
