"""The thin command-line layer: parse options, call the library, render, set the exit code.

Policy lives in ``ckptguard.api`` and ``ckptguard.policy``: the CLI only turns flags into a
``Config`` and results into reports and an exit code.
"""

from __future__ import annotations

import sys
from dataclasses import replace

import click

from ckptguard import __version__
from ckptguard.api import scan
from ckptguard.cli_support import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    EXIT_NOTHING_JUDGED,
    Exit,
    PathArgumentsCommand,
    build_config,
    config_option,
    debug_option,
    guarded,
    refuse_linked_output,
    write_output,
)
from ckptguard.model import ScanResult, Severity
from ckptguard.progress import terminal_progress
from ckptguard.report import RENDERERS

SEVERITIES = [s.label for s in Severity]
CLI_ARTIFACT_TIMEOUT = 300.0  # seconds per top-level file when neither --timeout nor the file say


def effective_timeout(flag: float | None, configured: float | None) -> float | None:
    """Seconds per file: ``--timeout``, else the configuration file's ``timeout``, else
    ``CLI_ARTIFACT_TIMEOUT``; 0 from either turns the budget off (None)."""
    chosen = flag if flag is not None else configured if configured is not None \
        else CLI_ARTIFACT_TIMEOUT
    return chosen or None


@click.group()
@click.version_option(__version__, prog_name="ckptguard")
def main() -> None:
    """Scan machine-learning checkpoints for payloads, backdoors and license problems,
    without loading them."""


def pair_outputs(formats: tuple[str, ...], outputs: tuple[str, ...]
                 ) -> list[tuple[str, str | None]]:
    """(format, file or None for standard output): outputs pair with formats in order."""
    chosen = formats or ("text",)
    if len(outputs) > len(chosen):
        raise click.UsageError("more --output than --format: give one --format per --output")
    pairs = [(name, outputs[i] if i < len(outputs) else None) for i, name in enumerate(chosen)]
    if sum(1 for _, target in pairs if target is None) > 1:
        raise click.UsageError("only one report can go to standard output: "
                               "give an --output for each further --format")
    return pairs


def _report(result: ScanResult, name: str, *, quiet: bool, colour: bool,
            category: str | None = None) -> str:
    """One report: rule names and help from the shipped rules, URIs relative to the working
    directory (SARIF's %SRCROOT%), the SARIF category when given."""
    from pathlib import Path

    from ckptguard.engine.ruleset import RuleSet
    from ckptguard.report import render_report

    # JSON stays exactly what ckptguard.report.renderer("json") gives a Python API user.
    rules = RuleSet.load().rules if name != "json" else None
    return render_report(name, result, colour=colour, rules=rules, category=category,
                         root=str(Path.cwd()), quiet=quiet)


@main.command("scan", cls=PathArgumentsCommand)
@click.argument("paths", nargs=-1)
@click.option("--format", "formats", type=click.Choice(RENDERERS), multiple=True,
              help="Report format: text, json or sarif (repeat for several reports).  "
                   "Default: text.")
@click.option("--output", "-o", "outputs", type=click.Path(dir_okay=False), multiple=True,
              help="Write the report to this file; one per --format, paired in order.")
@click.option("--fail-on", type=click.Choice(SEVERITIES),
              help="Exit 1 when a finding is at or above this severity.  [default: high]")
@config_option
@click.option("--baseline", type=click.Path(dir_okay=False),
              help="Fail only on findings not in this baseline file.")
@click.option("--exclude", "excludes", multiple=True, metavar="GLOB",
              help="Skip paths matching this glob (repeatable; adds to the configuration).")
@click.option("--weights/--no-weights", default=None,
              help="Also run the weight-statistics checks (reads tensor data).")
@click.option("--digests", is_flag=True, default=None,
              help="SHA-256 of every artifact in the JSON report, however large (by default "
                   "only artifacts up to 64 MiB: hashing reads every byte of a checkpoint).")
@click.option("--base", type=click.Path(exists=True),
              help="A base checkpoint to compare the scanned one with.")
@click.option("--jobs", "-j", type=click.IntRange(min=0), default=None,
              help="Use this many CPUs (0: all): files are scanned in that many processes, "
                   "and CPUs the files leave idle compute one checkpoint's weight statistics "
                   "in threads.  [default: files one at a time, a checkpoint's weight "
                   "statistics on every usable CPU; -j 1 keeps to one CPU]")
