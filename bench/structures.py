"""Structure-aware generators of zip, tar and pickle inputs for bench/differential.py and
bench/fuzz_structured.py: valid containers first, then the shapes where readers disagree
(hidden end records, ZIP64 locators, pax sizes, unknown and sparse tar types, FRAMEs that cut
arguments), then a few byte mutations in the structural parts.

Payloads are the fixtures' protocol-0 ``touch <canary>`` pickles with a canary path that does
not exist; nothing here ever runs them (the pickle oracle uses inert stubs).
"""

from __future__ import annotations

import random
import struct
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fixtures import differentials as d  # noqa: E402
from fixtures.basic_formats import plain_data_pickle  # noqa: E402
from fixtures.containers import canary_pickle, zip_bytes  # noqa: E402

CANARY = Path("/nonexistent/ckptguard-fuzz/CANARY")
NAMES = ["archive/data.pkl", "archive/version", "archive/data/0", "archive/byteorder", "a.txt",
         "A.TXT", "dir/", "../escape.pkl", "model.pkl", "archive/extra.pkl"]


def member_data(rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:
        return plain_data_pickle()
    if kind == 1:
        return canary_pickle(CANARY)
    if kind == 2:
        return rng.randbytes(rng.randrange(0, 300))
    return b"3\n"


def records(rng: random.Random) -> list[tuple[str, bytes]]:
    return [(rng.choice(NAMES), member_data(rng)) for _ in range(rng.randrange(1, 6))]


def mutate_tail(data: bytes, rng: random.Random, count: int) -> bytes:
    """Flip bytes in the last 300 bytes (end record, central directory, trailing headers)."""
    out = bytearray(data)
    for _ in range(count):
        if not out:
            break
        at = rng.randrange(max(0, len(out) - 300), len(out))
        out[at] = rng.choice((0, 0xFF, rng.randrange(256), out[at] ^ (1 << rng.randrange(8))))
    return bytes(out)


def random_zip(rng: random.Random) -> bytes:
    shape = rng.randrange(8)
    method = rng.choice((zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED))
    if shape == 0:
        data = d.hidden_directory_zip(records(rng), records(rng))
    elif shape == 1:
        data = d.zip64_split_zip(records(rng), records(rng))
    else:
        data = zip_bytes(records(rng), method)
    if shape == 2:  # a comment, sometimes holding signatures
        comment = rng.choice((b"", b"PK\x05\x06", b"PK\x01\x02", rng.randbytes(30)))
        data = data[:-2] + struct.pack("<H", len(comment) + rng.choice((0, 0, 5))) + comment
    elif shape == 3:  # data before the archive
        data = rng.randbytes(rng.randrange(1, 64)) + data
    elif shape == 4:  # data after the archive
        data = data + rng.choice((b"PK\x05\x06", rng.randbytes(rng.randrange(1, 40))))
    if rng.random() < 0.4:
        data = mutate_tail(data, rng, rng.randrange(1, 4))
    return data


def _tar_member(rng: random.Random) -> bytes:
    payload = member_data(rng)
    kind = rng.randrange(10)
    name = rng.choice(("model.pkl", "a.txt", "dir", "data/0", "x" * 120))[:99]
    if kind == 0:  # pax size (smaller, larger, equal, nonsense)
        size = rng.choice((0, len(payload), len(payload) + 512, -1))
        pax = d.pax_record("size", str(size) if size >= 0 else "abc")
        if rng.random() < 0.5:
            pax += d.pax_record("path", "renamed.pkl")
        hidden = d.tar_header("inner.pkl", len(payload)) + d.padded(payload)
        return (d.tar_header("pax", len(pax), b"x") + d.padded(pax)
                + d.tar_header(name, len(hidden)) + hidden)
    if kind == 1:  # global header
        pax = d.pax_record(rng.choice(("path", "size", "comment")), str(rng.randrange(600)))
        return d.tar_header("g", len(pax), b"g") + d.padded(pax)
    if kind == 2:  # GNU long name or link
        long = ("L" * rng.randrange(100, 300)).encode() + b"\x00"
        return (d.tar_header("././@LongLink", len(long), rng.choice((b"L", b"K")))
                + d.padded(long) + d.tar_header(name, len(payload)) + d.padded(payload))
    if kind == 3:
        return d.unknown_type_tar(payload, rng.choice((b"Z", b"A", b"V", b"M")))[:-1024]
    if kind == 4:
        return d.old_sparse_tar(payload, rng.choice((0, 0, 100)))[:-1024]
    if kind == 5:  # folder or link that declares a size
        return d.tar_header(name, rng.choice((0, 512)), rng.choice((b"5", b"1", b"2")),
                            link="target")
    return d.tar_header(name, len(payload), rng.choice((b"0", b"\x00", b"7"))) + d.padded(payload)


def random_tar(rng: random.Random) -> bytes:
    data = b"".join(_tar_member(rng) for _ in range(rng.randrange(1, 6)))
    data += bytes(rng.choice((0, 512, 1024)))
    if rng.random() < 0.3:
        out = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(out))
            out[at] = rng.randrange(256)
        data = bytes(out)
    return data


def _frame(length: int) -> bytes:
    return b"\x95" + length.to_bytes(8, "little")


def random_pickle(rng: random.Random) -> bytes:
    """Opcode chunks, FRAMEs of honest or lying lengths, a payload somewhere."""
    chunks = [b"\x80" + bytes([rng.randrange(6)])] if rng.random() < 0.8 else []
    pool = [b"K\x01", b"]", b"(", b")", b"N", b"0", b"t", b"\x85", b"a", b"e", b"}", b"s",
            b"X\x03\x00\x00\x00abc", b"B" + bytes([rng.randrange(40)]) + bytes(3),
            b"C\x05hello", b"\x8c\x02os\x8c\x06system\x93", b"cos\nsystem\n", b"R",
            b"\x94", b"h\x00", b"q\x00", canary_pickle(CANARY)[:-1], b"V" + b"x" * 30 + b"\n"]
    for _ in range(rng.randrange(1, 12)):
        chunks.append(rng.choice(pool))
    body = b"".join(chunks[1:]) if chunks and chunks[0][:1] == b"\x80" else b"".join(chunks)
    head = chunks[0] if chunks and chunks[0][:1] == b"\x80" else b""
    if rng.random() < 0.5:  # a FRAME around part of the body, honest or not
        cut = rng.randrange(len(body) + 1)
        length = rng.choice((cut, max(0, cut - rng.randrange(1, 5)), cut + rng.randrange(1, 5)))
        body = _frame(length) + body[:cut] + body[cut:]
    data = head + body + b"."
    if rng.random() < 0.3:
        data += canary_pickle(CANARY)  # a second pickle after the first
    return data
