"""Data-only formats that share checkpoint extensions (``.bin``, ``.sav``) with pickles.

Real packages ship them (gensim's word2vec and fastText binaries, scipy's IDL save files, Core ML
weight blobs) and so do model repositories (SentencePiece's ``tokenizer.model`` / ``spiece.model``,
tiktoken's ``tokenizer.model``, llama.cpp's GGML files from before GGUF).  No pickle-based loader
reads past their first byte (no opcode, one whose argument is invalid, or one that needs a MARK
or stack values: checked, since tiktoken's lines and GGML's magic may begin with one), and none
begins with an archive signature; naming them keeps them from being "content unknown", which
blocks.  Each is recognised by its own header or first records, checked field by field, never by
the extension alone.
"""

from __future__ import annotations

import re
import struct

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.formats.pickle.probe import stops_at_first_opcode

FASTTEXT_MAGIC = 793712314  # 0x2F4F16BA, written first by fastText >= 0.2
WORD2VEC_HEADER = re.compile(rb"\A(\d{1,10}) (\d{1,6})\r?\n")
COREML_WEIGHTS = "com.apple.coreml/weights/"
# fastText's Args as it saves them: dim ws epoch minCount neg wordNgrams loss model bucket minn
# maxn lrUpdateRate (int32 each), then t (double).
FASTTEXT_ARGS = struct.Struct("<12id")
KNOWN = ("idl-save", "fasttext", "word2vec", "coreml-weights", "sentencepiece", "tiktoken",
         "ggml-legacy")
# llama.cpp's formats before GGUF (2023; .bin files of many model repositories): the magic as a
# little-endian uint32 ('ggml' unversioned; 'ggmf', 'ggjt' and the LoRA 'ggla' with a version),
# then int32 hyperparameters starting with the vocabulary size and the embedding width.
GGML_MAGIC = {b"lmgg": False, b"fmgg": True, b"tjgg": True, b"algg": True}
# tiktoken's BPE ranks (Llama 3's tokenizer.model): "<base64 token> <rank>" per line.
TIKTOKEN_LINE = re.compile(rb"[A-Za-z0-9+/]+={0,2} (\d{1,9})\Z")
MIN_TIKTOKEN_LINES = 8
IDENTIFY_BYTES = 4096  # as many as the sniffer reads: a few tokenizer pieces or lines
MIN_PIECES = 2  # complete SentencePiece entries the first bytes must hold
PIECE_TYPES = range(1, 7)  # NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE
MODEL_PROTO_TAGS = (0x0A, 0x12, 0x1A, 0x22, 0x2A)


def _fasttext_args(head: bytes, at: int) -> bool:
    if len(head) < at + FASTTEXT_ARGS.size:
        return False
    dim, ws, epoch, min_count, neg, ngrams, loss, model, bucket, minn, maxn, lr_update, t = \
        FASTTEXT_ARGS.unpack_from(head, at)
    small = (ws, epoch, min_count, neg, ngrams, minn, maxn, lr_update)
    return (0 < dim <= 100_000 and all(0 <= v <= 10_000_000 for v in small) and
            loss in (1, 2, 3, 4) and model in (1, 2, 3) and 0 <= bucket <= 100_000_000 and
            0.0 <= t <= 1.0)


def _varint(data: bytes, at: int) -> tuple[int, int] | None:
    """A protobuf varint at ``at``: (value, offset after it), or None when it runs off the end
    or past ten bytes."""
    value = shift = 0
    for position in range(at, min(at + 10, len(data))):
        byte = data[position]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position + 1
        shift += 7
    return None


def _piece_is_valid(body: bytes) -> bool:
    """One SentencePiece message: its piece (field 1, UTF-8 text), score (field 2, a finite
    float) and type (field 3, 1..6), each at most once, nothing else."""
    at, seen = 0, set()
    while at < len(body):
        tag = body[at]
        if tag in seen:
            return False
        seen.add(tag)
        if tag == 0x0A:
            length = _varint(body, at + 1)
            if length is None or length[1] + length[0] > len(body) or length[0] == 0:
                return False
            try:
                body[length[1]:length[1] + length[0]].decode("utf-8")
            except UnicodeDecodeError:
                return False
            at = length[1] + length[0]
        elif tag == 0x15:
            if at + 5 > len(body) or not abs(struct.unpack_from("<f", body, at + 1)[0]) < 1e30:
                return False
            at += 5
        elif tag == 0x18:
            kind = _varint(body, at + 1)
            if kind is None or kind[0] not in PIECE_TYPES:
                return False
            at = kind[1]
        else:
            return False
    return 0x0A in seen


def _sentencepiece(head: bytes) -> bool:
    """A SentencePiece ModelProto (``spiece.model``, ``tokenizer.model`` of T5, Llama 2,
    Mistral, Gemma): protobuf whose first fields are its pieces (field 1, one message each).
    The first complete pieces must all be well formed; a piece cut off by the end of ``head``
    is not judged."""
    at = complete = 0
    while at < len(head) and head[at] == 0x0A:
        length = _varint(head, at + 1)
        if length is None or length[0] == 0:
            break
        end = length[1] + length[0]
        if end > len(head):
            break  # cut off by the end of the sniffed bytes
        if not _piece_is_valid(head[length[1]:end]):
            return False
        complete += 1
        at = end
    # What follows is the end, a piece cut off, or the next field of a ModelProto (trainer,
    # normalizer, self-test and denormalizer specs: fields 2-5, length-delimited).
    return complete >= MIN_PIECES and (at == len(head) or head[at] in MODEL_PROTO_TAGS) \
        and stops_at_first_opcode(head)  # 0x0A is no opcode: always


def _tiktoken(head: bytes) -> bool:
    """tiktoken BPE ranks: every complete line a base64 token and its rank, ranks increasing,
    and no pickle loader reading past the first byte (a line may begin with an opcode that reads
    on, as SHORT_BINSTRING's 'U' skips bytes, and lead the loader past the bytes judged here)."""
    if not stops_at_first_opcode(head):
        return False
    lines = head.split(b"\n")[:-1]  # the last one may be cut off
    if len(lines) < MIN_TIKTOKEN_LINES:
        return False
    last = -1
    for line in lines:
        match = TIKTOKEN_LINE.match(line)
        if match is None or int(match.group(1)) <= last:
            return False
        last = int(match.group(1))
    return True


def _ggml_legacy(head: bytes) -> bool:
    versioned = GGML_MAGIC.get(head[:4])
    if versioned is None or len(head) < 16:
        return False
    at = 4
    if versioned:
        if not 1 <= struct.unpack_from("<I", head, 4)[0] <= 3:
            return False
        at = 8
    if head[:4] == b"algg":  # LoRA adapter: rank and alpha
        rank, alpha = struct.unpack_from("<ii", head, at)
        return 0 < rank <= 65_536 and 0 < alpha <= 1_000_000 and stops_at_first_opcode(head)
    vocab, width = struct.unpack_from("<ii", head, at)
    return 0 < vocab <= 1_000_000 and 0 < width <= 100_000 and stops_at_first_opcode(head)


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
    if _sentencepiece(head):
        return "sentencepiece"
    if _tiktoken(head):
        return "tiktoken"
    if _ggml_legacy(head):
        return "ggml-legacy"
    return None


def parse(artifact: Artifact, ctx: ParseContext) -> ParseOutput:
    head = artifact.source.read(0, IDENTIFY_BYTES)
    kind = identify(head, "/".join(artifact.chain)) or "unknown"
    output = ParseOutput(format=kind)
    output.add("data.file", artifact.location, format=kind, size=artifact.source.size)
    return output
