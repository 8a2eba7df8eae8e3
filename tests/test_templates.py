"""Chat-template analysis: ordinary templates pass, injection payloads are found, nothing is
ever rendered."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from ckptguard.api import scan
from ckptguard.config import Config
from ckptguard.limits import Limits
from ckptguard.model import Location, Severity
from ckptguard.templates import analyse_template
from fixtures import _chat_templates as tpl
from tests._format_a_helpers import scan_path

HERE = Location(("tokenizer_config.json",), key="chat_template")


def risks(source: str, limits: Limits | None = None) -> set[tuple[str, str]]:
    facts = analyse_template(source, HERE, limits or Limits())
    return {(f.attrs["problem"], f.attrs["name"]) for f in facts if f.kind == "template.risk"}


@pytest.mark.parametrize("name", sorted(tpl.BENIGN))
def test_ordinary_templates_raise_nothing(name: str) -> None:
    assert risks(tpl.BENIGN[name]) == set()


@pytest.mark.parametrize("name", [*sorted(tpl.BENIGN), "recursive_macro"])
def test_ordinary_template_files_stay_below_medium(name: str, make_fixture) -> None:  # type: ignore[no-untyped-def]
    result = scan_path(make_fixture(f"tpl_{name}"))
    assert not result.at_or_above(Severity.MEDIUM), [f.message for f in result.findings]


@pytest.mark.parametrize(("source", "expected"), [
    ("{{ cycler.__init__.__globals__.os.popen('id').read() }}", ("dunder-access", "__globals__")),
    ("{{ joiner.__init__.__globals__ }}", ("global-internals", "joiner")),
    ("{{ lipsum.__globals__['os'] }}", ("global-internals", "lipsum")),
    ("{{ namespace.__init__ }}", ("global-internals", "namespace")),
    ("{{ x['__class__'] }}", ("dunder-access", "__class__")),
    ("{{ x|attr('__class__') }}", ("dunder-access", "__class__")),
    ("{{ x|attr('__cla' ~ 'ss__') }}", ("dunder-access", "__class__")),
    ("{{ x|attr('%s%s'|format('__cla', 'ss__')) }}", ("dunder-access", "__class__")),
    ("{{ x|attr('{}{}'.format('__mr', 'o__')) }}", ("dunder-access", "__mro__")),
    ("{{ x|attr('__SSALC__'|lower|reverse) }}", ("dunder-access", "__class__")),
    ("{{ x|attr('xx__class__'|replace('xx', '')) }}", ("dunder-access", "__class__")),
    ("{{ x|attr('_' * 2 ~ 'class' ~ '_' * 2) }}", ("dunder-access", "__class__")),
    ("{% set a = '__glo' %}{% set b = a ~ 'bals__' %}{{ f[b] }}",
     ("dunder-access", "__globals__")),
    ("{{ x|map('attr', '__class__')|list }}", ("dunder-access", "__class__")),
    ("{{ x|attr(name) }}", ("computed-attribute", "|attr")),
    ("{{ x|attr(dict(__class__=1)|first) }}", ("dunder-access", "__class__")),
    ("{{ x|attr((dict(__cla=1)|join) ~ (dict(ss__=1)|join)) }}", ("dunder-access", "__class__")),
    ("{% set d = dict(__globals__=1) %}{{ f[d|list|first] }}", ("dunder-access", "__globals__")),
    ("{{ lipsum|attr('x') }}", ("global-internals", "lipsum")),
    ("{{ x[prefix ~ name] }}", ("computed-attribute", "[…]")),
    ("{{ x['__' + name + '__'] }}", ("computed-attribute", "[…]")),
    ("{{ x[parts|join] }}", ("computed-attribute", "[…]")),
    ("{{ config.items() }}", ("global-internals", "config")),
    ("{{ request.application }}", ("global-internals", "request")),
    ("{{ self.__dict__ }}", ("dunder-access", "__dict__")),
    ("{{ subprocess.check_output(['id']) }}", ("process-access", "subprocess")),
    ("{% for i in range(99999999) %}{% endfor %}", ("huge-loop", "range(99999999)")),
    ("{% import 'x.j2' as x %}", ("template-loading", "import")),
])
def test_injection_patterns(source: str, expected: tuple[str, str]) -> None:
    assert expected in risks(source)


def test_numeric_indexing_and_common_filters_are_ordinary() -> None:
    source = "{{ messages[loop.index0 + 1].role }}{{ messages[-1]['content'] }}" \
             "{{ tools | map(attribute='function') | list | tojson }}" \
             "{{ messages | selectattr('role', 'equalto', 'system') | list | length }}" \
             "{{ message.content.split('</think>')[-1].lstrip('\\n') }}" \
             "{% set ns = namespace(system='') %}{% set ns.system = 'x' %}{{ ns.system }}"
    assert risks(source) == set()


def test_assigned_names_are_not_globals() -> None:
    source = "{% for config in configs %}{{ config.name }}{% endfor %}" \
             "{% set request = messages[-1] %}{{ request.content }}"
    assert risks(source) == set()


def test_line_numbers_and_snippets() -> None:
    source = "{{ bos_token }}\n{% for m in messages %}{{ m.content }}{% endfor %}\n" \
             "{{ cycler.__init__.__globals__ }}"
    facts = [f for f in analyse_template(source, HERE, Limits()) if f.kind == "template.risk"]
    assert {f.location.line for f in facts} == {3}
    assert all(f.attrs["snippet"] == "{{ cycler.__init__.__globals__ }}" for f in facts)
    assert all(f.location.key == "chat_template" for f in facts)


def test_node_limit_is_a_limit_hit() -> None:
    source = "{{ a }}" * 500
    facts = analyse_template(source, HERE, Limits(max_template_nodes=100))
    assert any(f.kind == "limit.hit" and f.attrs["limit"] == "max_template_nodes"
               for f in facts)


def test_oversized_source_is_not_parsed() -> None:
    facts = analyse_template("x" * 2000, HERE, Limits(max_text_file_bytes=1000))
    assert [f.kind for f in facts] == ["limit.hit"]


def test_deep_nesting_is_reported_without_crashing() -> None:
    assert ("excessive-nesting", "parser") in risks("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}")


def test_syntax_error_is_a_fact() -> None:
    facts = analyse_template(tpl.SYNTAX_ERROR, HERE, Limits())
    assert [f.kind for f in facts] == ["template.error"]


def test_generation_tag_parses() -> None:
    source = "{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}" \
             "{% endfor %}"
    kinds = [f.kind for f in analyse_template(source, HERE, Limits())]
    assert kinds == ["template.summary"]


def test_analysis_never_renders_or_compiles(monkeypatch: pytest.MonkeyPatch,
                                            canary: Path) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("template code must never be compiled or rendered")

    monkeypatch.setattr(jinja2.Environment, "compile", refuse)
    monkeypatch.setattr(jinja2.Environment, "from_string", refuse)
    monkeypatch.setattr(jinja2.Template, "render", refuse)
    assert ("process-access", "popen") in risks(tpl.ssti_cycler(canary))
    assert not canary.exists()


def test_only_chat_template_files_are_judged(tmp_path: Path) -> None:
    page = tmp_path / "site" / "base.jinja"
    page.parent.mkdir()
    page.write_text("{% extends 'layout.html' %}{{ request.path }}{{ self.title() }}")
    assert not scan_path(page).findings
    extra = tmp_path / "additional_chat_templates" / "rag.jinja"
    extra.parent.mkdir()
    extra.write_text("{{ request.path }}")
    result = scan([extra], Config(), root=tmp_path)
    assert {f.rule_id for f in result.findings} == {"TPL002"}


def test_nested_macros_are_each_walked_once() -> None:
    source = "{% macro a() %}{% macro b() %}{{ b() }}{% endmacro %}{{ b() }}{% endmacro %}"
    assert risks(source) == {("macro-recursion", "b")}
