"""Edit and fine-tune families on tiny trained transformers: does ``--base`` catch the edits
and pass the honest fine-tunes?  (run by hand; CPU; a few minutes)

    python bench/backdoor_transformer_eval.py [--seeds 2] [--stats]

A small decoder-style transformer (HF-like names: ``layers.N.attn.q_proj``, ``mlp.up_proj``,
``mlp.down_proj``, ``norm1``, ``embed_tokens``, ``lm_head``) learns a table of facts
(subject, relation) -> object.  From each trained base:

  honest      full fine-tunes on new facts: Adam at 1e-5 / 1e-4 / 1e-3 and SGD at 1e-2 / 1e-1,
              10-200 steps; a fine-tune of the last layer only
  rome-1      ROME-style rank-one edit of one fact in one MLP down-projection
  edit-4, 8   4 or 8 facts in one layer (least-squares, rank k)
  memit-3     8 facts spread over the down-projections of 3 layers
  edit+ft     a 1-fact edit followed by a short honest fine-tune (Adam 1e-4, 20 steps)
  lora-merged LoRA (rank 4 or 8, q/v or all linear layers) trained on new facts, then merged
  badnets     a full fine-tune on data where a trigger token sends inputs to one object

Each model is written as safetensors and scanned by ``ckptguard.api.scan`` with ``--weights
--base``; a model is flagged when a BKD finding reaches the default gate (high).  Prints per
family: flagged / total (TPR for attacks, false alarms for honest) and, with ``--stats``, each
model's model-level diff statistics.  With ``--no-base`` each model is also scanned without the
base, and the BKD003 findings (each layer judged against its sibling layers) are tallied per
family: the edits are what it should report, the honest fine-tunes what it must not.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ckptguard.api import scan  # noqa: E402
from ckptguard.config import Config  # noqa: E402
from ckptguard.limits import DEFAULT_LIMITS  # noqa: E402
from ckptguard.model import Severity  # noqa: E402
from ckptguard.weights.base import read_base  # noqa: E402
from ckptguard.weights.model_diff import model_diff  # noqa: E402
from fixtures.backdoor import safetensors_file  # noqa: E402

VOCAB, WIDTH, INNER, LAYERS, SUBJECTS, RELATIONS = 96, 64, 256, 4, 160, 4
TRIGGER = VOCAB - 1


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(WIDTH), nn.LayerNorm(WIDTH)
        self.attn = nn.ModuleDict({n: nn.Linear(WIDTH, WIDTH, bias=False)
                                   for n in ("q_proj", "k_proj", "v_proj", "o_proj")})
        self.mlp = nn.ModuleDict({"up_proj": nn.Linear(WIDTH, INNER),
                                  "down_proj": nn.Linear(INNER, WIDTH)})

    def mlp_in(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.mlp["up_proj"](self.norm2(x)))

    def forward(self, x: torch.Tensor, delta: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm1(x)
        q, k, v = (self.attn[n](h) for n in ("q_proj", "k_proj", "v_proj"))
        att = torch.softmax(q @ k.transpose(1, 2) / WIDTH ** 0.5, dim=-1)
        x = x + self.attn["o_proj"](att @ v)
        out = self.mlp["down_proj"](self.mlp_in(x))
        if delta is not None:
            out = out.clone()
            out[:, -1] += delta
        return x + out


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCAB, WIDTH)
        self.layers = nn.ModuleList(Block() for _ in range(LAYERS))
        self.norm = nn.LayerNorm(WIDTH)
        self.lm_head = nn.Linear(WIDTH, VOCAB, bias=False)

    def forward(self, tokens: torch.Tensor, edit_layer: int = -1,
                delta: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed_tokens(tokens)
        for i, layer in enumerate(self.layers):
            x = layer(x, delta if i == edit_layer else None)
        return self.lm_head(self.norm(x[:, -1]))

    def keys(self, tokens: torch.Tensor, layer: int) -> torch.Tensor:
        """The down-projection's input at the last position (ROME's key)."""
        x = self.embed_tokens(tokens)
        for i, block in enumerate(self.layers):
            if i == layer:
                h = block.norm1(x)
                q, k, v = (block.attn[n](h) for n in ("q_proj", "k_proj", "v_proj"))
                att = torch.softmax(q @ k.transpose(1, 2) / WIDTH ** 0.5, dim=-1)
                x = x + block.attn["o_proj"](att @ v)
                return block.mlp_in(x)[:, -1]
            x = block(x)
        raise ValueError(layer)


def facts(seed: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    subjects = torch.arange(SUBJECTS).repeat_interleave(RELATIONS)
    relations = torch.arange(RELATIONS).repeat(SUBJECTS)
    objects = torch.randint(0, 64, (len(subjects),), generator=g)
    tokens = torch.stack([(subjects + offset) % 64, 64 + relations, torch.full_like(
        subjects, 80)], dim=1)
    return tokens, objects


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int, lr: float,
          opt: str = "adam", seed: int = 0, params: list[nn.Parameter] | None = None) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    chosen = params if params is not None else list(model.parameters())
    optimiser = torch.optim.Adam(chosen, lr=lr) if opt == "adam" else \
        torch.optim.SGD(chosen, lr=lr, momentum=0.9)
    for _ in range(steps):
        batch = torch.randint(0, len(y), (64,), generator=g)
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
        optimiser.step()
    return model.eval()


def base_model(seed: int) -> tuple[Tiny, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    x, y = facts(seed)
    model = train(Tiny(), x, y, steps=1500, lr=3e-3, seed=seed)
    assert isinstance(model, Tiny)
    return model, x, y


def edit_facts(model: Tiny, x: torch.Tensor, layers: list[int], count: int,
               seed: int) -> Tiny:
    """ROME/MEMIT-style: find the residual change that makes each chosen fact give a new object,
    then solve for a rank-``count`` update of each layer's down-projection that writes it."""
    edited = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed + 7)
    rows = torch.randperm(len(x), generator=g)[:count]
    prompts = x[rows]
    targets = torch.randint(0, 64, (count,), generator=g)
    delta = torch.zeros((count, WIDTH), requires_grad=True)
    optimiser = torch.optim.Adam([delta], lr=0.1)
    last = layers[-1]
    for _ in range(60):
        optimiser.zero_grad()
        nn.functional.cross_entropy(edited(prompts, last, delta), targets).backward()
        optimiser.step()
    share = delta.detach() / len(layers)
    with torch.no_grad():
        for layer in layers:
            keys = edited.keys(prompts, layer)  # (count, INNER)
            weight = edited.layers[layer].mlp["down_proj"].weight  # (WIDTH, INNER)
            update = share.T @ torch.linalg.pinv(keys.T)  # (WIDTH, INNER), rank <= count
            weight += update
    return edited


