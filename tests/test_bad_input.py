"""Bad input, as a hostile user would give it: every case is refused cleanly.

Command-line cases must exit with status 2 and print exactly one line on stderr,
``edgetrain COMMAND: error: ...``, that names the problem (the fragment listed) and
write nothing: the folder they run in (which holds every output path they name)
is byte-for-byte the same afterwards. Python API cases must raise the listed typed
exception from edgetrain.errors, with the listed fragment in its message.
"""
from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from edgetrain import cli
from edgetrain.errors import ArgumentError, CorruptError, EdgetrainError, RangeError

from conftest import find_mnist_dir

GOLDEN = Path(__file__).parent / "golden"

FILES = {
    "bin.toml": b"\x80\x81\xfe\xff\x00\x01binary",
    "dir/keep.txt": b"a folder that exists\n",
    "file.txt": b"an existing file\n",
    "garbage.etm": bytes(range(256)) * 4,
    "empty-mnist/.keep": b"",
    "notgz-mnist/train-images-idx3-ubyte.gz": b"this is not gzip",
    "notgz-mnist/train-labels-idx1-ubyte.gz": b"this is not gzip",
    "short-mnist/train-images-idx3-ubyte.gz": gzip.compress(b"\x00\x00\x08\x03\x00\x00"),
    "short-mnist/train-labels-idx1-ubyte.gz": gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x05"),
    "magic-mnist/train-images-idx3-ubyte.gz": gzip.compress(b"\x00\x00\x08\x01" + bytes(12)),
    "magic-mnist/train-labels-idx1-ubyte.gz": gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x00"),
}


def energy_map(field: str, value: str, technology: str = "rram", size: str = "512 KiB") -> bytes:
    return (f'name = "bad"\n[[region]]\nname = "nvm"\nkind = "nvm"\ntechnology = "{technology}"\nbase = 0x08000000\n'
            f'size = "{size}"\n[region.technology_overrides]\n{field} = {value}\n'
            '[[region]]\nname = "sram"\nkind = "sram"\nbase = 0x20000000\nsize = "128 KiB"\n').encode()


