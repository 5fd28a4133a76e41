"""``advscale model``: what the model registry holds."""

from __future__ import annotations

import typer

from advscale.cli.common import handle_errors

app = typer.Typer(help="The model registry: registered names and families.",
                  no_args_is_help=True)


@app.command("list")
@handle_errors
def list_cmd(
    pattern: str = typer.Argument("*", help="Shell-style filter, e.g. 'wrn-28-*'."),
) -> None:
    """Print registered model names, one a line (families as patterns, e.g. wrn-D-W).

    Any timm model name works too (`advscale train --model resnet18`); timm's own list is
    `python -c "import timm; print(timm.list_models())"`.
    """
    from advscale.models import list_models  # torch: only when the command runs

    for name in list_models(pattern):
        typer.echo(name)
