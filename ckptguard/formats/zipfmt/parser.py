"""The zip parser: structure facts, routing by content (pytorch-zip, torchscript, keras, npz, zip)
and members handed on as children.

A torch checkpoint costs its central directory and its pickle records: storage records
(``<root>/data/<key>``) are never read, only sliced into ``TensorRef``s when weights are wanted.
"""

from __future__ import annotations

from dataclasses import replace

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.formats.torchscript_code import module_name
from ckptguard.formats.zipfmt.endrecords import examine
from ckptguard.formats.zipfmt.layout import KERAS_CHILD_HINTS, TORCH_METADATA, Layout, classify
from ckptguard.formats.zipfmt.members import (
    Member,
    child_name,
    open_member,
    structure_facts,
)
from ckptguard.formats.zipfmt.reader import Directory, Entry, ZipError, read_directory
from ckptguard.formats.zipfmt.script_code import script_code_facts
from ckptguard.formats.zipfmt.tensors import StorageIndex, add_tensor_refs
from ckptguard.sniff import _looks_like_pickle

SMALL_RECORD = 64  # torch metadata records (version, byteorder) are a few bytes


def parse(artifact: Artifact, ctx: ParseContext) -> ParseOutput:
    output = ParseOutput(format="zip")
    where = artifact.location
    source = artifact.source
    try:
        directory = read_directory(source, max_entries=ctx.limits.max_archive_members,
                                   max_bytes=ctx.limits.max_header_bytes)
    except ZipError as exc:
        output.add("parse.error", where, format="zip", error=str(exc), offset=exc.offset,
                   read=min(source.size, 65557))
        return output
    if directory.cut_at is not None:
        output.add("limit.hit", where, limit="max_archive_members", value=directory.cut_at,
                   detail=f"the central directory lists {directory.declared_entries} entries; "
                          f"only the first {directory.cut_at} were read")
    copy_of = structure_facts(directory, where, output, source.read(0, 4096))
    layout = classify([e.name for e in directory.entries])
    output.format = layout.format
    route = _Router(artifact, directory, layout, copy_of, ctx, output)
    route.run()
    _other_directories(artifact, directory, route, ctx, output)
    return output


def _other_directories(artifact: Artifact, primary: Directory, route: _Router, ctx: ParseContext,
                       output: ParseOutput) -> None:
    """Where readers could take another central directory, say so and judge its members too
    (those the loaders' directory does not already hold), as children named after it."""
    found = examine(artifact.source, primary, max_entries=ctx.limits.max_archive_members,
                    max_bytes=ctx.limits.max_header_bytes)
    if not found.reasons:
        return
    output.add("zip.end_record_ambiguous", artifact.location, reasons=found.reasons,
               detail="; ".join(found.reasons), directories=1 + len(found.alternates))
    known = {(e.raw_name, e.header_offset) for e in primary.entries}
    for alternate in found.alternates:
        entries = tuple(e for e in alternate.entries if (e.raw_name, e.header_offset) not in known)
        known.update((e.raw_name, e.header_offset) for e in entries)
        seen: dict[bytes, int] = {}
        copy_of: dict[int, int] = {}
        for entry in entries:
            copy_of[entry.position] = seen.get(entry.raw_name, 0)
            seen[entry.raw_name] = copy_of[entry.position] + 1
        other = _Router(artifact, replace(alternate, entries=entries),
                        classify([e.name for e in alternate.entries]), copy_of, ctx, output,
                        prefix=f"<directory @{alternate.end_offset}>/")
        other.run()


