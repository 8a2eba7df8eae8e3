"""KER001's evidence: the strings of a Lambda's marshalled code, decoded from base64 with or
without line breaks, read from marshal's string records (never unmarshalled)."""

from __future__ import annotations

import base64
import codecs
import marshal

import pytest

from ckptguard.formats.keras_fmt import bytecode_names, marshal_strings

# Built here from source text (never from a scanned file): the bytes Keras would store.
CODE = marshal.dumps(compile("lambda x: open('/canary/path', 'w').write('pwned')", "<lambda>",
                             "eval"))


@pytest.mark.parametrize("encoded", [base64.b64encode(CODE).decode(),
                                     codecs.encode(CODE, "base64").decode()],
                         ids=["one-line", "line-broken"])
def test_base64_code_is_decoded_and_its_strings_listed(encoded: str) -> None:
    encoding, names, size = bytecode_names(encoded)
    assert encoding == "base64" and size == len(CODE)
    assert {"/canary/path", "pwned", "open", "write"} <= set(names)
    # Record boundaries, not printable runs: no marshal type byte glued to a name.
    assert "pwned)" not in names and "<module>r" not in names


def test_marshal_strings_skips_records_that_are_not_text() -> None:
    assert marshal_strings(b"z\x05hello" + b"z\x04\x00\x01\x02\x03" + b"\xda\x04okay") == \
        ["hello", "okay"]
