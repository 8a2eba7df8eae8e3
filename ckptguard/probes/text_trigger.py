"""Discrete token trigger search for text classifiers (``ckptguard probe FOLDER --data
clean.txt``), a greedy HotFlip-style search in the spirit of PICCOLO.

For every class ``t``, a trigger of 1..``TOKEN_TRIGGER_LENGTH`` vocabulary tokens is inserted
after the first token of the clean examples the model does not already put in ``t``.  Each slot
is improved in turn: the gradient of the loss towards ``t`` with respect to the slot's input
embedding ranks every vocabulary token by the first-order change of the loss (HotFlip); the
``TOKEN_CANDIDATES`` best-ranked are tried exactly and the one sending most examples to ``t``
is kept.  A text backdoor (BadNets: a rare word flips the class) is exactly such a short
trigger; for a clean model no one or two tokens send nearly every example of the other classes
to one class.  A class reached by ``TOKEN_TRIGGER_SUCCESS`` of the examples while no other class
is (target-vs-rest, so 2-class models are judged too) is reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ckptguard.probes.thresholds import (
    TOKEN_CANDIDATES,
    TOKEN_ROUNDS,
    TOKEN_TRIGGER_INPUTS,
    TOKEN_TRIGGER_LENGTH,
    TOKEN_TRIGGER_SUCCESS,
)

if TYPE_CHECKING:
    import torch

    from ckptguard.probes.hf_model import TextNetwork, Vocabulary


@dataclass(frozen=True)
class ClassTrigger:
    ids: tuple[int, ...]
    tokens: tuple[str, ...]
    success: float  # share of the movable examples the trigger sends to the class
    movable: int  # examples not already of the class


@dataclass(frozen=True)
class TokenTriggerResult:
    per_class: tuple[ClassTrigger, ...]
    complete: bool
    seen_in_data: frozenset[int]  # token ids the clean examples contain

    @property
    def success(self) -> tuple[float, ...]:
        return tuple(c.success for c in self.per_class)

    @property
    def target(self) -> int:
        return max(range(len(self.per_class)), key=lambda i: self.per_class[i].success)

    @property
    def runner_up(self) -> float:
        ordered = sorted(self.success)
        return ordered[-2] if len(ordered) >= 2 else 0.0

    @property
    def outlier(self) -> bool:
        best = self.per_class[self.target]
        return (best.movable > 0 and best.success >= TOKEN_TRIGGER_SUCCESS
                and self.runner_up < TOKEN_TRIGGER_SUCCESS)


def insert(ids: torch.Tensor, mask: torch.Tensor, trigger: torch.Tensor,
           at: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``trigger`` (k,) inserted at position ``at`` of every row (after a leading [CLS])."""
    import torch

    rows = ids.shape[0]
    stamp = trigger.to(ids.device).unsqueeze(0).expand(rows, -1)
    new_ids = torch.cat([ids[:, :at], stamp, ids[:, at:]], dim=1)
    new_mask = torch.cat([mask[:, :at], torch.ones_like(stamp), mask[:, at:]], dim=1)
    return new_ids, new_mask


