"""ckptguard: static safety and license scanning of machine-learning checkpoints."""

from __future__ import annotations

__version__ = "0.1.0"

from ckptguard.api import ScanError, scan  # noqa: E402
from ckptguard.config import Config  # noqa: E402
from ckptguard.model import Finding, ScanResult, Severity  # noqa: E402

__all__ = ["Config", "Finding", "ScanError", "ScanResult", "Severity", "__version__", "scan"]
