"""Whether a derivative's declared terms are ones its base model's license allows."""

from __future__ import annotations

from collections.abc import Iterator

from ckptguard.license.catalog import Terms


def lineage_problems(base: Terms, mine: Terms) -> Iterator[str]:
    """Each way ``mine`` (the derivative's license) breaks ``base`` (the base model's)."""
    if not base.derivatives:
        yield f"the base's {base.hf_id} terms allow no derivative works"
    if not base.commercial and mine.commercial:
        yield (f"the base is under non-commercial terms ({base.hf_id}) but this model declares "
               f"{mine.hf_id}, which allows commercial use")
    if base.pass_on and mine.hf_id != base.hf_id:
        same_rail = base.kind == "rail" and mine.kind == "rail"
        same_family = base.hf_id.startswith("llama") and mine.hf_id.startswith("llama")
        if not (same_rail or same_family):
            yield (f"the base's {base.hf_id} terms must be passed on to derivatives, but this "
                   f"model declares {mine.hf_id}")
    if base.restrictions and not mine.restrictions:
        yield (f"the use restrictions of the base's {base.hf_id} terms are not carried "
               f"forward by {mine.hf_id}")