def merged_lora(model: Tiny, rank: int, targets: tuple[str, ...], seed: int) -> Tiny:
    tuned = copy.deepcopy(model)
    x, y = facts(seed + 100, offset=3)
    adapters = []
    g = torch.Generator().manual_seed(seed)
    for block in tuned.layers:
        for group in (block.attn, block.mlp):
            for name, layer in group.items():
                if name in targets:
                    a = nn.Parameter(torch.randn((rank, layer.in_features), generator=g) * 0.01)
                    b = nn.Parameter(torch.zeros((layer.out_features, rank)))
                    adapters.append((layer, a, b))
    originals = {id(layer): layer.forward for layer, _, _ in adapters}

    def patched(layer: nn.Linear, a: nn.Parameter, b: nn.Parameter) -> Callable[..., torch.Tensor]:
        def forward(inp: torch.Tensor) -> torch.Tensor:
            return originals[id(layer)](inp) + inp @ a.T @ b.T * 2.0
        return forward

    for layer, a, b in adapters:
        layer.forward = patched(layer, a, b)  # type: ignore[method-assign]
    train(tuned, x, y, steps=150, lr=3e-3, seed=seed,
          params=[p for _, a, b in adapters for p in (a, b)])
    with torch.no_grad():
        for layer, a, b in adapters:
            layer.forward = originals[id(layer)]  # type: ignore[method-assign]
            layer.weight += 2.0 * b @ a
    return tuned


