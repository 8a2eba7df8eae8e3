"""Static analysis of Jinja chat templates: parsed to an AST and walked, never rendered.

Other parsers call ``analyse_template(source, location, limits)`` for every chat template they
meet (GGUF ``tokenizer.chat_template``, ``tokenizer_config.json``, ``chat_template.jinja``) and
add the facts it returns.  Fact kinds: ``template.risk`` (problem, name, snippet, detail,
origin), ``template.error`` (error, origin), ``template.summary`` (origin, length, nodes,
macros) and ``limit.hit``.
"""

from __future__ import annotations

from ckptguard.templates.analysis import analyse_template

__all__ = ["analyse_template"]
