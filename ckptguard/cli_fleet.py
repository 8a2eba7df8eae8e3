"""``ckptguard fleet scan``: the same scan, spread over a Dask cluster (the ``fleet`` extra)."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import click

from ckptguard.cli_support import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    Exit,
    PathArgumentsCommand,
    build_config,
    config_option,
    debug_option,
    guarded,
)
from ckptguard.model import Severity
from ckptguard.report import RENDERERS


@click.group("fleet")
def fleet_group() -> None:
    """Audit many models at once on a Dask cluster (install ckptguard[fleet])."""


def _client(stack: ExitStack, scheduler: str | None, local_workers: int) -> Any:
    try:
        import distributed
    except ImportError:
        raise click.UsageError("fleet scans need Dask: pip install 'ckptguard[fleet]'") from None
    Client: Any = distributed.Client
    LocalCluster: Any = distributed.LocalCluster
    if scheduler:
        return stack.enter_context(Client(scheduler))
    cluster = stack.enter_context(LocalCluster(
        n_workers=local_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address="127.0.0.1:0"))
    return stack.enter_context(Client(cluster))


@fleet_group.command("scan", cls=PathArgumentsCommand)
@click.argument("urls", nargs=-1, required=True)
@click.option("--scheduler", metavar="ADDRESS",
              help="Address of a running Dask scheduler, e.g. tcp://host:8786.")
@click.option("--local-workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Without --scheduler: start a local cluster with this many worker processes.")
@click.option("--format", "formats", type=click.Choice(RENDERERS), multiple=True,
              help="Report format (repeatable); default text.")
@click.option("--output", "-o", "outputs", type=click.Path(dir_okay=False), multiple=True,
              help="Write the report to this file; one per --format, paired in order.")
@click.option("--fail-on", type=click.Choice([s.label for s in Severity]),
              help="Exit 1 when a finding is at or above this severity.  [default: high]")
@click.option("--results", type=click.Path(dir_okay=False),
              help="Append each file's result to this JSON-lines file, and resume from it.")
@click.option("--timeout", type=click.FloatRange(min=1), default=None,
              help="Seconds one file may take on a worker before it is retried.")
@click.option("--retries", type=click.IntRange(min=0), default=1, show_default=True,
              help="Further attempts for a file whose task failed or timed out.")
@config_option
@debug_option
def fleet_scan_command(urls: tuple[str, ...], scheduler: str | None, local_workers: int,
                       formats: tuple[str, ...], outputs: tuple[str, ...], fail_on: str | None,
                       results: str | None, timeout: float | None, retries: int,
                       config_file: str | None, debug: bool) -> None:
    """Scan local paths and fsspec URLs (file://, s3://, gs://, hf://, memory://, … where the
    backend is installed) on a Dask cluster, with one report as a local scan would give."""
    from ckptguard.cli import _report, pair_outputs
    from ckptguard.fleet.run import fleet_scan
    from ckptguard.report.text_report import summary_line

    pairs = pair_outputs(formats, outputs)
    with guarded(debug):
        config = build_config(config_file, {
            "fail_on": Severity.parse(fail_on) if fail_on else None})
        with ExitStack() as stack:
            client = _client(stack, scheduler, local_workers)
            result, summary = fleet_scan(list(urls), client, config, results_file=results,
                                         retries=retries, timeout=timeout)
        for name, target in pairs:
            text = _report(result, name, quiet=False, colour=False)
            if target is None:
                click.echo(text, nl=False)
            else:
                with open(target, "w", encoding="utf-8") as handle:
                    handle.write(text)
        click.echo(f"ckptguard: {summary.line()}", err=True)
        click.echo(f"ckptguard: {summary_line(result)}", err=True)
        raise Exit(EXIT_FINDINGS if result.failed else EXIT_CLEAN)
