"""Which kind of zip this is, from its member names (never from the file name).

torch's reader takes the folder of the *first* entry as the archive's root and looks every record
up below it (``<root>/data.pkl``, ``<root>/data/<key>``), whatever that folder is called.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Records of a torch.save zip that are not pickles and not storages (relative to the root).
TORCH_METADATA = frozenset({"version", ".format_version", "byteorder", ".storage_alignment",
                            ".data/version", ".data/serialization_id"})
KERAS_CHILD_HINTS = {"config.json": "keras-config", "metadata.json": "keras-metadata"}


@dataclass(frozen=True)
class Layout:
    format: str  # pytorch-zip, torchscript, keras, npz or zip
    root: str = ""  # torch layouts: the folder every record lives in

    def relative(self, name: str) -> str | None:
        """A member name below the torch root, or None for a member outside it."""
        prefix = self.root + "/"
        return name[len(prefix):] if self.root and name.startswith(prefix) else None

    def relatives(self, names: Sequence[str]) -> list[str | None]:
        """``relative`` of each name, in one pass (archives list tens of thousands)."""
        if not self.root:
            return [None] * len(names)
        prefix = self.root + "/"
        cut = len(prefix)
        return [name[cut:] if name.startswith(prefix) else None for name in names]

    def expected_pickle(self, relative: str) -> bool:
        """Whether torch itself writes a pickle under this name."""
        if relative == "data.pkl":
            return True
        if self.format == "torchscript":
            # traced_inputs.pkl: the example inputs torch.jit.trace keeps (torch >= 2.1).
            return relative in ("constants.pkl", "attributes.pkl", "traced_inputs.pkl") or \
                relative.endswith(".debug_pkl")
        return False


def classify(names: Sequence[str]) -> Layout:
    if not names:
        return Layout("zip")
    root, slash, _ = names[0].partition("/")
    present = set(names)
    if slash and root:
        code = any(n.startswith(f"{root}/code/") for n in names)
        if f"{root}/constants.pkl" in present or code:
            return Layout("torchscript", root)
        if f"{root}/data.pkl" in present:
            return Layout("pytorch-zip", root)
    if "config.json" in present and ("model.weights.h5" in present or "metadata.json" in present):
        return Layout("keras")
    if all(n.endswith(".npy") for n in names):
        return Layout("npz")
    return Layout("zip")