@click.option("--quiet", "-q", is_flag=True,
              help="Show only findings that fail the gate; no progress bar.")
@click.option("--no-progress", is_flag=True, help="Never show a progress bar.")
@click.option("--sarif-category", metavar="NAME",
              help="SARIF automationDetails.id: GitHub keeps one analysis per category.")
@click.option("--hf-cache", is_flag=False, flag_value="", default=None, metavar="[DIR]",
              help="Scan the Hugging Face hub cache (default: $HF_HUB_CACHE, $HF_HOME/hub or "
                   "~/.cache/huggingface/hub), reported by repo id and revision.")
@click.option("--include-skipped", is_flag=True,
              help="Also scan folders skipped by name (.git, venv, node_modules, caches).")
@click.option("--timeout", "artifact_timeout", type=click.FloatRange(min=0), default=None,
              metavar="SECONDS",
              help="Wall-clock budget per top-level file, enforced in a worker process that is "
                   "stopped when it runs out (a finding).  0 disables.  [default: the "
                   "configuration file's timeout, else 300]")
@debug_option
def scan_command(paths: tuple[str, ...], formats: tuple[str, ...], outputs: tuple[str, ...],
                 fail_on: str | None, config_file: str | None, baseline: str | None,
                 excludes: tuple[str, ...], weights: bool | None, digests: bool | None,
                 base: str | None, jobs: int | None,
                 quiet: bool, no_progress: bool, sarif_category: str | None, hf_cache: str | None,
                 include_skipped: bool, artifact_timeout: float | None, debug: bool) -> None:
    """Scan files, folders and archives.  Exit codes: 0 nothing at or above the gate, 1 findings
    at or above it, 2 usage, configuration or internal error, 3 nothing was judged (the paths
    held no model, archive or repo folder)."""
    if not paths and hf_cache is None:
        raise click.UsageError("name at least one PATH to scan (or use --hf-cache)")
    pairs = pair_outputs(formats, outputs)
    for _, target in pairs:
        if target is not None:
            refuse_linked_output(target)  # before the scan, not after minutes of it
    with guarded(debug):
        config = build_config(config_file, {
            "fail_on": Severity.parse(fail_on) if fail_on else None,
            "weights": weights, "base": base, "baseline": baseline, "digests": digests})
        if excludes:
            config = replace(config, excludes=(*config.excludes, *excludes))
        config = replace(config, include_skipped=include_skipped or config.include_skipped,
                         artifact_timeout=effective_timeout(artifact_timeout,
                                                            config.artifact_timeout))
        cache_dir = None
        if hf_cache is not None:
            from ckptguard.hfcache import default_cache_dir

            cache_dir = hf_cache or str(default_cache_dir())
        progress = None if no_progress else terminal_progress(sys.stderr, quiet=quiet)
        result = scan(paths, config, jobs=jobs, progress=progress,
                      hf_cache=cache_dir)
        for name, target in pairs:
            text = _report(result, name, quiet=quiet,
                           colour=target is None and sys.stdout.isatty(),
                           category=sarif_category)
            if target is None:
                click.echo(text, nl=False)
            else:
                write_output(target, text)
        if not any(name == "text" and target is None for name, target in pairs):
            from ckptguard.report.text_report import summary_line

            click.echo(f"ckptguard: {summary_line(result)}", err=True)
        if result.judged_nothing:
            click.echo("ckptguard: nothing was judged (no model, archive or repo folder in the "
                       f"paths given); exit {EXIT_NOTHING_JUDGED}", err=True)
            raise Exit(EXIT_NOTHING_JUDGED)
        raise Exit(EXIT_FINDINGS if result.failed else EXIT_CLEAN)


# Further command groups, each from its own module.
from ckptguard.cli_baseline import baseline_group  # noqa: E402
from ckptguard.cli_config import config_group  # noqa: E402

main.add_command(config_group)
main.add_command(baseline_group)

from ckptguard.cli_rules import rules_group  # noqa: E402

main.add_command(rules_group)

from ckptguard.cli_sbom import sbom_command  # noqa: E402

main.add_command(sbom_command)

from ckptguard.cli_fleet import fleet_group  # noqa: E402

main.add_command(fleet_group)

from ckptguard.cli_probe import probe_command  # noqa: E402

main.add_command(probe_command)

from ckptguard.cli_allowlist import allowlist_group  # noqa: E402

main.add_command(allowlist_group)


if __name__ == "__main__":
    main()
