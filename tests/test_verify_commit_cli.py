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


def test_verify_commit_replays_real_sgd_commits_on_four_technologies(capsys):
    assert cli.main(["verify-commit", "--exhaustive", "--updates", "sgd"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["updates"] == "sgd" and result["model"] == "sim-tiny"
    assert sorted(result["memory_maps"]) == ["flash-mcu", "mram-mcu", "pcm-mcu", "rram-mcu"]
    assert result["corrupt"] == 0 and result["retry_failed"] == 0 and result["injection_points"] >= 1000
    assert result["recovered_old"] + result["recovered_new"] == result["injection_points"] == result["device_ops"]
    assert result["recovered_new"] > 0


def test_sgd_updates_are_the_commits_of_real_training_steps():
    """Weights change every step (top layer first), biases at each checkpoint; each update lists the
    rows that changed, checked here against the previous version."""
    import numpy as np

    from firmware_sim.commit import PARAMS, tensor_ids
    from firmware_sim.models import load_model
    from firmware_sim.verify import sgd_updates

    model = load_model("sim-tiny")
    updates = sgd_updates(model, 30, seed=2)
    assert len(updates) == 30 and {t for t, _, _ in updates} <= set(tensor_ids(model))
    assert any(t & PARAMS for t, _, _ in updates) and any(not t & PARAMS for t, _, _ in updates)
    state = {t: None for t in tensor_ids(model)}
    for t, new, rows in updates:
        if state[t] is not None:
            flat_old, flat_new = state[t].reshape(len(state[t]), -1), new.reshape(len(new), -1)
            changed = [i for i in range(len(flat_new)) if not np.array_equal(flat_old[i], flat_new[i])]
            assert changed == [i for first, n in rows for i in range(first, first + n)]
        state[t] = new


def test_verify_commit_takes_presets_and_model_files(tmp_path, capsys):
    from edgetrain.model import etm
    from edgetrain.model.presets import preset

    assert cli.main(["verify-commit", "--model", "mlp", "--memory-map", "rram-mcu", "--updates", "sgd", "--commits", "6"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "mlp" and result["corrupt"] == 0 and result["commits"] == 6
    path = tmp_path / "small.etm"
    etm.save(path, preset("mlp", 1))
    assert cli.main(["verify-commit", "--model", str(path), "--memory-map", "pcm-mcu", "--commits", "4"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "mlp" and result["corrupt"] == 0 and result["injection_points"] > 0


def test_verify_commit_prints_a_one_line_verdict_on_stderr(capsys):
    assert cli.main(["verify-commit", "--memory-map", "rram-mcu", "--commits", "2"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("edgetrain verify-commit: ok, 0 corrupt: sim-tiny, synthetic updates, linear schedule: "
                                   f"2 commits on 1 memory map, {result['injection_points']} power cuts")


def test_the_verdict_names_a_failure():
    from firmware_sim.commands.verify_commit import verdict

    result = {"model": "m", "updates": "sgd", "schedule": "exhaustive", "commits": 48, "memory_maps": {"a": {}, "b": {}},
              "injection_points": 1200, "recovered_old": 1100, "recovered_new": 97, "corrupt": 3, "retry_failed": 0,
              "elapsed_s": 2.5}
    assert verdict(result) == ("edgetrain verify-commit: FAIL: 3 corrupt recoveries, 0 failed retries; m, sgd updates, "
                               "exhaustive schedule: 48 commits on 2 memory maps, 1,200 power cuts (1,100 recovered old, "
                               "97 new) in 2.5 s")
