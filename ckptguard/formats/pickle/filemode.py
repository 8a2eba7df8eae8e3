"""Judge the stream as a *file-reading* unpickler reads it too (``torch.load``, ``pickle.load``,
joblib), when that can differ from the in-memory reading the interpreter follows: a FRAME whose
rest a file reader never reads (see ``reader.file_reading``) hides different opcodes from each.
The other reading is handed on as a child pickle, ``<read from a file>``, judged like any other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.formats.pickle.reader import FRAME_CODE, file_reading
from ckptguard.source import MemorySource

if TYPE_CHECKING:
    from ckptguard.formats.pickle.parser import StreamResult

CHILD_NAME = "<read from a file>"
DETAIL = ("a FRAME is left partly unread by an unpickler reading from a file (torch.load, "
          "pickle.load, joblib): it reads the next opcode's argument from after the frame, "
          "while pickle.loads and pickletools read on inside it; both readings were judged")


def may_differ(buf: memoryview, result: StreamResult) -> bool:
    """Cheap test: only a stream holding a FRAME byte, whose in-memory reading crossed a frame,
    failed, or went on past a STOP, can be read differently from a file."""
    if not (result.trace.divergences or result.error or result.pickles > 1 or
            result.trailing_offset >= 0):
        return False
    return FRAME_CODE in buf


def add_file_reading(buf: memoryview, result: StreamResult, artifact: Artifact,
                     ctx: ParseContext, output: ParseOutput) -> None:
    if not may_differ(buf, result):
        return
    alternate = file_reading(buf, ctx.limits.max_pickles_per_stream)
    if alternate is None:
        return
    output.add("pickle.divergence", artifact.location.within(offset=0), offset=0, detail=DETAIL)
    output.children.append(artifact.child(CHILD_NAME, MemorySource(alternate),
                                          format_hint="pickle"))
