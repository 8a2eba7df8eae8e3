"""Exponential rendering cost (string doubling, macro fan-out) is reported like a huge loop."""

from __future__ import annotations

import pytest

from ckptguard.limits import Limits
from ckptguard.model import Location
from ckptguard.templates.analysis import analyse_template
from fixtures.bombs import doubling_template, macro_fan_out_template


def huge(source: str) -> list[str]:
    return [str(f.get("name")) for f in analyse_template(source, Location(("t.jinja",)), Limits())
            if f.kind == "template.risk" and f.get("problem") == "huge-loop"]


@pytest.mark.parametrize("source", [
    doubling_template(64),
    macro_fan_out_template(40),
    # doubling inside a loop, through a namespace
    "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s }}",
    # doubling once per message: exponential in the conversation's length
    "{% set ns = namespace(s='x') %}{% for m in messages %}{% set ns.s = ns.s + ns.s %}"
    "{% endfor %}",
    # three calls per level
    "{% macro a0() %}x{% endmacro %}" + "".join(
        f"{{% macro a{i}() %}}{{{{ a{i - 1}() }}}}{{{{ a{i - 1}() }}}}{{{{ a{i - 1}() }}}}"
        "{% endmacro %}" for i in range(1, 20)),
])
def test_exponential_templates_are_reported(source: str) -> None:
    assert huge(source), source[:80]


@pytest.mark.parametrize("source", [
    doubling_template(10),  # 2 KiB: fine
    macro_fan_out_template(8),  # 256 bodies: fine
    "{% set ns = namespace(s='') %}{% for m in messages %}{% set ns.s = ns.s ~ m.content %}"
    "{% endfor %}{{ ns.s }}",
    "{% macro render(m) %}{{ m.role }}: {{ m.content }}{% endmacro %}"
    "{% for m in messages %}{{ render(m) }}{{ render(m) }}{% endfor %}",
    "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}",
])
def test_ordinary_templates_are_not(source: str) -> None:
    assert huge(source) == []
