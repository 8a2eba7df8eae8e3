"""``ckptguard probe``: activation probes on a classifier (needs the ``probes`` extra: torch)."""

from __future__ import annotations

import sys

import click

from ckptguard.cli_support import PathArgumentsCommand
from ckptguard.model import Severity
from ckptguard.report import RENDERERS, renderer

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _numbers(text: str | None, kind: type[float] | type[int], name: str) -> tuple[float, ...]:
    if text is None:
        return ()
    try:
        return tuple(kind(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{name} takes comma-separated numbers, got {text!r}") from None


@click.command("probe", cls=PathArgumentsCommand)
@click.argument("path", type=click.Path(exists=True))
@click.option("--arch", help="Architecture as package.module:factory (code you trust). "
              "Not needed for ONNX graphs.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="auto uses CUDA when available.")
@click.option("--time-budget", type=float, default=120.0, show_default=True,
              help="Seconds for both probes; what does not fit is reported (BKD009).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--data", type=click.Path(exists=True, dir_okay=False),
              help="A .npy array of typical inputs (never unpickled); for a Hugging Face "
              "model folder, a text file with one example per line.")
@click.option("--input-shape", help="Input shape without the batch axis, e.g. 1,8,8.")
@click.option("--input-range", default="0,1", show_default=True,
              help="Lowest and highest input value, e.g. 0,1.")
@click.option("--format", "fmt", type=click.Choice(RENDERERS), default="text",
              show_default=True)
@click.option("--fail-on", type=click.Choice([s.label for s in Severity if s is not
                                              Severity.INFO]),
              default="high", show_default=True)
def probe_command(path: str, arch: str | None, device: str, time_budget: float, seed: int,
                  data: str | None, input_shape: str | None, input_range: str, fmt: str,
                  fail_on: str) -> None:
    """Probe a classifier for backdoors: per-class maximum margin (MM-BD), single-neuron
    stimulation and, with --data, trigger reverse-engineering.  PATH is a weights file (with
    --arch), an ONNX graph, or a Hugging Face classifier folder (config.json +
    model.safetensors, built by transformers: the ``hf`` extra; with --data, a token trigger
    search).  Weights are read by ckptguard's parsers, never by torch.load."""
    from ckptguard.probes.device import DeviceError
    from ckptguard.probes.network import ProbeError
    from ckptguard.probes.session import ProbeOptions, probe_file

    bounds = _numbers(input_range, float, "--input-range")
    if len(bounds) != 2 or bounds[0] >= bounds[1]:
        raise click.BadParameter("--input-range needs LOW,HIGH with LOW < HIGH")
    shape = tuple(int(v) for v in _numbers(input_shape, int, "--input-shape")) or None
    options = ProbeOptions(arch=arch, device=device, time_budget=time_budget, seed=seed,
                           data=data, input_shape=shape, input_range=(bounds[0], bounds[1]),
                           fail_on=Severity.parse(fail_on))
    try:
        result = probe_file(path, options)
    except (ProbeError, DeviceError, ImportError) as exc:
        click.echo(f"ckptguard probe: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    click.echo(renderer(fmt)(result), nl=False)
    sys.exit(EXIT_FINDINGS if result.failed else EXIT_CLEAN)
