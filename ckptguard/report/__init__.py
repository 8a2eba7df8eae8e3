"""Renderers: pure functions ``render(result, ...) -> str``, one module per output format.

``renderer(name)(result)`` renders with defaults.  ``render_report(name, result, **options)``
passes each renderer only the keyword options it accepts, so a caller can offer every option
(``colour``, ``rules``, ``category``, ``root``) to whichever format was chosen:

- ``rules``: the rule table (``RuleSet.rules``) describing the findings; SARIF loads the shipped
  rules when it is omitted, JSON adds a ``rules`` section when given, text names rules in hints;
- ``colour`` (text): ANSI colours, for a terminal;
- ``category`` (SARIF): ``automationDetails.id``; ``root`` (SARIF): the scan's absolute root.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from ckptguard.model import ScanResult

Renderer = Callable[..., str]

RENDERERS: tuple[str, ...] = ("text", "json", "sarif")


def renderer(name: str) -> Renderer:
    if name not in RENDERERS:
        raise ValueError(f"unknown report format {name!r}")
    module = importlib.import_module(f"ckptguard.report.{name}_report")
    render: Renderer = module.render
    return render


def options_for(name: str) -> frozenset[str]:
    """The keyword options the named renderer accepts."""
    parameters = inspect.signature(renderer(name)).parameters.values()
    return frozenset(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)


def render_report(name: str, result: ScanResult, **options: Any) -> str:
    """Render ``result`` as ``name``, with the options that renderer accepts (None: default)."""
    accepted = options_for(name)
    chosen = {k: v for k, v in options.items() if k in accepted and v is not None}
    return renderer(name)(result, **chosen)
