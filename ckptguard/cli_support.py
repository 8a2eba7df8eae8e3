"""What the command-line modules share: exit codes, error handling, and building the Config."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import click

from ckptguard.api import ScanError
from ckptguard.baseline import BaselineError
from ckptguard.config import Config
from ckptguard.config_file import ConfigError, resolve_config

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
EXIT_NOTHING_JUDGED = 3  # the paths held nothing to judge: a gate pointed at the wrong place


class PathArgumentsCommand(click.Command):
    """A command that takes paths, refusing an argument that reads as an option and is also the
    name of a file or folder here.

    Tools that append file names to a command line make every name a possible option: pre-commit
    passes each staged file after the hook's own arguments, and a CI step may run
    ``ckptguard scan $(git diff --name-only)``.  A committed file named ``--exclude=*.pkl`` then
    excluded every pickle, and one named ``--baseline=x/config.json`` would have supplied the
    baseline, so a malicious model beside it passed the gate.  Such a name is refused (exit 2)
    rather than guessed at; after ``--`` every argument is a path."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        for argument in args:
            if argument == "--":
                break
            if argument.startswith("-") and argument != "-" and os.path.lexists(argument):
                raise click.UsageError(
                    f"{argument!r} reads as an option but is also a file or folder here; "
                    f"give paths after '--' (ckptguard {self.name} [OPTIONS] -- PATH...), "
                    "or rename it", ctx)
        return super().parse_args(ctx, args)


class OutputError(click.ClickException):
    """A report or list that cannot be written where the user asked (exit 2, not 1: 1 means
    findings)."""

    exit_code = EXIT_ERROR


def refuse_linked_output(path: str | os.PathLike[str]) -> None:
    """Stop before any work when a named output is a symbolic link (``write_output`` checks
    again when it writes)."""
    if os.path.islink(path):
        raise OutputError(f"{os.fspath(path)} is a symbolic link; not writing through it "
                          "(remove it, or name another file)")


def write_output(path: str | os.PathLike[str], text: str) -> None:
    """Write a report or list the user named, never through a symbolic link at that name: a
    report written inside a checkout of code under review (``ckptguard.sarif`` in CI) would
    otherwise land wherever a link committed under that name points.  Such a link is an error
    (exit 2); the file is created or truncated otherwise, as ``open(path, "w")`` would."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    refuse_linked_output(path)  # also where O_NOFOLLOW does not exist
    try:
        handle = os.open(path, flags, 0o666)
    except OSError as exc:
        raise OutputError(f"cannot write {os.fspath(path)}: {exc.strerror}") from None
    with open(handle, "w", encoding="utf-8") as stream:
        stream.write(text)


class Exit(Exception):
    """Leave the command with this exit code (raised inside ``guarded``)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@contextmanager
def guarded(debug: bool) -> Iterator[None]:
    """Request errors become a one-line message and exit code 2; so do unexpected exceptions,
    which show their traceback only with ``--debug``."""
    try:
        yield
    except Exit as done:
        raise SystemExit(done.code) from None
    except (ScanError, ConfigError, BaselineError) as exc:
        click.echo(f"ckptguard: {exc}", err=True)
        raise SystemExit(EXIT_ERROR) from None
    except click.ClickException:
        raise
    except KeyboardInterrupt:
        click.echo("ckptguard: interrupted; the scan is incomplete", err=True)
        raise SystemExit(EXIT_ERROR) from None
    except Exception as exc:  # the one place where unexpected errors become exit code 2
        if debug:
            raise
        click.echo(f"ckptguard: internal error: {type(exc).__name__}: {exc} "
                   "(run again with --debug for the traceback)", err=True)
        raise SystemExit(EXIT_ERROR) from None


def build_config(config_file: str | None, overrides: Mapping[str, Any]) -> Config:
    """The configuration file (named, or discovered upward) with command-line values on top."""
    return resolve_config(config_file, overrides=overrides)


def config_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--config", "config_file", type=click.Path(dir_okay=False),
                        help="Read this configuration file instead of looking for "
                             ".ckptguard.toml / pyproject.toml upward.")(function)


def debug_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--debug", is_flag=True,
                        help="Show tracebacks of internal errors.")(function)
