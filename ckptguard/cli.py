"""The thin command-line layer: parse options, call the library, render, set the exit code."""

from __future__ import annotations

import sys

import click

from ckptguard import __version__
from ckptguard.api import ScanError, scan
from ckptguard.config import Config
from ckptguard.model import Severity
from ckptguard.report import RENDERERS, renderer

SEVERITIES = [s.label for s in Severity if s is not Severity.INFO]
EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


@click.group()
@click.version_option(__version__, prog_name="ckptguard")
def main() -> None:
    """Scan machine-learning checkpoints for payloads, backdoors and license problems,
    without loading them."""


@main.command("scan")
@click.argument("paths", nargs=-1, required=True)
@click.option("--format", "formats", type=click.Choice(RENDERERS), multiple=True,
              help="Report format (text, json, sarif).  Default: text.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write the report to this file instead of standard output.")
@click.option("--fail-on", type=click.Choice(SEVERITIES), default="high", show_default=True,
              help="Exit 1 when a finding is at or above this severity.")
def scan_command(paths: tuple[str, ...], formats: tuple[str, ...], output: str | None,
                 fail_on: str) -> None:
    """Scan files, folders and archives."""
    config = Config(fail_on=Severity.parse(fail_on))
    try:
        result = scan(paths, config)
    except ScanError as exc:
        click.echo(f"ckptguard: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    chosen = formats or ("text",)
    for name in chosen:
        if name == "text":
            text = renderer("text")(result) if output else \
                _text(result, colour=sys.stdout.isatty())
        else:
            text = renderer(name)(result)
        if output:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text)
        else:
            click.echo(text, nl=False)
    sys.exit(EXIT_FINDINGS if result.failed else EXIT_CLEAN)


def _text(result: object, *, colour: bool) -> str:
    from ckptguard.report.text_report import render

    return render(result, colour=colour)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
