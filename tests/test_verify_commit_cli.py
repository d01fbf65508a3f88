"""edgetrain verify-commit: JSON contract, errors."""
from __future__ import annotations

import json

from edgetrain import cli


def test_verify_commit_prints_the_counts(capsys, tmp_path):
    out_file = tmp_path / "v.json"
    assert cli.main(["verify-commit", "--memory-map", "flash-mcu", "--commits", "3", "--json", str(out_file)]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("commits", "injection_points", "recovered_old", "recovered_new", "corrupt"):
        assert key in result
    assert result["commits"] == 3 and result["corrupt"] == 0 and result["injection_points"] > 0
    assert result["recovered_old"] + result["recovered_new"] == result["injection_points"]
    assert list(result["memory_maps"]) == ["flash-mcu"]
    assert json.loads(out_file.read_text()) == result


def test_verify_commit_exhaustive_covers_four_technologies(capsys):
    assert cli.main(["verify-commit", "--exhaustive"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted(result["memory_maps"]) == ["flash-mcu", "mram-mcu", "pcm-mcu", "rram-mcu"]
    assert result["corrupt"] == 0 and result["retry_failed"] == 0
    for counts in result["memory_maps"].values():
        assert counts["injection_points"] >= 1000 and counts["injection_points"] == counts["device_ops"]


def test_verify_commit_errors_are_one_line(capsys):
    assert cli.main(["verify-commit", "--memory-map", "no-such-mcu"]) == 2
    err = capsys.readouterr().err
    assert "memory map file 'no-such-mcu' does not exist; give a preset" in err and err.count("\n") == 1
    assert cli.main(["verify-commit", "--model", "no-such-model", "--memory-map", "rram-mcu"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err
