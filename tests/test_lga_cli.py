"""`--optimizer lga` through the CLI: `edgetrain plan` (JSON, the full-matrix baselines, the pinned
plans of tests/golden/plan_lga_r4.json written by tools/gen_plan_golden.py), `edgetrain run`
(C and NumPy backends giving the same NVM bytes, an emulated memory map, the report), clear errors
for bad flags, and `verify-commit --updates lga`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgetrain import cli
from edgetrain.backends import CPlanner
from edgetrain.commands.lga_flags import lga_train_config
from edgetrain.config import LGA_OPTIMIZERS
from edgetrain.model.presets import preset

GOLDEN = Path(__file__).parent / "golden" / "plan_lga_r4.json"
MCU_CNN = [("conv1", 8, 9), ("conv2", 16, 72), ("fc1", 64, 400), ("fc2", 10, 64)]
MCU_CNN_WEIGHTS = sum(n * m for _, n, m in MCU_CNN)


def plan_json(capsys, *args) -> dict:
    assert cli.main(["plan", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def run_json(tmp_path, capsys, *args) -> dict:
    out = tmp_path / "report.json"
    assert cli.main(["run", *args, "--json", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    return json.loads(out.read_text())


@pytest.mark.parametrize("opt, per_entry", [("sgd", 2), ("momentum", 6), ("adam", 14)])
def test_plan_json_gives_the_factor_parts_and_the_full_baselines(capsys, opt, per_entry):
    r = plan_json(capsys, "mcu-cnn", "--optimizer", "lga", "--rank", "4", "--lga-optimizer", opt)
    assert r["optimizer"] == "lga" and r["rank"] == 4 and r["aux_bytes"] == sum(r["parts"].values())
    assert [(l["name"], l["n"], l["m"]) for l in r["layers"]] == MCU_CNN
    for l in r["layers"]:  # header + per-entry bytes, each of the 2..6 arrays padded to 8 bytes
        assert 0 <= l["state_bytes"] - 64 - per_entry * 4 * (l["n"] + l["m"]) < 6 * 8
    assert r["parts"]["lga_state"] == sum((l["state_bytes"] + 7) // 8 * 8 for l in r["layers"])
    # written out: the largest gradient scratch is fc1's int64 sums 8 * 4 * (64 + 400) + v + u, the largest
    # pre-activation buffer conv1's 26 x 26 x 8 int16
    assert r["parts"]["lga_scratch"] == 8 * 4 * 64 + 8 * 4 * 400 + 32 + 8 + 2 * 26 * 26 * 8
    sgd = plan_json(capsys, "mcu-cnn", "--optimizer", "sgd")["aux_bytes"]
    assert r["full_momentum_bytes"] == sgd + 4 * MCU_CNN_WEIGHTS
    assert r["full_adam_bytes"] == sgd + 12 * MCU_CNN_WEIGHTS


@pytest.mark.parametrize("name", ["mcu-cnn", "paper-cnn"])
def test_lga_adam_needs_at_least_30_percent_less_than_full_adam(name):
    planner = CPlanner(preset(name))
    r = planner.plan(lga_train_config(4, "adam"))["total"]
    from edgetrain.commands.lga_flags import full_baselines

    full = full_baselines(planner)
    assert r <= 0.7 * full["full_adam_bytes"]
    assert r <= full["full_momentum_bytes"]  # the seed's claim: low-rank Adam at momentum's memory (or less)


def test_plans_match_the_pinned_figures():
    """The LGA parts and per-layer figures equal tests/golden/plan_lga_r4.json exactly (they do not depend
    on the ABI); the whole arena may not grow more than 3 %. A deliberate change regenerates the file:
    python tools/gen_plan_golden.py lga."""
    golden = json.loads(GOLDEN.read_text())
    assert golden["provenance"].startswith("written by tools/gen_plan_golden.py")
    for name, pinned in golden["plans"].items():
        planner = CPlanner(preset(name))
        from edgetrain.commands.lga_flags import full_baselines

        assert full_baselines(planner)["full_adam_bytes"] <= pinned["baselines"]["full_adam_bytes"] * (1 + golden["max_growth"])
        for opt in LGA_OPTIMIZERS:
            cfg = lga_train_config(golden["rank"], opt)
            now = planner.plan(cfg)
            then = pinned[opt]["parts"]
            assert (now["lga_state"], now["lga_scratch"]) == (then["lga_state"], then["lga_scratch"]), (name, opt)
            assert now["total"] <= then["total"] * (1 + golden["max_growth"]), (name, opt, now["total"], then["total"])
            assert [{k: f[k] for k in pinned[opt]["layers"][0]} for f in planner.lga_layers(cfg)] == pinned[opt]["layers"]


@pytest.mark.parametrize("opt", ["adam", "momentum", "sgd"])
def test_run_c_and_numpy_give_the_same_weights(tmp_path, capsys, mnist_dir, opt):
    common = ["--model", "mcu-cnn", "--optimizer", "lga", "--lga-optimizer", opt, "--rank", "2", "--merge-every", "10",
              "--samples", "40", "--seed", "3", "--data-dir", str(mnist_dir)]
    c = run_json(tmp_path, capsys, *common, "--backend", "c")
    numpy = run_json(tmp_path, capsys, *common, "--backend", "numpy")
    assert c["weights_sha256"] == numpy["weights_sha256"]
    for key in ("accuracy", "total_cell_writes", "max_writes_per_cell", "other_cell_writes"):
        assert c[key] == numpy[key], key
    assert c["total_cell_writes"] > 0 and c["max_writes_per_cell"] <= 4  # 40 samples / K = 10: four merges
    assert c["lga"]["optimizer"] == opt and c["lga"]["merge_every"] == 10
    assert c["lga"]["layer_ranks"] == {n: 2 for n, _, _ in MCU_CNN}


def test_run_with_layer_ranks_and_a_memory_map(tmp_path, capsys, mnist_dir):
    r = run_json(tmp_path, capsys, "--model", "mcu-cnn", "--optimizer", "lga", "--layer-ranks", "1,2,8,3",
                 "--merge-every", "5", "--samples", "20", "--data-dir", str(mnist_dir), "--memory-map", "rram-mcu")
    assert r["lga"]["layer_ranks"] == {"conv1": 1, "conv2": 2, "fc1": 8, "fc2": 3}
    assert r["plan"]["lga_state"] > 0 and r["total_cell_writes"] > 0


@pytest.mark.parametrize("flags, message", [
    (["--lga-lr", "0.5"], "--lga-lr"), (["--merge-every", "0"], "--merge-every: 0 is outside 1..65535"), (["--rank", "9"], "--rank: 9 is outside 1..8"),
    (["--beta1", "1.0"], "--beta1"), (["--layer-ranks", "1,2"], "--layer-ranks")])
def test_bad_flags_are_one_line_errors(capsys, mnist_dir, flags, message):
    assert cli.main(["run", "--model", "mcu-cnn", "--optimizer", "lga", "--samples", "5", "--data-dir", str(mnist_dir),
                     "--no-progress", *flags]) != 0
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_verify_commit_replays_lga_merges(capsys):
    assert cli.main(["verify-commit", "--updates", "lga"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["updates"] == "lga" and sorted(result["memory_maps"]) == ["flash-mcu", "mram-mcu", "pcm-mcu", "rram-mcu"]
    assert result["corrupt"] == 0 and result["retry_failed"] == 0 and result["injection_points"] > 0