FILES.update({
    "energy.toml": energy_map("program_energy", "1e300"),
    "latency.toml": energy_map("erase_latency", "1e300", "flash"),
    "read.toml": energy_map("read_energy", "inf"),
    "sigma.toml": energy_map("endurance_sigma", "nan"),
    "endurance.toml": energy_map("endurance", "0"),
    "erase_unit.toml": energy_map("erase_unit", str(2**40), "flash"),
    "overlap.toml": (b'[[region]]\nname = "a"\nkind = "sram"\nbase = 0\nsize = 64\n'
                     b'[[region]]\nname = "b"\nkind = "sram"\nbase = 32\nsize = 64\n'),
    "huge.toml": (b'[[region]]\nname = "a"\nkind = "nvm"\ntechnology = "rram"\nbase = 0\nsize = "99999999 MiB"\n'),
})


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    for name, data in FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    from edgetrain.model import etm
    from edgetrain.model.presets import preset

    blob = etm.write_etm(preset("mlp", 1))
    (tmp_path / "truncated.etm").write_bytes(blob[: len(blob) // 2])
    resealed = bytearray(blob)
    resealed[-40] ^= 0xFF  # a tensor byte: the blob CRC no longer matches
    (tmp_path / "flipped.etm").write_bytes(bytes(resealed))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.is_dir(), p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


DATA = "{data}"
RUN = ["run", "--model", "mlp", "--samples", "5", "--no-progress"]
RUN_DATA = RUN + ["--data-dir", DATA]
VC = ["verify-commit", "--memory-map", "rram-mcu", "--commits", "1"]

CLI_CASES = [
    # run: output paths, checked before any work
    ("run-json-empty", RUN_DATA + ["--json", ""], "argument --json: output file: the path is empty"),
    ("run-json-missing-folder", RUN_DATA + ["--json", "nowhere/r.json"], "folder 'nowhere' does not exist"),
    ("run-json-folder", RUN_DATA + ["--json", "dir"], "'dir' is a folder; give a file path inside it"),
    ("run-json-dev-full", RUN_DATA + ["--json", "/dev/full"], "'/dev/full' is not a regular file"),
    ("run-plots-file", RUN_DATA + ["--memory-map", "rram-mcu", "--plots", "file.txt"], "exists and is not a folder"),
    ("run-plots-under-file", RUN_DATA + ["--memory-map", "rram-mcu", "--plots", "file.txt/p"], "is not a folder"),
    # run: numbers
    ("run-samples-0", RUN_DATA[:4] + ["0", "--data-dir", DATA], "argument --samples: 0 is below 1"),
    ("run-samples-text", RUN_DATA[:4] + ["ten", "--data-dir", DATA], "'ten' is not an integer"),
    ("run-seed-negative", RUN_DATA + ["--seed", "-1"], "argument --seed: -1 is outside 0..4294967295"),
    ("run-seed-huge", RUN_DATA + ["--seed", str(2**32)], "argument --seed: 4294967296 is outside"),
    ("run-lr-underflow", RUN_DATA + ["--lr", "1e-300"], "rounds to 0 in the device's 24 fractional bits"),
    ("run-lr-nan", RUN_DATA + ["--lr", "nan"], "'nan' is not a finite number"),
    ("run-lr-inf", RUN_DATA + ["--lr", "inf"], "'inf' is not a finite number"),
    ("run-lr-negative", RUN_DATA + ["--lr", "-0.1"], "argument --lr: -0.1 must lie in [0, 1]"),
    ("run-lr-bias-underflow", RUN_DATA + ["--lr-bias", "1e-9"], "argument --lr-bias: 1e-09 rounds to 0"),
    ("run-lr-one-sgd", RUN_DATA + ["--lr", "1"], "--lr 1.0 must lie in [0, 1)"),
    ("run-rank-9-sgd", RUN_DATA + ["--optimizer", "sgd", "--rank", "9"], "argument --rank: 9 is outside 1..8"),
    ("run-batch-conv-0-sgd", RUN_DATA + ["--batch-conv", "0"], "argument --batch-conv: 0 is outside 1..65535"),
    ("run-batch-dense-huge", RUN_DATA + ["--batch-dense", "65536"], "argument --batch-dense: 65536 is outside"),
    ("run-kappa-negative", RUN_DATA + ["--kappa", "-5"], "argument --kappa: -5 is outside"),
    ("run-rho-min-nan", RUN_DATA + ["--rho-min", "nan"], "argument --rho-min: 'nan' is not a finite number"),
    ("run-layer-ranks-empty", RUN_DATA + ["--optimizer", "lrt", "--layer-ranks", ""], "'': give comma-separated integers"),
    ("run-layer-ranks-text", RUN_DATA + ["--layer-ranks", "4,x"], "'4,x': give comma-separated integers"),
    ("run-layer-ranks-count", RUN_DATA + ["--optimizer", "lrt", "--layer-ranks", "4"], "has 2 trainable layers"),
    ("run-samples-per-day-inf", RUN_DATA + ["--memory-map", "rram-mcu", "--samples-per-day", "inf"], "'inf' is not a finite"),
    ("run-samples-per-day-0", RUN_DATA + ["--memory-map", "rram-mcu", "--samples-per-day", "0"], "0.0 must be > 0"),
    ("run-samples-per-day-alone", RUN_DATA + ["--samples-per-day", "10"], "--samples-per-day needs --memory-map"),
    ("run-optimizer-unknown", RUN_DATA + ["--optimizer", "adam"], "argument --optimizer: invalid choice: 'adam'"),
    ("run-memory-map-numpy", RUN_DATA + ["--backend", "numpy", "--memory-map", "rram-mcu"], "use --backend c"),
    # run: memory maps
    ("run-map-folder", RUN_DATA + ["--memory-map", "dir"], "memory map 'dir' is a folder"),
    ("run-map-binary", RUN_DATA + ["--memory-map", "bin.toml"], "is not UTF-8 text"),
    ("run-map-energy-1e300", RUN_DATA + ["--memory-map", "energy.toml"], "program_energy must be a number in 0..1e+06"),
    ("run-map-missing", RUN_DATA + ["--memory-map", "nope.toml"], "memory map file 'nope.toml' does not exist"),
    ("run-map-overlap", RUN_DATA + ["--memory-map", "overlap.toml"], "overlaps"),
    # run: models and data folders
    ("run-model-unknown", RUN[:2] + ["resnet"] + RUN[3:] + ["--data-dir", DATA], "unknown model 'resnet'"),
    ("run-model-garbage", RUN[:2] + ["garbage.etm"] + RUN[3:] + ["--data-dir", DATA], "not a .etm blob"),
    ("run-model-truncated", RUN[:2] + ["truncated.etm"] + RUN[3:] + ["--data-dir", DATA], "truncated"),
    ("run-model-flipped", RUN[:2] + ["flipped.etm"] + RUN[3:] + ["--data-dir", DATA], "CRC"),
    ("run-model-folder", RUN[:2] + ["dir"] + RUN[3:] + ["--data-dir", DATA], "dir"),
    ("run-data-missing", RUN + ["--data-dir", "no-such-folder"], "MNIST directory no-such-folder does not exist"),
    ("run-data-empty", RUN + ["--data-dir", "empty-mnist"], "images-idx3-ubyte.gz is missing"),
    ("run-data-not-gzip", RUN + ["--data-dir", "notgz-mnist"], "is not a readable gzip file"),
    ("run-data-truncated", RUN + ["--data-dir", "short-mnist"], "is truncated"),
    ("run-data-wrong-magic", RUN + ["--data-dir", "magic-mnist"], "has magic 0x00000801, expected 0x00000803"),
    ("run-data-is-a-file", RUN + ["--data-dir", "file.txt"], "file.txt"),
    # plan
    ("plan-budget-empty", ["plan", "mcu-cnn", "--budget", ""], "give a size such as 24576"),
    ("plan-budget-1e400", ["plan", "mcu-cnn", "--budget", "1e400MiB"], "give a size such as 24576"),
    ("plan-budget-many-digits", ["plan", "mcu-cnn", "--budget", "9" * 400 + "MiB"], "give a size such as 24576"),
    ("plan-budget-5GiB", ["plan", "mcu-cnn", "--budget", "5GiB"], "give a size such as"),
    ("plan-budget-8192MiB", ["plan", "mcu-cnn", "--budget", "8192MiB"], "give 1 byte .. 4 GiB"),
    ("plan-budget-0", ["plan", "mcu-cnn", "--budget", "0"], "is 0 bytes; give 1 byte .. 4 GiB"),
    ("plan-json-dev-full", ["plan", "mcu-cnn", "--json", "/dev/full"], "'/dev/full' is not a regular file"),
    ("plan-json-folder", ["plan", "mcu-cnn", "--json", "dir"], "'dir' is a folder"),
    ("plan-json-missing-folder", ["plan", "mcu-cnn", "--json", "a/b/plan.json"], "folder 'a/b' does not exist"),
    ("plan-json-empty", ["plan", "mcu-cnn", "--json", ""], "the path is empty"),
    ("plan-rank-text", ["plan", "mcu-cnn", "--rank", "four"], "'four' is not an integer"),
    ("plan-model-garbage", ["plan", "garbage.etm"], "not a .etm blob"),
    # verify-commit
    ("vc-ring-slots-100000", VC + ["--ring-slots", "100000"], "argument --ring-slots: 100000 is outside 2..1024"),
    ("vc-ring-slots-1", VC + ["--ring-slots", "1"], "argument --ring-slots: 1 is outside 2..1024"),
    ("vc-seed-negative", VC + ["--seed", "-1"], "argument --seed: -1 is outside 0..4294967295"),
    ("vc-commits-0", VC[:3] + ["--commits", "0"], "argument --commits: 0 is below 1"),
    ("vc-max-points-0", VC + ["--max-points", "0"], "argument --max-points: 0 is below 1"),
    ("vc-json-dev-full", VC + ["--json", "/dev/full"], "'/dev/full' is not a regular file"),
    ("vc-json-folder", VC + ["--json", "dir"], "'dir' is a folder"),
    ("vc-json-missing-folder", VC + ["--json", "x/v.json"], "folder 'x' does not exist"),
    ("vc-map-folder", ["verify-commit", "--memory-map", "dir"], "memory map 'dir' is a folder"),
    ("demo-json-missing-folder", ["demo", "--json", "x/d.json"], "folder 'x' does not exist"),
    ("demo-plot-folder", ["demo", "--plot", "dir"], "'dir' is a folder"),
    ("demo-samples-zero", ["demo", "--samples", "0"], "argument --samples: 0 is below 1"),
    ("demo-seed-negative", ["demo", "--seed", "-1"], "argument --seed: -1 is outside 0..4294967295"),
    ("experiment-out-a-file", ["experiment", "control", "--samples", "5", "--out", "file.txt"], "file.txt"),
    ("experiment-workers-zero", ["experiment", "control", "--samples", "5", "--workers", "0"], "--workers 0: give at least 1"),
    ("vc-map-binary", ["verify-commit", "--memory-map", "bin.toml"], "is not UTF-8 text"),
    ("vc-map-latency-1e300", ["verify-commit", "--memory-map", "latency.toml"], "erase_latency must be a number in 0..1e+07"),
    ("vc-map-read-inf", ["verify-commit", "--memory-map", "read.toml"], "read_energy must be a number"),
    ("vc-map-sigma-nan", ["verify-commit", "--memory-map", "sigma.toml"], "endurance_sigma must be a number"),
    ("vc-map-endurance-0", ["verify-commit", "--memory-map", "endurance.toml"], "endurance must be 1..1e+30"),
    ("vc-map-erase-unit", ["verify-commit", "--memory-map", "erase_unit.toml"], "erase_unit, a multiple of program_unit"),
    ("vc-map-huge", ["verify-commit", "--memory-map", "huge.toml"], "ends past the 32-bit address space"),
    ("vc-model-truncated", ["verify-commit", "--model", "truncated.etm", "--memory-map", "rram-mcu"], "truncated"),
    # export and inspect
    ("export-missing", ["export", "missing.tflite", "-o", "m.etm"], "missing.tflite: no such file"),
    ("export-not-a-model", ["export", "file.txt", "-o", "m.etm"], "neither a TFLite flatbuffer nor a .keras/.h5 file"),
    ("export-output-folder", ["export", str(GOLDEN / "small_int8.tflite"), "-o", "dir"], "'dir' is a folder"),
    ("export-output-missing-folder", ["export", str(GOLDEN / "small_int8.tflite"), "-o", "q/m.etm"], "folder 'q' does not exist"),
    ("export-json-dev-full", ["export", str(GOLDEN / "small_int8.tflite"), "-o", "m.etm", "--json", "/dev/full"],
     "'/dev/full' is not a regular file"),
    ("export-header-folder", ["export", str(GOLDEN / "small_int8.tflite"), "-o", "m.etm", "--c-header", "dir"], "is a folder"),
    ("export-eval-negative", ["export", str(GOLDEN / "small_int8.tflite"), "-o", "m.etm", "--eval-samples", "-1"],
     "argument --eval-samples: -1 is below 0"),
    ("export-symbol-not-c", ["export", str(GOLDEN / "small_int8.tflite"), "-o", "m.etm", "--c-header", "m.h", "--symbol",
                             "1bad"], "argument --symbol: '1bad' is not a C identifier"),
    ("export-symbol-alone", ["export", str(GOLDEN / "small_int8.tflite"), "-o", "m.etm", "--symbol", "m"],
     "--symbol names the array of the C header: give --c-header FILE too"),
    ("vc-commits-more-than-training-makes", ["verify-commit", "--updates", "sgd", "--commits", "99999999", "--memory-map",
                                             "rram-mcu"], "of the 99999999 commits asked for; ask for at most"),
    ("inspect-garbage", ["inspect", "garbage.etm"], "rejected the blob at byte 0"),
    ("inspect-truncated", ["inspect", "truncated.etm"], "truncated"),
    ("inspect-folder", ["inspect", "dir"], "dir"),
]


@pytest.mark.parametrize("argv, fragment", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_bad_command_lines_are_one_line_errors_and_write_nothing(workdir, capsys, argv, fragment):
    if DATA in argv:
        data = find_mnist_dir()
        if data is None:
            pytest.skip("MNIST idx files not found: set EDGETRAIN_DATA_DIR or place them in ../shared/data/mnist")
        argv = [str(data) if a == DATA else a for a in argv]
    before = tree(workdir)
    status = cli.main(argv)
    out, err = capsys.readouterr()
    assert status == 2, (out, err)
    assert err.startswith(f"edgetrain {argv[0]}: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert fragment in err, err
    assert out == ""
    assert tree(workdir) == before


# ---- Python API --------------------------------------------------------------------------------


def _mlp():
    from edgetrain.model.presets import preset

    return preset("mlp", 1)


def _nan_weights():
    from dataclasses import replace

    model = _mlp()
    layer = model.layers[-2]
    bad = layer.weights.astype(np.float64)
    bad[0, 0] = math.nan
    model.layers[-2] = replace(layer, weights=bad)
    return model


def _wide_weights():
    from dataclasses import replace

    model = _mlp()
    layer = model.layers[-2]
    model.layers[-2] = replace(layer, weights=layer.weights.astype(np.int16) * 0 + 300)
    return model


def _backend(kind, model=None):
    from edgetrain.backends import make_backend
    from edgetrain.config import OPT_SGD, TrainConfig

    return make_backend(kind, model or _mlp(), TrainConfig(optimizer=OPT_SGD))


def _x():
    return np.zeros(28 * 28, np.uint8)


def _region(tech="rram", size=4096):
    from firmware_sim.nvm import NvmRegion, technology

    return NvmRegion(technology(tech), size)


def _area():
    from firmware_sim.commit import TrainingArea
    from firmware_sim.models import sim_tiny

    region = _region(size=32 * 1024)
    return TrainingArea(sim_tiny(), region), region


def _commit_rows(rows):
    area, region = _area()
    t = area.layers[-1]
    before = region.mem.copy()
    new = np.array(area.active(t)) ^ 1
    try:
        area.commit(t, new, rows)
    finally:
        assert np.array_equal(region.mem, before), "a refused commit must write nothing"


def _plan(**change):
    from edgetrain.backends import c_plan
    from edgetrain.config import OPT_SGD, TrainConfig

    return c_plan(_mlp(), TrainConfig(optimizer=OPT_SGD, **change))


def _drift(kind, **kw):
    from firmware_sim import drift

    weights = np.zeros(16, np.int8)
    before = weights.copy()
    try:
        getattr(drift, kind)(weights, np.random.default_rng(0), **kw)
    finally:
        assert np.array_equal(weights, before), "a refused drift must change nothing"


def _map(text):
    from firmware_sim.memory_map import MemoryMap

    return MemoryMap.from_toml_string(text.decode() if isinstance(text, bytes) else text)


def _twin_step(label):
    from edgetrain.reference import train

    return train.step(_backend("numpy").state, _x(), label)


API_CASES = [
    ("nan-weights-c", lambda: _backend("c", _nan_weights()), RangeError, "weights must be an integer array"),
    ("nan-weights-numpy", lambda: _backend("numpy", _nan_weights()), RangeError, "quantize the model first"),
    ("wide-weights", lambda: _backend("c", _wide_weights()), RangeError, "do not fit int8"),
    ("drift-sigma-nan", lambda: _drift("analog_drift", sigma0=math.nan), ArgumentError, "sigma0 must be a finite number"),
    ("drift-sigma-inf", lambda: _drift("analog_drift", sigma0=math.inf), ArgumentError, "sigma0 must be a finite number"),
    ("drift-every-0", lambda: _drift("analog_drift", every=0), ArgumentError, "every an integer >= 1"),
    ("drift-every-float", lambda: _drift("analog_drift", every=2.5), ArgumentError, "every an integer >= 1"),
    ("digital-drift-p0-nan", lambda: _drift("digital_drift", p0=math.nan), ArgumentError, "p0 must be a finite number"),
    ("label-float-c", lambda: _backend("c").step(_x(), 3.7), ArgumentError, "label 3.7 must be an integer class index"),
    ("label-float-numpy", lambda: _backend("numpy").step(_x(), 3.7), ArgumentError, "label 3.7 must be an integer"),
    ("label-bool", lambda: _backend("c").step(_x(), True), ArgumentError, "must be an integer class index"),
    ("label-numpy-float", lambda: _backend("c").step(_x(), np.float32(2.0)), ArgumentError, "must be an integer"),
    ("label-twin", lambda: _twin_step(3.7), ArgumentError, "label 3.7 must be an integer class index"),
    ("label-out-of-range", lambda: _backend("c").step(_x(), 10), ArgumentError, "label 10 is outside 0..9"),
    ("c-plan-seed-negative", lambda: _plan(seed=-1), ArgumentError, "seed -1 is outside 0..2^32-1"),
    ("c-plan-seed-huge", lambda: _plan(seed=2**40), ArgumentError, "is outside 0..2^32-1"),
    ("c-plan-ranks-too-many", lambda: _plan(lrt_rank=(1,) * 300), ArgumentError, "lrt_rank has 300 entries"),
    ("c-plan-lr-huge", lambda: _plan(lr_weight=2**40), ArgumentError, "lr_weight = 1099511627776 is outside"),
    ("c-config-ring-huge", lambda: _backend_config(ring_slots=2**20), ArgumentError, "TrainConfig"),
    ("program-negative", lambda: _region().program(-4, b"\0" * 4), ArgumentError, "at offset -4 is outside NVM region"),
    ("program-huge", lambda: _region().program(2**40, b"\0" * 4), ArgumentError, "is outside NVM region"),
    ("program-past-end", lambda: _region().program(4096, b"\0" * 4), ArgumentError, "ET_ERR_ARG"),
    ("program-float-offset", lambda: _region().program(4.0, b"\0" * 4), ArgumentError, "offset must be an int"),
    ("erase-negative", lambda: _region("flash", 4096).erase(-2048, 2048), ArgumentError, "is outside NVM region"),
    ("erase-negative-length", lambda: _region("flash", 4096).erase(0, -1), ArgumentError, "length must be an int >= 0"),
    ("power-loss-huge", lambda: _region().arm_power_loss(2**70), ArgumentError, "power-loss countdown"),
    ("commit-rows-negative", lambda: _commit_rows([(-3, 2)]), ArgumentError, "rows (-3, 2) must lie inside 0..10"),
    ("commit-rows-empty-run", lambda: _commit_rows([(2, 0)]), ArgumentError, "at least one row long"),
    ("commit-rows-past-end", lambda: _commit_rows([(8, 5)]), ArgumentError, "must lie inside 0..10"),
    ("commit-rows-overlap", lambda: _commit_rows([(0, 3), (2, 2)]), ArgumentError, "each run after the last"),
    ("commit-rows-float", lambda: _commit_rows([(0.5, 2)]), ArgumentError, "must be two ints"),
    ("commit-rows-not-pairs", lambda: _commit_rows([3]), ArgumentError, "must be (first_row, n_rows) pairs"),
    ("map-energy-1e300", lambda: _map(energy_map("program_energy", "1e300")), ArgumentError, "program_energy must be"),
    ("map-erase-latency", lambda: _map(energy_map("erase_latency", "1e300", "flash")), ArgumentError, "erase_latency"),
    ("map-erase-unit", lambda: _map(energy_map("erase_unit", str(2**40), "flash")), ArgumentError, "up to 16 MiB"),
    ("map-sigma-nan", lambda: _map(energy_map("endurance_sigma", "nan")), ArgumentError, "endurance_sigma must be"),
    ("map-endurance-inf", lambda: _map(energy_map("endurance", "inf")), ArgumentError, "endurance must be 1..1e+30"),
    ("map-size-negative", lambda: _map(energy_map("endurance", "10", size="-1")), ArgumentError, "is not a byte count"),
    ("map-not-toml", lambda: _map("name = = 3"), ArgumentError, "is not valid TOML"),
    ("etm-garbage", lambda: _etm(bytes(range(200))), CorruptError, "not a .etm blob"),
    ("etm-truncated", lambda: _etm(_blob()[:100]), CorruptError, "truncated"),
    ("etm-not-bytes", lambda: _etm("text"), ArgumentError, "read_etm takes bytes"),
]


def _backend_config(**change):
    from dataclasses import replace

    from edgetrain.backends import c_config
    from edgetrain.core import ffi
    from edgetrain.config import TrainConfig

    return c_config(ffi, replace(TrainConfig(), **change))


def _blob():
    from edgetrain.model import etm

    return etm.write_etm(_mlp())


def _etm(data):
    from edgetrain.model import etm

    return etm.read_etm(data)


@pytest.mark.parametrize("call, error, fragment", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_bad_python_calls_raise_typed_errors(call, error, fragment):
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, EdgetrainError)
    assert fragment in str(info.value), str(info.value)


def test_the_table_is_large_enough():
    assert len(CLI_CASES) + len(API_CASES) >= 60
    assert len({c[0] for c in CLI_CASES + API_CASES}) == len(CLI_CASES) + len(API_CASES)

