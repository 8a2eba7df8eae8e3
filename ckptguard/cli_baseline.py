"""``ckptguard baseline create``: record today's findings so that a gate fails only on new ones."""

from __future__ import annotations

from dataclasses import replace

import click

from ckptguard.api import plan, scan
from ckptguard.baseline import DEFAULT_BASELINE, create_baseline, sha256_file
from ckptguard.cli_support import (
    PathArgumentsCommand,
    build_config,
    config_option,
    debug_option,
    guarded,
    write_output,
)
from ckptguard.model import Finding, Severity
from ckptguard.report.safe_text import printable


@click.group("baseline")
def baseline_group() -> None:
    """Create baselines of known findings."""


@baseline_group.command("create", cls=PathArgumentsCommand)
@click.argument("paths", nargs=-1, required=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=DEFAULT_BASELINE,
              show_default=True, help="Where to write the baseline.")
@config_option
@click.option("--exclude", "excludes", multiple=True, metavar="GLOB",
              help="Skip paths matching this glob (repeatable).")
@click.option("--jobs", "-j", type=click.IntRange(min=0), default=None,
              help="Scan files in this many processes (0: one per CPU).  [default: one at a "
                   "time, weight statistics on every usable CPU]")
@debug_option
def create_command(paths: tuple[str, ...], output: str, config_file: str | None,
                   excludes: tuple[str, ...], jobs: int | None, debug: bool) -> None:
    """Scan PATHS and write every finding (at any severity) to a baseline file."""
    with guarded(debug):
        config = build_config(config_file, {})
        config = replace(config, excludes=(*config.excludes, *excludes), baseline=None)
        result = scan(paths, config, baseline=frozenset(), jobs=jobs)
        files = {unit.artifact.chain[0]: unit.file for unit in plan(paths, config)
                 if unit.file is not None}
        made = create_baseline(result.findings,
                               lambda outer: sha256_file(files[outer]) if outer in files else None)
        write_output(output, made.to_json())
        click.echo(f"ckptguard: wrote {len(made.entries)} finding(s) to {output}", err=True)
        for line in critical_warning(result.findings):
            click.echo(line, err=True)


def critical_warning(findings: tuple[Finding, ...], shown: int = 5) -> list[str]:
    """Lines warning that the baseline records critical findings (payloads that run on load
    and similar): suppressing them is rarely what a reviewer meant."""
    critical = [f for f in findings if f.severity is Severity.CRITICAL]
    if not critical:
        return []
    lines = [f"ckptguard: warning: the baseline records {len(critical)} critical finding(s); "
             "once committed they no longer fail the gate. Review each before committing:"]
    lines += [f"  {f.rule_id}  {printable(f.location.describe())}" for f in critical[:shown]]
    if len(critical) > shown:
        lines.append(f"  … and {len(critical) - shown} more")
    return lines
