"""What the command-line modules share: exit codes, error handling, and building the Config."""

from __future__ import annotations

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
