"""Where the probes run and on how many threads: pure decisions, then one call that applies them.

On a shared machine, torch's default of one thread per core oversubscribes the CPU and makes
probes many times slower; the thread count follows the cores that are actually free.
"""

from __future__ import annotations

from ckptguard.cpus import free_cores, idle_cores

__all__ = ["DeviceError", "choose_device", "configure", "free_cores"]


class DeviceError(ValueError):
    pass


def choose_device(requested: str, cuda_available: bool) -> str:
    """``auto`` picks CUDA when present; asking for CUDA without it is an error, not a fallback."""
    if requested == "auto":
        return "cuda" if cuda_available else "cpu"
    if requested == "cuda" and not cuda_available:
        raise DeviceError("--device cuda was requested but CUDA is not available")
    if requested not in ("cpu", "cuda"):
        raise DeviceError(f"unknown device {requested!r} (expected auto, cpu or cuda)")
    return requested


def configure(requested: str, seed: int) -> str:
    """Apply the device choice, thread count and seeds to torch; returns the device used."""
    import torch

    device = choose_device(requested, torch.cuda.is_available())
    torch.set_num_threads(idle_cores())
    torch.manual_seed(seed)
    if device == "cuda":
        torch.cuda.manual_seed_all(seed)
    return device
