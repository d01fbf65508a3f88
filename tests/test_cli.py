"""The command-line entry point itself (subcommands have their own tests)."""
from __future__ import annotations

import json
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


# ---- first-contact rough edges (issue 15) -------------------------------------------------------

def test_help_has_no_markup_and_no_unavailable_backend(capsys):
    for command in ("run", "plan", "experiment", "demo", "inspect", "verify-commit", "export"):
        assert cli.main([command, "--help"]) == 0
        text = capsys.readouterr().out
        assert "``" not in text and ":func:" not in text, command
    assert cli.main(["run", "--help"]) == 0
    assert "{c,numpy,arm}" in capsys.readouterr().out  # arm: the firmware_sim plug-in engine, installed with the package
    assert cli.main(["run", "--model", "mlp", "--cpu", "cortex-m4"]) == 2
    assert "--cpu cortex-m4 chooses the firmware's CPU: it needs --backend arm" in capsys.readouterr().err


def test_inspect_accepts_the_names_run_and_plan_accept(capsys):
    assert cli.main(["inspect", "mcu-cnn-pretrained"]) == 0
    assert "accepted by the C core and the Python reader" in capsys.readouterr().out
    assert cli.main(["inspect", "mcu-cnn"]) == 2
    assert "is a preset built in code, with no .etm file" in capsys.readouterr().err


def test_plots_without_matplotlib_fail_before_work_and_write_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    out = tmp_path / "r.json"
    assert cli.main(["run", "--model", "mlp", "--samples", "5", "--memory-map", "rram-mcu", "--plots", str(tmp_path / "p"),
                     "--json", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "wear plots need matplotlib: pip install 'edgetrain[plots]'" in err and "data:" not in err  # before any work
    assert not out.exists()


def test_a_plot_failure_never_loses_the_report(tmp_path, capsys, monkeypatch):
    from firmware_sim.device import MemoryMapDevice

    def disk_full(self, backend, folder):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(MemoryMapDevice, "write_plots", disk_full)  # the plot fails after the run
    out = tmp_path / "r.json"
    assert cli.main(["run", "--model", "mlp", "--samples", "5", "--memory-map", "rram-mcu", "--plots", str(tmp_path / "plots"),
                     "--json", str(out), "--no-progress"]) == 0
    report = json.loads(out.read_text())
    assert report["samples"] == 5 and "plots_error" in report
    assert "no plots written" in capsys.readouterr().err