class _Router:
    """Hands each member on according to the archive's layout (one parse, then discarded)."""

    def __init__(self, artifact: Artifact, directory: Directory, layout: Layout,
                 copy_of: dict[int, int], ctx: ParseContext, output: ParseOutput, *,
                 prefix: str = "") -> None:
        self.artifact = artifact
        self.directory = directory
        self.layout = layout
        self.copy_of = copy_of
        self.ctx = ctx
        self.output = output
        self.prefix = prefix  # children of another candidate directory are named after it
        self.budget = ctx.scan_budget()  # shared by every directory and nesting level
        self.opened: dict[tuple[int, int, int, int, int], Member | None] = {}

    def open(self, entry: Entry, *, verify_crc: bool) -> Member | None:
        # Entries that share one local header (an overlapping-entry bomb) share one
        # decompression: the same bytes are read from the same place.
        key = (entry.header_offset, entry.method, entry.compressed_size, entry.size, entry.crc)
        if key in self.opened:
            first = self.opened[key]
            return None if first is None else Member(entry, first.source, first.stored)
        member = open_member(self.artifact.source, entry, self.artifact.location, self.ctx,
                             self.budget, self.output, verify_crc=verify_crc)
        self.opened[key] = member
        return member

    def hand_on(self, member: Member, hint: str | None, loader: str | None = None) -> Artifact:
        name = self.prefix + child_name(member.entry, self.copy_of.get(member.entry.position, 0))
        child = self.artifact.child(name, member.source, format_hint=hint, loader=loader)
        self.output.children.append(child)
        return child

    def run(self) -> None:
        if self.layout.format in ("pytorch-zip", "torchscript"):
            self.torch()
            return
        for entry in self.directory.entries:
            if entry.name.endswith("/") and entry.size == 0:
                continue  # a folder record
            hint = KERAS_CHILD_HINTS.get(entry.name) if self.layout.format == "keras" else None
            member = self.open(entry, verify_crc=True)
            if member is not None:
                self.hand_on(member, hint)

    def torch(self) -> None:
        layout, where = self.layout, self.artifact.location
        storages: dict[str, Entry] = {}
        big_endian = False
        data_pickle: Artifact | None = None
        entries = self.directory.entries
        relatives = layout.relatives([e.name for e in entries])
        # torch.load hands an archive to torch.jit.load exactly when it has constants.pkl.
        scripted = "constants.pkl" in relatives
        loader = "torchscript" if scripted else None
        copy_of = self.copy_of
        for entry, relative in zip(entries, relatives, strict=True):
            # torch.save names storage records by number (data/0, data/1, ...); anything else
            # under data/ is no storage, and is read and judged like any other record.
            if relative is not None and relative.startswith("data/") and \
                    relative[5:].isdigit() and copy_of.get(entry.position, 0) == 0:
                storages[relative[5:]] = entry  # never read here: sliced only for weights
                continue
            if entry.name.endswith("/") and entry.size == 0:
                continue
            member = self.open(entry, verify_crc=True)
            if member is None:
                continue
            if relative in TORCH_METADATA and member.source.size <= SMALL_RECORD:
                if relative == "byteorder":
                    big_endian = member.source.read(0, SMALL_RECORD).strip() == b"big"
                continue
            is_pickle = relative is not None and (
                relative.endswith((".pkl", ".debug_pkl")) or layout.expected_pickle(relative))
            is_pickle = is_pickle or _looks_like_pickle(member.source.read(0, 64))
            if scripted and not is_pickle and relative is not None and \
                    module_name(relative) is not None:
                script_code_facts(member, relative, where.child(entry.name), self.ctx,
                                  self.output)
            child = self.hand_on(member, "pickle" if is_pickle else None,
                                 loader if is_pickle else None)
            if is_pickle and not (relative is not None and layout.expected_pickle(relative)):
                self.output.add("torch.extra_pickle", where.child(entry.name), name=entry.name,
                                layout=layout.format, root=layout.root)
            if relative == "data.pkl" and self.copy_of.get(entry.position, 0) == 0:
                data_pickle = child
        if self.ctx.want_tensors and data_pickle is not None and not self.prefix:
            index = StorageIndex(self.artifact.source, storages)
            add_tensor_refs(data_pickle, index, big_endian, where, self.ctx, self.output)
