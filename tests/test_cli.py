"""The command-line entry point itself (subcommands have their own tests)."""
from __future__ import annotations

import subprocess
import sys

import edgetrain
from edgetrain import cli


def test_version_flag(capsys):
    try:
        cli.main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.strip() == f"edgetrain {edgetrain.__version__}"


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "usage: edgetrain" in capsys.readouterr().err


def test_console_script_runs_as_module():
    proc = subprocess.run([sys.executable, "-m", "edgetrain", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and "edgetrain" in proc.stdout
