"""edgetrain.Session and the scenarios: the run keys and curves, the same bytes on both backends under
every task, drift as physics (not writes), the shift schedule, each task's effect on the pretrained
model, and the runnable example of docs/api.md."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import edgetrain
from edgetrain import ArgumentError, Session, UnsupportedError, physics
from edgetrain.data import mnist
from edgetrain.tasks import SHIFT_SCHEDULE, TASKS, Stream, TaskOptions

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_KEYS = {"accuracy", "samples", "max_writes_per_cell", "total_cell_writes", "write_density", "nvm_energy_j",
                 "aux_bytes", "weights_sha256", "backend", "elapsed_s"}


def test_report_and_curves(mnist_dir):
    r = Session("mlp", optimizer="sgd", seed=3, data_dir=mnist_dir, curve_points=10).run(95)
    assert CONTRACT_KEYS <= set(r.report) and r.report["samples"] == 95 and r.report["task"] == "control"
    c = r.curves
    assert c["samples"] == [9, 18, 27, 36, 45, 54, 63, 72, 81, 90, 95]
    assert all(len(v) == len(c["samples"]) for v in c.values())
    assert c["max_writes_per_cell"][-1] == r.report["max_writes_per_cell"] > 0
    assert c["max_writes_per_cell"] == sorted(c["max_writes_per_cell"])
    # the window accuracies are the hits between curve points; the EMA is bias-corrected (first point: a mean)
    assert c["accuracy_window"][0] == pytest.approx(r.hits[:9].mean())
    assert c["accuracy_window"][-1] == pytest.approx(r.hits[90:].mean())
    ema = 0.0
    for k, hit in enumerate(r.hits):
        ema = 0.999 * ema + 0.001 * hit
    assert c["accuracy_ema"][-1] == pytest.approx(ema / (1 - 0.999 ** 95))
    assert r.to_dict()["curves"] == c and "curves" not in r.to_dict(curves=False)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("optimizer", ["sgd", "lrt"])
def test_every_task_gives_the_same_bytes_on_both_backends(mnist_dir, task, optimizer):
    kw = dict(optimizer=optimizer, task=task, seed=5, data_dir=mnist_dir, task_options={"drift_every": 3, "block": 4})
    c = Session("mlp", backend="c", **kw).run(40)
    twin = Session("mlp", backend="numpy", **kw).run(40)
    assert c.report["weights_sha256"] == twin.report["weights_sha256"]
    assert np.array_equal(c.hits, twin.hits) and c.curves == twin.curves
    assert c.report["total_cell_writes"] == twin.report["total_cell_writes"]
    if task.startswith("drift"):
        assert c.report["drift_weight_changes"] == twin.report["drift_weight_changes"] > 0


@pytest.mark.parametrize("task", ["drift-analog", "drift-digital"])
def test_drift_is_physics_not_writes(mnist_dir, task):
    control = Session("mlp", optimizer="none", data_dir=mnist_dir).run(30)
    drift = Session("mlp", optimizer="none", task=task, data_dir=mnist_dir, task_options={"p0": 2000}).run(30)
    assert drift.report["weights_sha256"] != control.report["weights_sha256"]
    assert drift.report["max_writes_per_cell"] == drift.report["total_cell_writes"] == 0
    emu = Session("mlp", optimizer="none", task=task, data_dir=mnist_dir, memory_map="rram-mcu",
                  task_options={"p0": 2000}).run(30)
    assert emu.report["weights_sha256"] == drift.report["weights_sha256"]  # the same drift over an emulated NVM
    assert emu.report["physical_total_cell_writes"] == 0 and emu.report["nvm_energy_j"] == 0.0


def test_stuck_bits_do_not_drift():
    rng = np.random.default_rng(0)
    w = np.zeros(1000, np.int8)
    stuck = np.zeros(1000, np.uint8)
    stuck[:500] = 0xFF
    physics.digital_drift(w, rng, p0=5e5, every=1, stuck=stuck)  # p = 0.5 per bit
    assert not w[:500].any() and np.count_nonzero(w[500:]) > 450


def test_drift_strength_and_cadence():
    """Analog: sigma0 / sqrt(1e6 / d) per application in weight units (LSB 2^-7); digital: p0 / (1e6 / d) per bit."""
    rng = np.random.default_rng(1)
    w = np.zeros(200_000, np.int8)
    physics.analog_drift(w, rng, sigma0=10, every=10)
    assert np.std(w.astype(float)) == pytest.approx(10 / np.sqrt(1e5) * 128, rel=0.02)
    w[:] = 0
    physics.digital_drift(w, rng, p0=1000, every=10)  # p = 0.01 per bit
    flips = np.unpackbits((w.view(np.uint8) ^ 0).reshape(-1, 1), axis=1).sum()
    assert flips / (8 * w.size) == pytest.approx(0.01, rel=0.05)


def test_stream_is_seeded_and_cycles(mnist_dir):
    images, labels = mnist.load("test", mnist.SUBSET_DIR)
    a = Stream("control", images, labels, 7000, seed=1)
    b = Stream("control", images, labels, 7000, seed=1)
    other = Stream("control", images, labels, 7000, seed=2)
    assert np.array_equal(a.indices, b.indices) and not np.array_equal(a.indices, other.indices)
    # three passes over the 3,000 images, each a permutation in its own order
    assert sorted(a.indices[:3000]) == list(range(3000)) and sorted(a.indices[3000:6000]) == list(range(3000))
    assert not np.array_equal(a.indices[:3000], a.indices[3000:6000])
    aug = Stream("control", images, labels, 10, seed=1, options=TaskOptions(augment=True))
    x, y = aug.sample(3)
    assert x.dtype == np.uint8 and x.shape == (28, 28) and y == labels[aug.indices[3]]
    assert np.array_equal(x, aug.sample(3)[0])


def test_shift_schedule(mnist_dir):
    images, labels = mnist.load("test", mnist.SUBSET_DIR)
    s = Stream("shifts", images, labels, 1000, seed=0)
    assert s.block == 100 and [s.setting(100 * b) for b in range(10)] == list(SHIFT_SCHEDULE)
    assert s.setting(999) == () and SHIFT_SCHEDULE[8] == ("CD", "ST", "BG", "WN")
    # CD clusters the classes of its block: far fewer label changes than in a plain block
    changes = lambda part: int(np.count_nonzero(np.diff(labels[part])))  # noqa: E731
    assert changes(s.indices[0:100]) < 0.6 * changes(s.indices[900:1000])
    plain, _ = s.sample(950)
    assert np.array_equal(plain, images[s.indices[950]])  # the last block: no shift
    bg, _ = s.sample(250)  # BG: contrast, offset and gradient change the background
    assert bg.astype(int).mean() > images[s.indices[250]].astype(int).mean()


def test_each_task_shows_its_effect_on_the_pretrained_model():
    """Inference only, 2,000 samples of the packaged subset: shifts and drift cost accuracy
    (measured: control 0.986, shifts 0.619, drift-analog 0.674, drift-digital 0.966)."""
    acc = {t: Session("mcu-cnn-pretrained", optimizer="none", task=t).run(2000).report["accuracy"] for t in TASKS}
    assert acc["control"] > 0.97
    for task in ("shifts", "drift-analog", "drift-digital"):
        assert acc[task] < acc["control"] - 0.01, (task, acc)


def test_bad_arguments_raise_typed_errors(mnist_dir):
    with pytest.raises(ArgumentError, match="unknown task 'weather'"):
        Session("mlp", task="weather")
    with pytest.raises(UnsupportedError, match="backend 'gpu' is not available: choose one of c, numpy, arm"):
        Session("mlp", backend="gpu")
    with pytest.raises(UnsupportedError, match="backend 'arm' has none"):
        Session("mlp", backend="arm", memory_map="rram-mcu")
    with pytest.raises(ArgumentError, match="unknown task options"):
        Session("mlp", task_options={"sigma": 3})
    with pytest.raises(ArgumentError, match="drift_every 0 must be >= 1"):
        Session("mlp", task_options={"drift_every": 0})
    with pytest.raises(ArgumentError, match="samples 0: give at least 1"):
        Session("mlp", data_dir=mnist_dir).run(0)
    with pytest.raises(UnsupportedError, match="use --backend c"):
        Session("mlp", backend="numpy", memory_map="rram-mcu")


def test_plots_are_checked_before_work(monkeypatch, mnist_dir):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # import fails as when not installed
    with pytest.raises(UnsupportedError, match="pip install 'edgetrain\\[plots\\]'"):
        Session("mlp", data_dir=mnist_dir, memory_map="rram-mcu").run(5, plots="out")


def test_the_api_doc_example_runs(tmp_path, monkeypatch):
    text = (ROOT / "docs" / "api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "docs/api.md has no python example"
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, "docs/api.md", "exec"), {"__name__": "docs_api"})
    assert edgetrain.Session is Session


def test_demo_prints_the_table_and_writes_the_plot_and_json(tmp_path, capsys, monkeypatch):
    from edgetrain import cli

    monkeypatch.delenv("EDGETRAIN_DATA_DIR", raising=False)
    png, out = tmp_path / "demo.png", tmp_path / "demo.json"
    assert cli.main(["demo", "--samples", "40", "--plot", str(png), "--json", str(out)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith("mcu-cnn-pretrained on rram-mcu under drift-analog, 40 samples per scheme")
    assert lines[1].split()[:3] == ["scheme", "accuracy", "last"] and "lifetime" in lines[1]
    assert [l.split()[0] for l in lines[3:7]] == ["inference", "SGD", "SGD", "LRT"]
    assert lines[-1] == f"plot: {png.resolve()}" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "data: MNIST subset shipped in the package" in captured.err
    reports = __import__("json").loads(out.read_text())
    assert sorted(reports) == ["lrt", "none", "sgd", "sgd-pixel"]
    for scheme, r in reports.items():
        assert CONTRACT_KEYS <= set(r) and r["memory_map"] == "rram-mcu" and r["task"] == "drift-analog", scheme
        assert r["model"] == "mcu-cnn-pretrained" and "curves" in r
    assert reports["none"]["max_writes_per_cell"] == 0 < reports["lrt"]["max_writes_per_cell"]


def test_layer_truncation_is_for_lrt_and_checked(mnist_dir):
    from edgetrain.model.loader import load_model
    from edgetrain.config import TRUNC_BIASED, kind_truncation

    model = load_model("mcu-cnn", 0)
    mixed = kind_truncation(model, TRUNC_BIASED, 0)
    s = Session("mcu-cnn", optimizer="lrt", data_dir=str(mnist_dir), layer_truncation=mixed)
    assert [s.config.lrt_layer_config(i).unbiased for i, layer in enumerate(model.layers) if layer.weights is not None] == [0, 0, 1, 1]
    with pytest.raises(ArgumentError, match="layer_truncation applies to the lrt optimizer only"):
        Session("mcu-cnn", optimizer="sgd", data_dir=str(mnist_dir), layer_truncation=mixed)
    with pytest.raises(ArgumentError, match="lrt_truncation\\[0\\] = 7 is not one of"):
        Session("mcu-cnn", optimizer="lrt", data_dir=str(mnist_dir), layer_truncation=(7,))
