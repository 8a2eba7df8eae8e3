"""``ckptguard sbom``: an SPDX 2.3 JSON document for the models under the given paths."""

from __future__ import annotations

import sys

import click

from ckptguard.cli_support import PathArgumentsCommand, write_output


@click.command("sbom", cls=PathArgumentsCommand)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write the document to this file instead of standard output.")
@click.option("--name", default="ckptguard-model-sbom", show_default=True,
              help="The SPDX document name.")
def sbom_command(paths: tuple[str, ...], output: str | None, name: str) -> None:
    """Describe models as an SPDX 2.3 JSON document (validated before it is written):
    one package per model, with checksums, declared and concluded licenses, LicenseRef
    definitions and relationships to base models."""
    from ckptguard.sbom.inventory import inventory
    from ckptguard.sbom.spdx_document import SbomError, build_document, render_json

    units = inventory(paths)
    if not units:
        click.echo("ckptguard: no model files or model repositories found", err=True)
        sys.exit(2)
    try:
        text = render_json(build_document(units, name=name))
    except SbomError as exc:
        click.echo(f"ckptguard: the SPDX document did not validate: {exc}", err=True)
        sys.exit(2)
    if output:
        write_output(output, text)
        click.echo(f"wrote {output}: {len(units)} model(s)", err=True)
    else:
        click.echo(text, nl=False)
