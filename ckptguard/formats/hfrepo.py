"""Hugging Face style repository folders, judged as one unit (format ``hf-repo``).

Every file in the folder is also scanned as its own artifact; this parser looks at what only the
folder as a whole says: which code ``trust_remote_code`` would import (``auto_map``,
``custom_pipelines``, references to code in *other* repositories), what that code does (AST
analysis in ``pycode``), the chat templates in tokenizer/processor configs (where loaders find
them: ``hfrepo_sources``), and pickle weights shipped
beside an equivalent safetensors file.  Nothing is imported, rendered or executed.

Facts: ``hfrepo.auto_map``, ``hfrepo.remote_code``, ``hfrepo.chat_template``,
``hfrepo.pickle_beside_safetensors``, ``pycode.*`` (see ``pycode``), ``template.*`` (from the
template analysis), ``parse.error``, ``limit.hit``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ckptguard.engine.namelists import load_list_file
from ckptguard.engine.ruleset import rules_directory
from ckptguard.facts import Artifact, Fact, ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.formats.hfrepo_sources import (
    MODEL_INDEX,
    TEMPLATE_FILES,
    chat_templates,
    model_index_components,
    module_file,
    reference_configs,
)
from ckptguard.formats.hfrepo_weights import pickle_beside_safetensors
from ckptguard.formats.pycode import CodeLists, analyse_python, code_lists
from ckptguard.fsguard import containment_root, inside
from ckptguard.limits import Limits
from ckptguard.model import Location

SKIP_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".cache", "node_modules"})
CODE_LIST = "remote_code_calls"
CAPABILITY_LIST = "remote_code_capabilities"
SAFE_CALLS_LIST = "remote_code_safe_calls"
MAX_REFERENCES = 1_000


@dataclass(frozen=True)
class CodeRef:
    """One class a config asks ``trust_remote_code`` to load."""

    config: str  # the JSON file that names it
    key: str  # e.g. auto_map.AutoModel
    reference: str  # as written: "modeling_x.MyModel" or "owner/repo--modeling_x.MyModel"
    repo: str | None  # the other repository, for "repo--module.Class"
    module: str
    class_name: str
    file: str = ""  # the module's file in the folder (resolved beside the config or at the root)


@dataclass
class _Repo:
    root: Path
    prefix: str  # how the folder is shown: "path/to/repo/"
    limits: Limits
    output: ParseOutput

    def where(self, relative: str, **kw: Any) -> Location:
        return Location((self.prefix + relative,)).within(**kw) if kw else \
            Location((self.prefix + relative,))

    def read_text(self, relative: str) -> str | None:
        path = self.root / relative
        if not inside(path, containment_root(self.root)):
            return None  # a link out of the folder: reported by the walk (FSY002), never read
        try:
            size = path.stat().st_size
        except OSError as exc:
            self.output.add("parse.error", self.where(relative), format="text", file=relative,
                            error=f"cannot read: {exc.strerror}", offset=None, read=0)
            return None
        if size > self.limits.max_text_file_bytes:
            self.output.add("limit.hit", self.where(relative), limit="max_text_file_bytes",
                            value=size, detail=f"{relative} ({size} bytes) was not analysed")
            return None
        with path.open("rb") as handle:
            data = handle.read(self.limits.max_text_file_bytes)
        return data.decode("utf-8", "replace")

    def read_json(self, relative: str) -> Any:
        text = self.read_text(relative)
        if text is None:
            return None
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as exc:
            self.output.add("parse.error", self.where(relative), format="json", file=relative,
                            error=f"invalid JSON: {exc}"[:300], offset=None, read=len(text))
            return None


def list_files(root: Path, limit: int) -> tuple[list[str], bool]:
    """Relative POSIX paths of the regular files under ``root`` (sorted), and whether the file
    count limit cut the listing short.  Symlinked folders are not followed."""
    found: list[str] = []
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        here = Path(directory)
        for name in sorted(filenames):
            if len(found) >= limit:
                return found, True
            path = here / name
            if path.is_file():
                found.append(path.relative_to(root).as_posix())
    return found, False


def split_reference(reference: str) -> tuple[str | None, str, str] | None:
    """``(repo, module, class)`` from ``"[repo--]module.Class"``, or None when malformed."""
    repo: str | None = None
    text = reference
    if "--" in text:
        repo, _, text = text.partition("--")
    module, dot, class_name = text.rpartition(".")
    if not dot or not module or not class_name:
        return None
    return repo, module, class_name


def code_references(config_name: str, data: Any) -> Iterator[CodeRef]:
    """Classes named by ``auto_map`` and ``custom_pipelines`` in one config file."""
    if not isinstance(data, dict):
        return
    entries: list[tuple[str, Any]] = []
    auto_map = data.get("auto_map")
    if isinstance(auto_map, dict):
        entries += [(f"auto_map.{k}", v) for k, v in auto_map.items()]
    pipelines = data.get("custom_pipelines")
    if isinstance(pipelines, dict):
        for task, spec in pipelines.items():
            if isinstance(spec, dict):
                entries += [(f"custom_pipelines.{task}.{k}", v) for k, v in spec.items()
                            if k in ("impl", "pt", "tf") and isinstance(v, (str, list))]
    for key, value in entries[:MAX_REFERENCES]:
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str):
                continue  # tokenizers list [slow, fast] with null for a missing one
            parts = split_reference(item)
            if parts is not None:
                yield CodeRef(config_name, key, item, parts[0], parts[1], parts[2])


def parse(artifact: Artifact, context: ParseContext) -> ParseOutput:
    output = ParseOutput(format="hf-repo")
    if artifact.directory is None:
        output.add("parse.error", artifact.location, format="hf-repo",
                   error="not a folder", offset=None, read=0)
        return output
    repo = _Repo(Path(artifact.directory), artifact.chain[0] if artifact.chain[0].endswith("/")
                 else artifact.chain[0] + "/", context.limits, output)
    files, truncated = list_files(repo.root, context.limits.max_repo_files)
    if truncated:
        output.add("limit.hit", artifact.location, limit="max_repo_files", value=len(files),
                   detail=f"only the first {len(files)} files of the folder were considered")
    refs = _references(repo, files)
    _code(repo, files, refs)
    _templates(repo, files)
    for pickle_name, safe_name in pickle_beside_safetensors(files):
        output.add("hfrepo.pickle_beside_safetensors", repo.where(pickle_name),
                   pickle=pickle_name, safetensors=safe_name)
    return output


def _references(repo: _Repo, files: list[str]) -> list[CodeRef]:
    refs: list[CodeRef] = []
    present = set(files)
    for name in reference_configs(files):
        data = repo.read_json(name)
        found = list(code_references(name, data))
        if posixpath.basename(name) == MODEL_INDEX:
            for key, path, class_name in model_index_components(data, present):
                module = path[:-3].replace("/", ".")
                found.append(CodeRef(name, key, f"{module}.{class_name}", None, module,
                                     class_name))
        for ref in found:
            path = module_file(ref.config, ref.module, present)
            refs.append(dataclasses.replace(ref, file=path))
            repo.output.add("hfrepo.auto_map", repo.where(name, key=ref.key), config=name,
                            key=ref.key, reference=ref.reference, remote=ref.repo is not None,
                            repo=ref.repo, module=ref.module, class_name=ref.class_name,
                            module_file=path, present=ref.repo is None and path in present)
    local = sorted({r.reference for r in refs if r.repo is None})
    if local:
        configs = sorted({r.config for r in refs if r.repo is None})
        repo.output.add("hfrepo.remote_code", repo.where(configs[0]), references=tuple(local),
                        configs=tuple(configs), listing=", ".join(local),
                        config_listing=", ".join(configs))
    return refs


def load_code_lists() -> CodeLists:
    """The denylist, the capability modules and the known-safe calls for repository code."""
    folder = rules_directory() / "lists"
    return code_lists(load_list_file(folder / f"{CODE_LIST}.yaml"),
                      load_list_file(folder / f"{CAPABILITY_LIST}.yaml"),
                      load_list_file(folder / f"{SAFE_CALLS_LIST}.yaml"))


def _code(repo: _Repo, files: list[str], refs: list[CodeRef]) -> None:
    python_files = [name for name in files if name.endswith(".py")]
    if not python_files:
        return
    lists = load_code_lists()
    entries: dict[str, set[str]] = {}
    for ref in refs:
        if ref.repo is None:
            entries.setdefault(ref.file or ref.module.replace(".", "/") + ".py",
                               set()).add(ref.class_name)
    for name in python_files:
        source = repo.read_text(name)
        if source is None:
            continue
        repo.output.facts.extend(analyse_python(source, name, repo.where(name), lists,
                                                entry_classes=frozenset(entries.get(name, ()))))


def _templates(repo: _Repo, files: list[str]) -> None:
    from ckptguard.templates import analyse_template

    for name in files:
        if name.rsplit("/", 1)[-1] not in TEMPLATE_FILES:
            continue
        for template_name, template in chat_templates(repo.read_json(name)):
            key = "chat_template" if template_name == "default" else \
                f"chat_template.{template_name}"
            where = repo.where(name, key=key)
            repo.output.add("hfrepo.chat_template", where, name=template_name,
                            length=len(template), file=name)
            facts: list[Fact] = analyse_template(template, where, repo.limits,
                                                 origin=f"{name}:{key}")
            repo.output.facts.extend(facts)
