"""Renderers: pure functions ``render(result, ...) -> str``, one module per output format."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ckptguard.model import ScanResult

Renderer = Callable[[ScanResult], str]

RENDERERS: tuple[str, ...] = ("text", "json", "sarif")


def renderer(name: str) -> Renderer:
    if name not in RENDERERS:
        raise ValueError(f"unknown report format {name!r}")
    module = importlib.import_module(f"ckptguard.report.{name}_report")
    render: Renderer = module.render
    return render
