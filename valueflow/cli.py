"""The ``valueflow`` command line. The only module that imports the stage packages.

Each stage package contributes its commands through ``<package>/commands.py`` with a ``register(app)``
function; heavy libraries are imported inside the commands so that ``valueflow --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer
from typer._click import exceptions as click_errors  # typer ships its own click: its exceptions are these
from typer.core import TyperGroup

from valueflow.io import InputError, disk_full_errno
from valueflow.outcome import EXIT_BAD_INPUT, EXIT_FAILED, RunFailed
from valueflow.redact import redact
from valueflow.taxonomy import THEORIES, UnknownValueError, get_taxonomy


class _UserErrorsAsOneLine(TyperGroup):
    """The one exit-code rule (``valueflow.outcome``): a user's mistake (unknown value, unusable file, target or
    param, an option out of range) is one ``error:`` line and exit code 2; a run that finished with failed items
    (:class:`RunFailed`, raised after its output is written) is one ``failed:`` line and exit code 1.

    Done here, in the command group, so every command gets it and tests driving the app see what users see. Every
    line passes through the redaction step (``valueflow.redact``): an error may quote a URL or a server's answer.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RunFailed as err:
            _line(f"failed: {err}")
            raise typer.Exit(EXIT_FAILED) from None
        except (UnknownValueError, InputError, FileNotFoundError) as err:
            _line(f"error: {err}")
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except (PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError) as err:  # an unwritable output
            _line(f"error: {err.filename or ''}: cannot be written: {err.strerror or err}")
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except OSError as err:  # a full disk, quota or file-size limit: one line too
            if disk_full_errno(err) is None:
                raise
            # every output is written under a temporary name and renamed (valueflow.io.atomic_path): the old file stays
            _line(f"error: {err.filename or 'an output'}: cannot be written: {err.strerror or err} (nothing was replaced)")
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except click_errors.NoArgsIsHelpError:
            raise
        except click_errors.UsageError as err:  # an option of the wrong type or out of range, a missing argument
            where = f"{err.ctx.command_path}: " if err.ctx is not None else ""
            _line(f"error: {where}{err.format_message()}")
            raise typer.Exit(EXIT_BAD_INPUT) from None


def _line(message: str) -> None:
    typer.echo(redact(" ".join(message.split("\n"))), err=True)


app = typer.Typer(
    cls=_UserErrorsAsOneLine,
    help="valueflow: build VIDB, train HiVES, score value intensities, study steering, publish releases.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

STAGE_COMMANDS = ("builders.commands", "hives_model.commands", "evaluation.commands", "cards.commands")


@app.command()
def values(
    theory: str | None = typer.Option(None, "--theory", "-t", help=f"Only this theory: {', '.join(THEORIES)}."),
    leaves: bool = typer.Option(False, "--leaves", help="Also list the refined leaves with their paths."),
) -> None:
    """Print the value taxonomy as a table: theory, value, path, concordance group, definition."""
    tax = get_taxonomy()
    if theory is not None and theory not in THEORIES:
        raise typer.BadParameter(f"unknown theory {theory!r}; valid theories: {', '.join(THEORIES)}", param_hint="--theory")
    rows = []
    for v in tax.values if theory is None else tax.values_of(theory):
        rows.append((v.theory, v.name, " / ".join(v.path), v.concordance_group, v.definition))
        if leaves:
            for leaf in tax.leaves_of(v.name):
                rows.append((v.theory, f"  {leaf.name}", " / ".join(tax.path(v.name, leaf.name)), "", leaf.definition))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    header = ("theory", "value", "path (level_1 / level_2 / level_3)", "concordance", "definition")
    widths = [max(w, len(h)) for w, h in zip(widths, header)]
    for row in (header, *rows):
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4])


def _register_stage_commands() -> None:
    for module in STAGE_COMMANDS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name == module:  # that stage package has no commands yet
                continue
            raise
        mod.register(app)


_register_stage_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
