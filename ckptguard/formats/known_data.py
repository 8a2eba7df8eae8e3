"""Data-only formats that share checkpoint extensions (``.bin``, ``.sav``) with pickles.

Real packages ship them (gensim's word2vec and fastText binaries, scipy's IDL save files, Core ML
weight blobs).  None of them begins with a pickle opcode or an archive signature, so no
pickle-based loader can read them (``pickle.load`` stops at the first byte); naming them keeps
them from being "content unknown", which blocks.  Each is recognised by its own header, checked
field by field, never by the extension alone.
"""

from __future__ import annotations

import re
import struct

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext

FASTTEXT_MAGIC = 793712314  # 0x2F4F16BA, written first by fastText >= 0.2
WORD2VEC_HEADER = re.compile(rb"\A(\d{1,10}) (\d{1,6})\r?\n")
COREML_WEIGHTS = "com.apple.coreml/weights/"
# fastText's Args as it saves them: dim ws epoch minCount neg wordNgrams loss model bucket minn
# maxn lrUpdateRate (int32 each), then t (double).
FASTTEXT_ARGS = struct.Struct("<12id")
KNOWN = ("idl-save", "fasttext", "word2vec", "coreml-weights")


def _fasttext_args(head: bytes, at: int) -> bool:
    if len(head) < at + FASTTEXT_ARGS.size:
        return False
    dim, ws, epoch, min_count, neg, ngrams, loss, model, bucket, minn, maxn, lr_update, t = \
        FASTTEXT_ARGS.unpack_from(head, at)
    small = (ws, epoch, min_count, neg, ngrams, minn, maxn, lr_update)
    return (0 < dim <= 100_000 and all(0 <= v <= 10_000_000 for v in small) and
            loss in (1, 2, 3, 4) and model in (1, 2, 3) and 0 <= bucket <= 100_000_000 and
            0.0 <= t <= 1.0)


def identify(head: bytes, name: str) -> str | None:
    """The data format these first bytes (at least 64 of them) declare, or None."""
    if head[:2] == b"SR" and head[2:4] in (b"\x00\x04", b"\x00\x06"):
        return "idl-save"
    if len(head) >= 8 and struct.unpack_from("<i", head)[0] == FASTTEXT_MAGIC and \
            struct.unpack_from("<i", head, 4)[0] in range(1, 100) and _fasttext_args(head, 8):
        return "fasttext"
    if _fasttext_args(head, 0):
        return "fasttext"  # before 0.2: the same arguments with no magic or version
    if WORD2VEC_HEADER.match(head):
        return "word2vec"
    if COREML_WEIGHTS in name.lower().replace("\\", "/") and len(head) >= 8 and \
            struct.unpack_from("<I", head, 4)[0] == 2:
        return "coreml-weights"
    return None


def parse(artifact: Artifact, ctx: ParseContext) -> ParseOutput:
    head = artifact.source.read(0, 128)
    kind = identify(head, "/".join(artifact.chain)) or "unknown"
    output = ParseOutput(format=kind)
    output.add("data.file", artifact.location, format=kind, size=artifact.source.size)
    return output
