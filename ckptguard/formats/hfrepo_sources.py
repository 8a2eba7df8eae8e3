"""Where loaders find code references and chat templates in a repository folder.

- ``auto_map`` is read from every top-level JSON config and, in subfolders (``from_pretrained(...,
  subfolder=...)`` and diffusers components), from the config files the ``Auto*`` classes read
  there: ``processor_config.json`` and ``preprocessor_config.json`` (feature extractors, image
  and video processors).  A subfolder with its own ``config.json`` or ``tokenizer_config.json``
  is discovered as a repository of its own and judged there.
- diffusers' ``model_index.json`` names each component as ``[library, class]``; when the
  library is a Python file in the repository (``<component>/<library>.py`` or ``<library>.py``)
  diffusers imports it with ``trust_remote_code``, and ``_class_name`` may name a pipeline module
  the same way.
- Chat templates: ``chat_template`` in ``tokenizer_config.json``, ``chat_template.json`` and
  ``processor_config.json`` (a string, a list of ``{name, template}``, or a ``{name: template}``
  mapping); standalone ``chat_template.jinja`` and ``additional_chat_templates/*.jinja`` files
  are scanned as ``jinja`` artifacts in their own right, and GGUF templates by the GGUF parser.
"""

from __future__ import annotations

import posixpath
from typing import Any

from ckptguard.discover import REPO_MARKERS

TEMPLATE_FILES = ("tokenizer_config.json", "chat_template.json", "processor_config.json")
SUBFOLDER_CONFIGS = frozenset({"config.json", "tokenizer_config.json", "processor_config.json",
                               "preprocessor_config.json", "video_preprocessor_config.json"})
MODEL_INDEX = "model_index.json"


def reference_configs(files: list[str]) -> list[str]:
    """The JSON files whose ``auto_map``/``custom_pipelines`` a loader may follow.  A subfolder
    holding a repository marker (``config.json``, ``tokenizer_config.json``, ...) is discovered
    and judged as a repository of its own, so only unmarked subfolders are read here."""
    own_repos = {posixpath.dirname(n) for n in files
                 if "/" in n and posixpath.basename(n) in REPO_MARKERS}
    found = []
    for name in files:
        if not name.endswith(".json") or name.endswith(".index.json"):
            continue
        if "/" not in name or (posixpath.basename(name) in SUBFOLDER_CONFIGS and
                               posixpath.dirname(name) not in own_repos):
            found.append(name)
    return found


def module_file(config: str, module: str, present: set[str]) -> str:
    """The file a module reference resolves to: beside its config when it exists there (a
    subfolder's own code), otherwise at the repository root."""
    relative = module.replace(".", "/") + ".py"
    folder = posixpath.dirname(config)
    beside = posixpath.join(folder, relative) if folder else relative
    return beside if beside in present else relative


def model_index_components(data: Any, present: set[str]) -> list[tuple[str, str, str]]:
    """``(key, module file, class)`` for every component or pipeline in a diffusers
    ``model_index.json`` whose library is a Python file of the repository."""
    if not isinstance(data, dict):
        return []
    found: list[tuple[str, str, str]] = []
    for key, value in data.items():
        if not (isinstance(value, list) and len(value) == 2 and
                all(isinstance(v, str) and v for v in value)):
            continue
        library, class_name = value
        stem = library.replace(".", "/")
        candidates = [f"{stem}.py"] if key == "_class_name" else [f"{key}/{stem}.py",
                                                                  f"{stem}.py"]
        for candidate in candidates:
            if candidate in present:
                found.append((f"model_index.{key}", candidate, class_name))
                break
    return found


def chat_templates(data: Any) -> list[tuple[str, str]]:
    """``(name, template)`` pairs from a config's ``chat_template``: a string, a list of
    ``{name, template}`` or a ``{name: template}`` mapping."""
    value = data.get("chat_template") if isinstance(data, dict) else None
    if isinstance(value, str):
        return [("default", value)]
    found: list[tuple[str, str]] = []
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and isinstance(item.get("template"), str):
                found.append((str(item.get("name", "default")), item["template"]))
    elif isinstance(value, dict):
        found = [(str(k), v) for k, v in value.items() if isinstance(v, str)]
    return found