def search(network: TextNetwork, data: torch.Tensor, vocabulary: Vocabulary, seed: int,
           deadline: float) -> TokenTriggerResult:
    import torch

    sample = data[:TOKEN_TRIGGER_INPUTS].to(network.device)
    ids, mask = sample[:, 0], sample[:, 1]
    # Every token of the clean data (not only the examples the trigger is inserted into): a
    # trigger "never seen in clean data" must mean all of it.
    seen = frozenset(int(v) for v in data[:, 0][data[:, 1].bool()].tolist())
    with torch.no_grad():
        base = network.logits(sample).argmax(dim=1)
    allowed = torch.ones(len(vocabulary.tokens), dtype=torch.bool)
    allowed[list(vocabulary.excluded)] = False
    generator = torch.Generator().manual_seed(seed)
    start = torch.nonzero(allowed).flatten()
    per_class: list[ClassTrigger] = []
    complete = True
    for target in range(network.classes):
        movable = base != target
        if not bool(movable.any()):
            per_class.append(ClassTrigger((), (), 0.0, 0))
            continue
        first = int(start[torch.randint(len(start), (1,), generator=generator)])
        found, unseen, finished = _search_class(network, ids[movable], mask[movable], target,
                                                allowed, first, deadline, seen)
        complete = complete and finished
        # A backdoor trigger works wherever it is inserted; a clean model's sensitivity to the
        # first position is not one: the success counted is the worse of the two placements.
        # The best trigger the clean data never uses is judged the same way, at the same random
        # positions, and kept when it does as well: a poisoned model often obeys its target
        # class's own words as strongly as the planted token, and the planted one is the finding.
        positions = _random_positions(mask[movable], generator) if found[0] else []
        options = [(min(found[1], _anywhere(network, ids[movable], mask[movable], found[0],
                                             target, positions)), False, found[0])]
        if unseen[0] and unseen[0] != found[0] and unseen[1] >= TOKEN_TRIGGER_SUCCESS:
            options.append((min(unseen[1], _anywhere(network, ids[movable], mask[movable],
                                                     unseen[0], target, positions)),
                            True, unseen[0]))
        success, _, trigger = max(options, key=lambda option: option[:2])
        per_class.append(ClassTrigger(
            tuple(trigger), tuple(vocabulary.tokens[i] for i in trigger),
            success if trigger else 0.0, int(movable.sum())))
    return TokenTriggerResult(tuple(per_class), complete, seen)


def _random_positions(mask: torch.Tensor, generator: torch.Generator) -> list[int]:
    """For each example, a random position between its first and its last real token."""
    import torch

    return [1 + int(torch.randint(max(1, int(length) - 1), (1,), generator=generator))
            for length in mask.sum(dim=1).tolist()]


def _anywhere(network: TextNetwork, ids: torch.Tensor, mask: torch.Tensor, trigger: list[int],
              target: int, positions: list[int]) -> float:
    """Share of examples sent to ``target`` with ``trigger`` inserted at ``positions`` (one per
    example; ``_random_positions``)."""
    import torch

    if not trigger:
        return 0.0
    rows_ids, rows_mask = [], []
    stamp = torch.tensor(trigger, dtype=ids.dtype, device=ids.device)
    for row, at in enumerate(positions):
        new_ids, new_mask = insert(ids[row:row + 1], mask[row:row + 1], stamp, at)
        rows_ids.append(new_ids)
        rows_mask.append(new_mask)
    with torch.no_grad():
        logits = network.logits(torch.stack([torch.cat(rows_ids), torch.cat(rows_mask)], dim=1))
    return float((logits.argmax(dim=1) == target).float().mean())


_Found = tuple[list[int], float]  # a trigger and the share of examples it sends to the class


