"""The console script users start from."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from valueflow.cli import app


def test_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "valueflow.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("values", "ingest"):
        assert command in out


def test_every_command_has_help():
    runner = CliRunner()
    for command in app.registered_commands:
        name = command.name or command.callback.__name__.replace("_", "-")
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage" in result.output


def test_values_prints_a_theory_as_a_table():
    result = CliRunner().invoke(app, ["values", "--theory", "mft"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split()[:2] == ["theory", "value"]
    assert len(lines) == 1 + 6 and all(line.startswith("mft") for line in lines[1:])
    assert "care-harm" in result.output


def test_values_rejects_an_unknown_theory():
    result = CliRunner().invoke(app, ["values", "--theory", "kant"])
    assert result.exit_code != 0
    assert "unknown theory 'kant'" in result.output


def test_a_user_mistake_is_one_error_line_not_a_traceback(tmp_path):
    table = tmp_path / "answers.csv"
    table.write_text("text\nI kept my promise.\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", "from valueflow.cli import main; main()", "evaluate", str(table), "--value", "benevolance",
         "--judge", "embedding", "--out", str(tmp_path / "s.parquet")],
        capture_output=True, text=True,
    )
    assert done.returncode == 2
    assert "error: unknown value 'benevolance'; valid values:" in done.stderr
    assert "Traceback" not in done.stderr
