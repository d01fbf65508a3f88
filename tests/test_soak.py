"""bench/soak.py runs end to end on a short stream: the schemes, --model and the record it writes."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import soak  # noqa: E402


@pytest.mark.full_mnist
def test_short_soak_writes_windows_truncation_and_clips(full_mnist_dir, tmp_path):
    out = tmp_path / "soak.json"
    assert soak.main(["--schemes", "sgd,lrt-convbiased", "--seeds", "1", "--samples", "40", "--window", "20",
                      "--data-dir", str(full_mnist_dir), "--json", str(out), "--quiet"]) == 0
    report = json.loads(out.read_text())
    assert report["model"] == "mcu-cnn"
    sgd, lrt = report["runs"]
    assert (sgd["scheme"], lrt["scheme"]) == ("sgd", "lrt-convbiased")
    for run in (sgd, lrt):
        assert run["seed"] == 1 and run["samples"] == 40 and len(run["windows"]) == 2
        assert all(0.0 <= w["accuracy"] <= 1.0 for w in run["windows"])
        assert run["last_vs_best"] == round(run["last_window"] - run["best_window"], 4)
    assert sgd["windows"][-1]["max_writes_per_cell"] > 0  # SGD writes on every sample with a gradient
    # the mixed row: conv layers biased (unbiased = 0), dense layers unbiased
    layer_unbiased = lrt["lrt"]["layer_unbiased"]
    assert {k: v for k, v in layer_unbiased.items() if k.startswith("conv")} == {"conv1": 0, "conv2": 0}
    assert {k: v for k, v in layer_unbiased.items() if k.startswith("fc")} == {"fc1": 1, "fc2": 1}
    # clips_total: per layer, per store; the last window's counts are part of the run's
    last = sgd["windows"][-1]["clips"]
    assert last and all(0 < n <= sgd["clips_total"][layer][store]
                        for layer, stores in last.items() for store, n in stores.items())
    assert sgd["clips_total"]["bn"]["act"] > 0  # BN outputs clip from the first samples on (docs/reproduction.md)


@pytest.mark.full_mnist
def test_soak_streams_another_preset(full_mnist_dir, tmp_path):
    out = tmp_path / "soak.json"
    assert soak.main(["--model", "mlp", "--schemes", "bias", "--samples", "20", "--window", "10",
                      "--data-dir", str(full_mnist_dir), "--json", str(out), "--quiet"]) == 0
    report = json.loads(out.read_text())
    assert report["model"] == "mlp" and report["runs"][0]["windows"][-1]["max_writes_per_cell"] == 0


def test_unknown_model_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        soak.main(["--model", "resnet"])
    assert exc.value.code == 2 and "resnet" in capsys.readouterr().err
