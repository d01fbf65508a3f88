"""`edgetrain plan`: the C planner's breakdown for presets and model files, the JSON contract,
budget mode (global and per layer, and the answer when nothing fits), errors, and the pinned plans
of mcu-cnn and paper-cnn (tests/golden/plan_lrt_r4.json, written by tools/gen_plan_golden.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgetrain import cli
from edgetrain.backends import CPlanner, c_plan
from edgetrain.commands.plan import lrt_train_config, parse_size
from edgetrain.config import TrainConfig
from edgetrain.model.presets import preset

GOLDEN = Path(__file__).parent / "golden" / "plan_lrt_r4.json"
# mcu-cnn's trainable layers written out from its shapes: (name, n, m = k*k*C_in for conv).
MCU_CNN = [("conv1", 8, 9), ("conv2", 16, 72), ("fc1", 64, 400), ("fc2", 10, 64)]


def plan_json(capsys, *args, status=0) -> dict:
    assert cli.main(["plan", *args, "--json"]) == status
    return json.loads(capsys.readouterr().out)


def test_plan_json_follows_the_contract(capsys):
    r = plan_json(capsys, "mcu-cnn", "--rank", "4")
    assert r["aux_bytes"] == c_plan(preset("mcu-cnn"), lrt_train_config(4))["total"] == sum(r["parts"].values())
    assert [(l["name"], l["n"], l["m"]) for l in r["layers"]] == MCU_CNN
    for l in r["layers"]:
        planes = (2 * l["n"] + 7) // 8 + (2 * l["m"] + 7) // 8  # column 1's two low bits per row
        assert l["lrt_bytes"] == 60 + 2 * 4 * (l["n"] + l["m"]) + planes and l["rank"] == 4
    assert r["parts"]["lrt_state"] == sum((l["lrt_bytes"] + 7) // 8 * 8 for l in r["layers"])
    assert set(r["parts"]) >= {"context", "activations", "gradients", "optimizer", "prng", "lrt_state", "lrt_scratch"}
    r8 = plan_json(capsys, "mcu-cnn", "--rank", "8")
    assert r8["aux_bytes"] > r["aux_bytes"] and [l["lrt_bytes"] for l in r8["layers"]] == [
        60 + 16 * (n + m) + (2 * n + 7) // 8 + (2 * m + 7) // 8 for _, n, m in MCU_CNN]


def test_plan_text_and_other_optimizers(capsys):
    assert cli.main(["plan", "mlp"]) == 0
    out = capsys.readouterr().out
    total = c_plan(preset("mlp"), lrt_train_config(4))["total"]
    assert f"mlp, optimizer lrt, rank 4: arena {total:,} B" in out and "fc1" in out and "lrt_state" in out
    sgd = plan_json(capsys, "mlp", "--optimizer", "sgd")
    assert sgd["aux_bytes"] == c_plan(preset("mlp"), TrainConfig())["total"]
    assert sgd["parts"]["lrt_state"] == 0 and [l["name"] for l in sgd["layers"]] == ["fc1", "fc2"]


def test_plan_of_a_model_file_equals_its_preset(tmp_path, capsys):
    from edgetrain.model import etm

    path = tmp_path / "m.etm"
    etm.save(path, preset("mcu-cnn", 3))
    assert plan_json(capsys, str(path), "--rank", "3") == plan_json(capsys, "mcu-cnn", "--rank", "3")


def test_budget_picks_the_highest_rank_that_fits(capsys):
    planner = CPlanner(preset("mcu-cnn"))
    totals = {r: planner.plan(lrt_train_config(r))["total"] for r in range(1, 9)}
    assert all(totals[r] < totals[r + 1] for r in range(1, 8))
    for budget, want in ((totals[5], 5), (totals[5] - 1, 4), (totals[8] + 10**6, 8), (totals[1], 1)):
        r = plan_json(capsys, "mcu-cnn", "--budget", str(budget))
        assert r["fits"] and r["rank"] == want == r["global_rank"] and r["aux_bytes"] == totals[want]
        assert r["headroom_bytes"] == budget - totals[want]
    kib = plan_json(capsys, "mcu-cnn", "--budget", "40KiB")
    assert kib["budget_bytes"] == 40960 and kib["rank"] == max(r for r in totals if totals[r] <= 40960)


def test_budget_says_which_part_does_not_fit(capsys):
    parts = CPlanner(preset("mcu-cnn")).plan(lrt_train_config(1))
    base = parts["total"] - parts["lrt_state"] - parts["lrt_scratch"]
    # Below what the model needs without any low-rank state: the largest other part is named.
    r = plan_json(capsys, "mcu-cnn", "--budget", "24KiB", status=1)
    assert not r["fits"] and r["rank"] is None and base > 24576
    assert r["over_bytes"] == parts["total"] - 24576 and r["part"] == "gradients"
    assert f"need {base:,} B on their own, {base - 24576:,} B over" in r["message"]
    assert "shrink the largest, gradients" in r["message"] and f"rank 1 needs a budget of {parts['total']:,} B" in r["message"]
    # What would fit instead: the other optimizers' arenas (et_plan), listed where they fit.
    others = r["other_optimizers_bytes"]
    assert others["none"] <= 24576 < others["bias"] < others["sgd"]
    assert f"within 24,576 B fit: --optimizer none ({others['none']:,} B)" in r["message"]
    # Room for everything but the low-rank parts at rank 1.
    r = plan_json(capsys, "mcu-cnn", "--budget", str(base + 100), status=1)
    assert parts["lrt_scratch"] > parts["lrt_state"]  # at rank 1 the shared scratch outweighs the states
    assert r["part"] == "lrt_scratch" and r["over_bytes"] == parts["total"] - base - 100
    assert "do not fit the 100 B the other parts leave" in r["message"]
    assert cli.main(["plan", "mcu-cnn", "--budget", "24KiB"]) == 1
    assert "no rank fits" in capsys.readouterr().out


def test_per_layer_budget_uses_the_room_between_two_global_ranks(capsys):
    planner = CPlanner(preset("mcu-cnn"))
    lo, hi = (planner.plan(lrt_train_config(r))["total"] for r in (4, 5))
    budget = (lo + hi) // 2
    r = plan_json(capsys, "mcu-cnn", "--budget", str(budget), "--per-layer")
    ranks = [int(v) for v in r["layer_ranks"].split(",")]
    assert r["global_rank"] == 4 and all(v >= 4 for v in ranks) and sum(ranks) > 16
    assert [l["rank"] for l in r["layers"]] == ranks and lo < r["aux_bytes"] <= budget
    # Greedy stops only when no single raise fits any more.
    layer_idx = [l["index"] for l in r["layers"]]
    for k, v in enumerate(ranks):
        if v < 8:
            trial = [0] * len(preset("mcu-cnn").layers)
            for i, rank in zip(layer_idx, ranks):
                trial[i] = rank
            trial[layer_idx[k]] += 1
            assert planner.plan(lrt_train_config(4, tuple(trial)))["total"] > budget


@pytest.mark.parametrize("args, message", [
    (["mcu-cnn", "--rank", "0"], "argument --rank: 0 is outside 1..8"),
    (["mcu-cnn", "--rank", "9"], "argument --rank: 9 is outside 1..8"),
    (["mcu-cnn", "--per-layer"], "give --budget SIZE too"),
    (["mcu-cnn", "--budget", "lots"], "give a size such as"),
    (["mcu-cnn", "--budget", "1KiB", "--optimizer", "sgd"], "use it with --optimizer lrt"),
    (["resnet"], "unknown model 'resnet'"),
])
def test_errors_are_one_clear_line(capsys, args, message):
    assert cli.main(["plan", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgetrain plan: error:") and message in err


def test_sizes():
    assert [parse_size(s) for s in ("24KiB", "24576", "24576B", "1.5MiB", "64kB", "2MB")] == [
        24576, 24576, 24576, 1572864, 64000, 2000000]


def test_plans_do_not_grow_beyond_the_pinned_figures():
    """Fails when the arena of mcu-cnn or paper-cnn (lrt, r = 4) grows > 3 % over tests/golden/plan_lrt_r4.json.
    A deliberate change regenerates it: python tools/gen_plan_golden.py."""
    golden = json.loads(GOLDEN.read_text())
    assert golden["provenance"].startswith("written by tools/gen_plan_golden.py")
    for name, pinned in golden["plans"].items():
        planner = CPlanner(preset(name))
        now = planner.plan(lrt_train_config(golden["rank"]))
        limit = pinned["parts"]["total"] * (1 + golden["max_growth"])
        assert now["total"] <= limit, (f"{name}: the arena grew from {pinned['parts']['total']} to {now['total']} B "
                                       f"(> {golden['max_growth']:.0%}); regenerate the golden file if that is intended")
        lrt_now = now["lrt_state"] + now["lrt_scratch"]
        lrt_then = pinned["parts"]["lrt_state"] + pinned["parts"]["lrt_scratch"]
        assert lrt_now <= lrt_then * (1 + golden["max_growth"]), f"{name}: LRT parts grew {lrt_then} -> {lrt_now} B"
        assert [(l["name"], l["lrt_bytes"]) for l in planner.lrt_layers(lrt_train_config(golden["rank"]))] == [
            (l["name"], l["lrt_bytes"]) for l in pinned["layers"]]


def test_a_closed_pipe_stops_the_command_quietly():
    """`edgetrain plan paper-cnn | head -1` (the reader closes first): no traceback on stderr."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "edgetrain.cli", "plan", "paper-cnn", "--rank", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the child has written anything: its first write gets EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
