"""ALW001: an unlisted callable handed to an allowlisted helper that calls what it is given.

The pickle engine records such a global as ``referenced`` (it is an argument, not the callee), so
on its own it would stay below the gate although the helper calls it while the file loads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ckptguard.engine.checks import CheckContext, Hit
from ckptguard.facts import Fact

HELPERS = "argument_callers"


def _unlisted_imports(ctx: CheckContext) -> dict[str, Fact]:
    safe = ctx.lists["safe_globals"]
    dangerous = ctx.lists["dangerous_callables"]  # already critical under PKL001
    found: dict[str, Fact] = {}
    for fact in ctx.of_kind("pickle.import"):
        name = fact.get("qualname")
        if isinstance(name, str) and name not in safe and name not in dangerous:
            found.setdefault(name, fact)
    return found


def _arguments(call: Fact, callee: str) -> str:
    text = str(call.get("reconstruction") or "")
    return text[len(callee):] if text.startswith(callee) else text


def check(ctx: CheckContext) -> Iterable[Hit]:
    helpers = ctx.lists[HELPERS]
    unlisted = _unlisted_imports(ctx)
    if not unlisted:
        return
    for call in ctx.of_kind("pickle.call"):
        callee = call.get("callee")
        if not isinstance(callee, str) or callee not in helpers:
            continue
        arguments = _arguments(call, callee)
        # A rendering cut short (padding can push an argument out of it) fails closed: every
        # unlisted global of the stream may be among the arguments.
        shortened = "…" in arguments
        for name in unlisted:
            shown = re.search(rf"(?<![\w.]){re.escape(name)}(?![\w.])", arguments) is not None
            if not shown and not shortened:
                continue
            how = "is given" if shown else "may be given (its arguments are too long to show)"
            yield Hit(
                message=(f"{callee} {how} {name}, which is not on the allowlist, and calls or "
                         f"instantiates it while the file loads: {call.get('reconstruction')}"),
                location=call.location,
                subject=f"{callee}<-{name}",
                evidence={"helper": callee, "argument": name,
                          "reconstruction": call.get("reconstruction")},
            )


CHECKS = {"ALW001": check}
