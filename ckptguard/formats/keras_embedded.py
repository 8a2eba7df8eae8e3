"""What a Keras config carries that the loader deserializes or calls beyond layers.

- ``TorchModuleWrapper`` (Keras 3, torch backend) stores its wrapped ``torch.nn.Module`` as a
  base64 ``torch.save`` archive in the layer config, and ``from_config`` hands it to
  ``torch.load(weights_only=False)``; Keras before 3.11.2 did so even in safe mode (keras-team/keras
  #21575).  The archive is decoded (bounded) and scanned as a child artifact: the layer's finding
  names it as ``nested_artifact`` and so is judged by what the archive holds.
- Serialized functions (a Lambda's ``function``, any ``{"class_name": "function"}`` object) that
  name a Keras API function: the ones that load another model, switch safe mode off or download
  files are listed in ``rules/lists/keras_loader_functions.yaml`` and judged by rule KER008.

Nothing is unpickled or imported: decoding base64 is the only transformation.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Protocol

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.limits import Limits
from ckptguard.model import Location
from ckptguard.source import MemorySource

TORCH_WRAPPER = "TorchModuleWrapper"


class Emit(Protocol):
    def __call__(self, kind: str, path: str, **attrs: Any) -> None: ...


def is_torch_wrapper(class_name: str) -> bool:
    return class_name == TORCH_WRAPPER or class_name.endswith(">" + TORCH_WRAPPER)


def _encoded_module(config: dict[str, Any]) -> tuple[str | None, str]:
    """The base64 text of the wrapped module, or None and why it cannot be had."""
    value = config.get("module")
    if isinstance(value, dict) and value.get("class_name") == "__bytes__":
        inner = value.get("config")
        value = inner.get("value") if isinstance(inner, dict) else None
    if isinstance(value, str):
        return value, ""
    if value is None:
        return None, "no module in the layer config"
    return None, f"the module is a JSON {type(value).__name__}, not base64 text"


def torch_wrapper(emit: Emit, output: ParseOutput, artifact: Artifact | None, where: Location,
                  limits: Limits, node: dict[str, Any], path: str) -> None:
    """Facts (and the child artifact) for one ``TorchModuleWrapper`` layer."""
    config = node.get("config")
    config = config if isinstance(config, dict) else {}
    layer = str(config.get("name", ""))
    text, problem = _encoded_module(config)
    size = 0
    member = ""
    if text is not None:
        if len(text) // 4 * 3 > limits.max_member_size:
            problem = f"the encoded module ({len(text)} characters) is over max_member_size"
            output.add("limit.hit", where.within(key=path), limit="max_member_size",
                       value=len(text), detail=f"{path}: TorchModuleWrapper module not decoded")
        else:
            try:
                raw = base64.b64decode(text.encode("ascii"), validate=True)
            except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
                problem = f"invalid base64: {exc}"[:200]
            else:
                size = len(raw)
                if artifact is not None:
                    member = f"<TorchModuleWrapper {layer or path}>"
                    output.children.append(artifact.child(member, MemorySource(raw)))
                else:
                    problem = "decoded but not scanned (no artifact to attach it to)"
    emit("keras.torch_module", path, layer=layer, encoded_size=len(text or ""), size=size,
         nested_artifact=member, problem=problem or "none",
         keras_module=str(node.get("module") or ""))


def function_reference(node: dict[str, Any]) -> str | None:
    """``module.name`` of a serialized Keras 3 function object, if the node is one."""
    if node.get("class_name") != "function":
        return None
    module, name = node.get("module"), node.get("config")
    if isinstance(module, str) and module and isinstance(name, str) and name:
        return f"{module}.{name}"
    return None


def safe_mode_argument(lambda_config: dict[str, Any]) -> str:
    """What a Lambda passes as ``safe_mode`` to its function (``arguments``), as text."""
    arguments = lambda_config.get("arguments")
    if isinstance(arguments, dict) and "safe_mode" in arguments:
        return str(arguments["safe_mode"]).lower()
    return "unset"