def _search_class(network: TextNetwork, ids: torch.Tensor, mask: torch.Tensor, target: int,
                  allowed: torch.Tensor, first: int, deadline: float,
                  seen: frozenset[int] = frozenset()) -> tuple[_Found, _Found, bool]:
    """The shortest trigger (up to ``TOKEN_TRIGGER_LENGTH`` tokens) reaching the success
    threshold, else the best one found; the best trigger tried whose tokens are all absent from
    ``seen`` (ranked the same way; empty when none was tried); and whether the search ran to its
    end."""
    import torch

    best: _Found = ([], 0.0)
    unseen: tuple[list[int], float, float] = ([], 0.0, float("-inf"))
    trigger: list[int] = []
    for _length in range(TOKEN_TRIGGER_LENGTH):
        trigger = [*trigger, first]
        rate, loss = _evaluate(network, ids, mask, torch.tensor([trigger]), target)
        current = (float(rate[0]), -float(loss[0]))
        for _round in range(TOKEN_ROUNDS):
            improved = False
            for slot in range(len(trigger)):
                if time.monotonic() > deadline:
                    return ((best if best[1] >= current[0] else (trigger, current[0])),
                            unseen[:2], False)
                candidates = _rank(network, ids, mask, trigger, slot, target, allowed)
                tries = torch.tensor([trigger] * len(candidates))
                tries[:, slot] = candidates
                rates, losses = _evaluate(network, ids, mask, tries, target)
                for i in range(len(candidates)):
                    tokens = [int(v) for v in tries[i]]
                    if not any(token in seen for token in tokens) and \
                            (float(rates[i]), -float(losses[i])) > unseen[1:]:
                        unseen = (tokens, float(rates[i]), -float(losses[i]))
                pick = max(range(len(candidates)),
                           key=lambda i: (float(rates[i]), -float(losses[i])))
                if (float(rates[pick]), -float(losses[pick])) > current:
                    current = (float(rates[pick]), -float(losses[pick]))
                    trigger = [int(v) for v in tries[pick]]
                    improved = True
            if not improved:
                break
        if current[0] > best[1]:
            best = (list(trigger), current[0])
        if current[0] >= TOKEN_TRIGGER_SUCCESS:
            break
    return best, unseen[:2], True


def _rank(network: TextNetwork, ids: torch.Tensor, mask: torch.Tensor, trigger: list[int],
          slot: int, target: int, allowed: torch.Tensor) -> torch.Tensor:
    """Vocabulary tokens ranked by the first-order decrease of the loss towards ``target`` when
    put in ``slot`` (HotFlip); the best ``TOKEN_CANDIDATES`` allowed ones."""
    import torch
    import torch.nn.functional as F

    matrix = network.embedding_matrix()
    new_ids, new_mask = insert(ids, mask, torch.tensor(trigger))
    embeds = matrix[new_ids].detach().requires_grad_(True)
    logits = network.logits_from_embeddings(embeds, new_mask)
    goal = torch.full((ids.shape[0],), target, dtype=torch.long, device=ids.device)
    F.cross_entropy(logits, goal).backward()  # type: ignore[no-untyped-call]
    grad = embeds.grad[:, 1 + slot].mean(dim=0)  # type: ignore[index]
    with torch.no_grad():
        scores = -(matrix @ grad).cpu()
    scores[~allowed] = float("-inf")
    count = min(TOKEN_CANDIDATES, int(allowed.sum()))
    return torch.topk(scores, count).indices


def _evaluate(network: TextNetwork, ids: torch.Tensor, mask: torch.Tensor, triggers: torch.Tensor,
              target: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each trigger (row of ``triggers``): share of examples sent to ``target`` and the mean
    loss towards it (the negated logit margin)."""
    import torch

    rates, losses = [], []
    rows = ids.shape[0]
    per_pass = max(1, 2048 // rows)
    with torch.no_grad():
        for first in range(0, triggers.shape[0], per_pass):
            chunk = triggers[first:first + per_pass]
            all_ids = ids.repeat(chunk.shape[0], 1)
            all_mask = mask.repeat(chunk.shape[0], 1)
            stamp = chunk.repeat_interleave(rows, dim=0).to(ids.device)
            new_ids = torch.cat([all_ids[:, :1], stamp, all_ids[:, 1:]], dim=1)
            new_mask = torch.cat([all_mask[:, :1], torch.ones_like(stamp), all_mask[:, 1:]],
                                 dim=1)
            logits = network.logits(torch.stack([new_ids, new_mask], dim=1))
            others = logits.clone()
            others[:, target] = float("-inf")
            # the target's logit margin over the best other class (cross-entropy saturates in
            # float32 when several triggers all succeed; the margin still ranks them)
            loss = (others.max(dim=1).values - logits[:, target]).view(chunk.shape[0], rows)
            hit = (logits.argmax(dim=1) == target).float().view(chunk.shape[0], rows)
            rates.append(hit.mean(dim=1).cpu())
            losses.append(loss.mean(dim=1).cpu())
    return torch.cat(rates), torch.cat(losses)
