"""``ckptguard allowlist build``: derive a reviewable allowlist from a package's source."""

from __future__ import annotations

import sys

import click


@click.group("allowlist", short_help="Build allowlists of safe pickle globals.")
def allowlist_group() -> None:
    """Allowlists of safe pickle globals (see docs/allowlist.md)."""


@allowlist_group.command("build", short_help="Derive an allowlist from a package's source.")
@click.argument("source")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write the list here (default: standard output).")
@click.option("--context", multiple=True, metavar="PACKAGE|PATH",
              help="Other sources used to resolve bases and calls (e.g. torch for a library "
                   "of torch modules); analysed as needed, not listed.")
@click.option("--rejected", type=click.Path(dir_okay=False), default=None,
              help="Also write every class and function judged unsafe, with the reason.")
def build_command(source: str, output: str | None, context: tuple[str, ...],
                  rejected: str | None) -> None:
    """Judge every class and function of SOURCE (an installed package name, a package
    folder, a folder of packages, a wheel or an sdist) by static analysis, never importing
    it, and write the safe ones as a list file with a reason per entry.  Include the file
    in a scan with `allowlist-files` in the configuration."""

    from ckptguard.allowgen.build import build
    from ckptguard.allowgen.listfile import dump, rejected_lines
    from ckptguard.allowgen.sources import SourceError, read_sources
    from ckptguard.cli_support import write_output
    from ckptguard.engine.ruleset import RuleSet

    try:
        target = read_sources(source)
        extra = [read_sources(item) for item in context]
    except (SourceError, OSError) as exc:
        click.echo(f"ckptguard: {exc}", err=True)
        sys.exit(2)
    lists = RuleSet.load().lists
    safe, dangerous = lists["safe_globals"], lists["dangerous_callables"]
    result = build(target, context=extra, trusted=lambda n: n in safe,
                   refuse=lambda n: n in dangerous)
    text = dump(result)
    if output is None:
        click.echo(text, nl=False)
    else:
        write_output(output, text)
        click.echo(f"{output}: {len(result.safe)} entries "
                   f"({len(result.judged)} classes and functions judged)", err=True)
    if rejected is not None:
        write_output(rejected, "".join(f"{line}\n" for line in rejected_lines(result)))
