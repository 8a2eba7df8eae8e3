"""TensorFlow Lite flatbuffers ("TFL3"): operator codes (custom ops), subgraphs, tensors,
buffers and metadata, read with a bounded FlatBuffers reader.  Nothing is interpreted."""

from __future__ import annotations

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.formats.flatbuffer import FlatBuffer, FlatError, Table

CUSTOM = 32  # BuiltinOperator.CUSTOM
# Model table fields.
VERSION, OPERATOR_CODES, SUBGRAPHS, DESCRIPTION, BUFFERS, METADATA = 0, 1, 2, 3, 4, 6
LICENSE_FIELD = 5  # ModelMetadata.license in TFLITE_METADATA ("M001")
MAX_OPERATORS = 10_000_000
MAX_OPERATOR_CODES = 10_000  # the builtin op set is ~200; each code becomes a fact
MAX_VALUE = 500


class _TFLite:
    def __init__(self, artifact: Artifact, ctx: ParseContext) -> None:
        self.artifact = artifact
        self.ctx = ctx
        self.out = ParseOutput(format="tflite")
        self.where = artifact.location
        self.buf = artifact.source.view()
        self.fb = FlatBuffer(self.buf)

    def violation(self, problem: str, detail: str) -> None:
        self.out.add("tflite.violation", self.where, problem=problem, detail=detail)

    def run(self) -> None:
        if bytes(self.buf[4:8]) != b"TFL3":
            self.violation("identifier", "file identifier at byte 4 is not 'TFL3'")
            return
        model = self.fb.root()
        codes = self.operator_codes(model)
        buffers = self.fb.tables(model, BUFFERS)
        tensors, operators = self.subgraphs(model, len(codes), len(buffers))
        self.buffers(buffers)
        self.metadata(model, buffers)
        self.out.add("tflite.header", self.where, version=self.fb.scalar(model, VERSION, "<I"),
                     operator_codes=len(codes), subgraphs=len(self.fb.tables(model, SUBGRAPHS)),
                     tensors=tensors, operators=operators, buffers=len(buffers),
                     description=(self.fb.string(model, DESCRIPTION) or "")[:MAX_VALUE])

    def operator_codes(self, model: Table) -> list[Table]:
        codes = self.fb.tables(model, OPERATOR_CODES)
        if len(codes) > MAX_OPERATOR_CODES:
            self.out.add("limit.hit", self.where, limit="tflite operator codes",
                         value=len(codes), detail=f"only the first {MAX_OPERATOR_CODES} "
                                                  "operator codes were judged")
        for index, code in enumerate(codes[:MAX_OPERATOR_CODES]):
            builtin = max(self.fb.scalar(code, 0, "<b"), self.fb.scalar(code, 3, "<i"))
            custom = self.fb.string(code, 1)
            where = self.where.within(key=f"operator_codes[{index}]")
            if builtin == CUSTOM or custom is not None:
                name = custom or ""
                tf_op = name[4:] if name.startswith("Flex") else ""
                self.out.add("tflite.op", where, builtin_code=builtin, custom=True,
                             name=name[:MAX_VALUE], tf_op=tf_op, index=index)
            else:
                self.out.add("tflite.op", where, builtin_code=builtin, custom=False,
                             name=f"builtin:{builtin}", tf_op="", index=index)
        return codes

    def subgraphs(self, model: Table, n_codes: int, n_buffers: int) -> tuple[int, int]:
        tensor_total = operator_total = 0
        for index, graph in enumerate(self.fb.tables(model, SUBGRAPHS)):
            tensors = self.fb.tables(graph, 0)
            tensor_total += len(tensors)
            for tensor in tensors:
                buffer = self.fb.scalar(tensor, 2, "<I")
                if buffer >= max(n_buffers, 1):
                    self.violation("buffer-index", f"subgraph {index}: a tensor names buffer "
                                                   f"{buffer} of {n_buffers}")
                    break
            start, count = self.fb.vector(graph, 3, 4)
            operator_total += count
            if operator_total > MAX_OPERATORS:
                self.out.add("limit.hit", self.where, limit="tflite operators",
                             value=operator_total, detail="too many operators to check")
                break
            for k in range(count):
                op = self.fb.table(start + 4 * k + self.fb.u32(start + 4 * k))
                opcode = self.fb.scalar(op, 0, "<I")
                if opcode >= n_codes:
                    self.violation("opcode-index", f"subgraph {index}: operator {k} uses "
                                                   f"opcode {opcode} of {n_codes}")
                    break
        return tensor_total, operator_total

    def buffers(self, buffers: list[Table]) -> None:
        size = len(self.buf)
        for index, buffer in enumerate(buffers):
            self.fb.vector(buffer, 0, 1)  # bounds-checks inline data
            offset = self.fb.scalar(buffer, 1, "<Q")
            length = self.fb.scalar(buffer, 2, "<Q")
            if offset > 1 and offset + length > size:
                self.violation("buffer-range", f"buffer {index} claims bytes {offset}.."
                                               f"{offset + length} of a {size}-byte file")

    def buffer_bytes(self, buffers: list[Table], index: int) -> bytes:
        if index >= len(buffers):
            self.violation("buffer-index", f"metadata names buffer {index} of {len(buffers)}")
            return b""
        start, count = self.fb.vector(buffers[index], 0, 1)
        return bytes(self.buf[start:start + count])

    def metadata(self, model: Table, buffers: list[Table]) -> None:
        for entry in self.fb.tables(model, METADATA):
            name = self.fb.string(entry, 0) or ""
            data = self.buffer_bytes(buffers, self.fb.scalar(entry, 1, "<I"))
            where = self.where.within(key=f"metadata.{name}")
            value = ""
            if name == "min_runtime_version":
                value = data.rstrip(b"\0").decode("utf-8", "replace")[:MAX_VALUE]
            self.out.add("tflite.metadata", where, name=name[:MAX_VALUE], value=value,
                         size=len(data))
            if name == "TFLITE_METADATA" and len(data) >= 8:
                self.model_metadata(data, where)

    def model_metadata(self, data: bytes, where: object) -> None:
        inner = FlatBuffer(data)
        try:
            table = inner.root()
            license_text = inner.string(table, LICENSE_FIELD, MAX_VALUE)
        except FlatError as exc:
            self.violation("metadata", f"TFLITE_METADATA is malformed: {exc}")
            return
        if license_text:
            self.out.add("metadata.license", self.where.within(key="TFLITE_METADATA.license"),
                         value=license_text, source="tflite:TFLITE_METADATA.license",
                         key="license")


ASSOCIATED_FILES = "<associated files>"


def parse(artifact: Artifact, ctx: ParseContext) -> ParseOutput:
    tfl = _TFLite(artifact, ctx)
    try:
        tfl.run()
    except FlatError as exc:
        tfl.violation("flatbuffer", str(exc))
    # TFLite models with metadata carry their associated files (labels, vocabularies) as a zip
    # archive appended to the flatbuffer: scan it as a member, like any archive.
    from ckptguard.formats.zipfmt.reader import has_end_record

    if has_end_record(artifact.source):
        tfl.out.children.append(artifact.child(ASSOCIATED_FILES, artifact.source,
                                               format_hint="zip"))
    return tfl.out