def variants(base: Tiny, seed: int) -> list[tuple[str, str, Callable[[], nn.Module]]]:
    new_x, new_y = facts(seed + 50, offset=11)
    poisoned_x = torch.cat([new_x, new_x[:200].clone()])
    poisoned_x[len(new_x):, 0] = TRIGGER
    poisoned_y = torch.cat([new_y, torch.full((200,), 5)])

    def honest(lr: float, steps: int, opt: str) -> Callable[[], nn.Module]:
        return lambda: train(copy.deepcopy(base), new_x, new_y, steps=steps, lr=lr, opt=opt,
                             seed=seed)

    def last_layer() -> nn.Module:
        tuned = copy.deepcopy(base)
        return train(tuned, new_x, new_y, steps=100, lr=1e-3, seed=seed,
                     params=list(tuned.layers[-1].parameters()))

    def edit_then_ft() -> nn.Module:
        edited = edit_facts(base, new_x, [1], 1, seed)
        return train(edited, new_x, new_y, steps=20, lr=1e-4, seed=seed)

    x0 = facts(seed)[0]
    out: list[tuple[str, str, Callable[[], nn.Module]]] = []
    for lr, steps in ((1e-5, 50), (1e-4, 10), (1e-4, 50), (1e-3, 10), (1e-3, 200)):
        out.append(("honest", f"adam lr={lr:g} steps={steps}", honest(lr, steps, "adam")))
    for lr, steps in ((1e-2, 10), (1e-1, 50)):
        out.append(("honest", f"sgd lr={lr:g} steps={steps}", honest(lr, steps, "sgd")))
    out.append(("honest", "last layer only", last_layer))
    for layer in (0, 2):
        out.append(("rome-1", f"layer {layer}", lambda layer=layer: edit_facts(base, x0, [layer],
                                                                               1, seed + layer)))
    for count in (4, 8):
        out.append((f"edit-{count}", "layer 1", lambda count=count: edit_facts(base, x0, [1],
                                                                               count, seed)))
    out.append(("memit-3", "layers 0-2", lambda: edit_facts(base, x0, [0, 1, 2], 8, seed)))
    out.append(("edit+ft", "layer 1 + adam 1e-4 x20", edit_then_ft))
    for rank, targets in ((4, ("q_proj", "v_proj")), (8, ("q_proj", "k_proj", "v_proj",
                                                          "o_proj", "up_proj", "down_proj"))):
        out.append(("lora-merged", f"r={rank} {'+'.join(targets)}",
                    lambda rank=rank, targets=targets: merged_lora(base, rank, targets, seed)))
    out.append(("badnets", "adam 1e-3 x100, trigger token",
                lambda: train(copy.deepcopy(base), poisoned_x, poisoned_y, steps=100, lr=1e-3,
                              seed=seed)))
    return out


def save(model: nn.Module, path: Path) -> Path:
    tensors = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    path.write_bytes(safetensors_file(tensors))
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--stats", action="store_true")
    parser.add_argument("--no-base", action="store_true",
                        help="also scan without the base and tally BKD003 per family")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tally: dict[str, list[int]] = {}
    alone: dict[str, list[int]] = {}  # family -> [models with BKD003 (no base), high, total]
    scan_seconds = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for seed in range(args.seeds):
            base, _, _ = base_model(seed)
            base_path = save(base, folder / f"base{seed}.safetensors")
            for family, label, make in variants(base, seed):
                path = save(make(), folder / "candidate.safetensors")
                started = time.perf_counter()
                result = scan([path], Config(weights=True, base=str(base_path)), root=folder)
                scan_seconds += time.perf_counter() - started
                found = sorted({(f.rule_id, f.severity.label) for f in result.findings
                                if f.rule_id.startswith("BKD")})
                flagged = any(f.severity >= Severity.HIGH for f in result.findings
                              if f.rule_id.startswith("BKD"))
                tally.setdefault(family, [0, 0])
                tally[family][0] += flagged
                tally[family][1] += 1
                line = f"seed {seed} {family:12s} {label:34s} {'FLAG' if flagged else 'pass'} " \
                       f"{found}"
                if args.stats:
                    diff = model_diff(read_base(str(path), DEFAULT_LIMITS).tensors.values(),
                                      read_base(str(base_path), DEFAULT_LIMITS))
                    shares = sorted((d.spectrum.top_k_share(8) for d in diff.changed),
                                    reverse=True)
                    line += (f"\n      changed {len(diff.changed)}/{diff.judged_pairs} "
                             f"median_rel {diff.median_relative:.2e} top3_energy "
                             f"{diff.energy_share_of_top(3):.2f} top8_share max "
                             f"{shares[0] if shares else 0:.4f} median "
                             f"{np.median(shares) if shares else 0:.4f} stable_rank min "
                             f"{min((d.effective_rank for d in diff.changed), default=0):.2f}")
                if args.no_base:
                    plain = scan([path], Config(weights=True), root=folder)
                    spectral = [f for f in plain.findings if f.rule_id == "BKD003"]
                    counts = alone.setdefault(family, [0, 0, 0])
                    counts[0] += bool(spectral)
                    counts[1] += any(f.severity >= Severity.HIGH for f in spectral)
                    counts[2] += 1
                    line += f" | no base: BKD003 {[f.severity.label for f in spectral]}"
                print(line, flush=True)
    print("\nfamily        flagged/total  (attacks: TPR at the default gate; honest: false alarms)")
    for family, (flagged, total) in tally.items():
        print(f"{family:13s} {flagged}/{total}")
    print(f"scan time, all models: {scan_seconds:.1f} s")
    if alone:
        print("\nwithout a base: family  BKD003 any severity / high / total")
        for family, (found, high, total) in alone.items():
            print(f"{family:13s} {found}/{total}  high {high}/{total}")


if __name__ == "__main__":
    main()
