"""ckptguard: static safety and license scanning of machine-learning checkpoints."""

from __future__ import annotations

__version__ = "0.1.0"

from ckptguard.api import ScanError, scan
from ckptguard.config import Config
from ckptguard.model import Finding, ScanResult, Severity

__all__ = ["Config", "Finding", "ScanError", "ScanResult", "Severity", "__version__", "scan"]
