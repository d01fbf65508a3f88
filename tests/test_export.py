"""Model import without TensorFlow: the float->device mapping rules, TFLite int8
import from the checked-in fixture, the golden .etm, the C header, the CLI."""
from __future__ import annotations

import hashlib
import shutil
import subprocess

import numpy as np
import pytest

import edgetrain
from edgetrain import CorruptError, RangeError, UnsupportedError
from edgetrain.cli import main as cli_main
from edgetrain.export.c_header import c_header, c_symbol
from edgetrain.export.lower import Op, choose_alpha_shift, lower, round_away
from edgetrain.model import Activation, LayerKind, Padding
from edgetrain.model.etm import read_etm, write_etm
from edgetrain.reference.fixed import FMT_ACT, FMT_BIAS, FMT_BN_OUT, FMT_INPUT
from conftest import ROOT
from etm_helpers import ET_OK, CParse, py_table

GOLDEN = ROOT / "tests" / "golden"
CC = shutil.which("gcc") or shutil.which("cc")


# ---- the mapping rules (hand-computed expectations) ---------------------------


@pytest.mark.parametrize(
    "weights, shift",
    [
        ([0.5], 0),  # 0.5 * 2^8 = 128 does not fit int8: s = 0 (q = 64)
        ([-0.5], 1),  # -0.5 * 2^8 = -128 fits: s = 1
        ([0.99], 0),  # 0.99 * 128 = 126.7 -> 127
        ([0.9961], None),  # 0.9961 * 128 = 127.5 rounds away to 128: even s = 0 fails
        ([-1.0], 0),  # -128 fits
        ([0.0009], 10),  # 0.0009 * 2^17 = 118.0 fits, * 2^18 = 235.9 does not
        ([0.00001], 15),  # tiny weights: the largest shift (0.00001 * 2^22 = 41.9)
        ([0.2, -0.24], 2),  # 0.24 * 2^9 = 122.9 fits, * 2^10 = 245.8 does not
        ([0.0], 15),
    ],
)
def test_alpha_shift_rule(weights, shift):
    assert choose_alpha_shift(np.array(weights)) == shift


def test_rounding_is_half_away_from_zero():
    assert round_away(np.array([0.5, 1.5, -0.5, -1.5, 2.49])).tolist() == [1.0, 2.0, -1.0, -2.0, 2.0]


def dense(name, n, m, value=0.1, act="linear", bias=None):
    return Op("dense", name, np.full((n, m), value), np.zeros(n) if bias is None else np.asarray(bias, float), act)


def test_lower_builds_the_device_chain_and_quantizes():
    w = np.zeros((2, 3, 3, 1))
    w[0, 1, 1, 0], w[1, 0, 0, 0] = 0.3, -0.2  # max 0.3: s = 1 (0.3 * 256 = 76.8 -> 77)
    ops = [
        Op("conv", "c", w, np.array([0.25, -1.0]), "linear", "same"),
        Op("maxpool", "p"),
        Op("relu", "r"),  # moves across the pool into the conv
        Op("flatten", "f"),
        dense("d", 3, 2 * 2 * 2, 0.05, bias=[1 / 4096, 3 / 8192, -8.0]),
        Op("softmax", "s"),
    ]
    conv = lower(ops, (4, 4, 1), "m")
    m = conv.model
    assert [l.kind for l in m.layers] == [LayerKind.CONV2D, LayerKind.MAXPOOL2, LayerKind.FLATTEN, LayerKind.DENSE, LayerKind.SOFTMAX_CE]
    c = m.layers[0]
    assert (c.activation, c.padding, c.kernel, c.alpha_shift) == (Activation.RELU, Padding.SAME, 3, 1)
    assert c.in_shape.fmt == FMT_INPUT and c.out_shape.fmt == FMT_ACT and c.out_shape.c == 2
    assert int(c.weights[0, 1, 1, 0]) == 77 and int(c.weights[1, 0, 0, 0]) == -51  # -0.2 * 256 = -51.2
    assert c.bias.tolist() == [1024, -4096]  # 0.25 and -1.0 at LSB 2^-12
    d = m.layers[3]
    assert d.alpha_shift == 4 and int(d.weights[0, 0]) == 102  # 0.05 * 2^11 = 102.4
    assert d.bias.tolist() == [1, 2, -32768]  # 3/8192 = 1.5 LSB rounds away to 2
    assert d.out_shape.fmt == FMT_BIAS and m.layers[-1].in_shape == d.out_shape
    report = conv.layers[0]
    assert report.alpha_shift == 1 and report.weight_err_max == pytest.approx(abs(77 / 256 - 0.3))


def test_batch_norm_after_a_linear_layer_is_folded():
    ops = [dense("d1", 2, 3, 0.25), Op("bn", "bn", bn={"gamma": np.array([2.0, 1.0]), "beta": np.array([0.5, 0.0]),
                                                      "mean": np.array([1.0, 0.0]), "var": np.array([3.0, 0.0]), "eps": 1.0}),
           Op("relu", "r"), dense("d2", 2, 2, 0.25)]
    m = lower(ops, (3,), "m").model
    d1 = m.layers[0]
    # gamma / sqrt(var + eps) = [1, 1]: weights unchanged; bias = (0 - mean) * 1 + beta = [-0.5, 0]
    assert d1.activation == Activation.RELU and d1.bias.tolist() == [-2048, 0]
    assert d1.alpha_shift == 1 and int(d1.weights[0, 0]) == 64 and d1.name == "d1+bn+r"


def test_batch_norm_after_relu_is_a_device_layer():
    bn = {"gamma": np.array([1.5, 0.5]), "beta": np.array([0.25, -0.25]), "mean": np.array([0.5, 1.0]), "var": np.array([0.25, 2.0]), "eps": 0.001}
    ops = [Op("conv", "c", np.full((2, 1, 1, 1), 0.5), None, "relu"), Op("bn", "bn", bn=bn), Op("flatten", "f"), dense("d", 2, 8)]
    m = lower(ops, (2, 2, 1), "m").model
    b = m.layers[1]
    assert b.kind == LayerKind.BATCHNORM and b.in_shape.fmt == FMT_ACT and b.out_shape.fmt == FMT_BN_OUT
    # gamma, beta, mean at 2^-12; mean square = var + eps + mean^2 at 2^-9
    assert b.bn[:3].tolist() == [[6144, 2048], [1024, -1024], [2048, 4096]]
    assert b.bn[3].tolist() == [round(0.501 * 512), round(3.001 * 512)]


@pytest.mark.parametrize(
    "ops, shape, match",
    [
        ([Op("bn", "b", bn={"gamma": 1, "beta": 0, "mean": 0, "var": 1, "eps": 0}), Op("flatten", "f"), dense("d", 2, 4)], (2, 2, 1), "'b'.*batch norm takes ReLU outputs"),
        ([dense("d1", 2, 2), dense("d2", 2, 2)], (2,), "'d2'.*follows a layer without activation"),
        ([Op("flatten", "f"), Op("relu", "r"), dense("d", 2, 4)], (2, 2, 1), "'r'.*ReLU"),
        ([dense("d1", 2, 2), Op("softmax", "s"), dense("d2", 2, 2)], (2,), "'s'.*only as the model's output"),
        ([dense("d", 2, 2, act="relu")], (2,), "'d'.*last layer must give logits"),
        ([Op("conv", "c", np.zeros((2, 2, 2, 1)), None, "relu", "same"), Op("flatten", "f"), dense("d", 2, 32)], (4, 4, 1), "'c'.*odd with 'same'"),
        ([Op("conv", "c", np.zeros((2, 1, 1, 1)), None, "relu"), dense("d", 2, 2)], (2, 2, 1), "'d'.*Flatten"),
        ([Op("maxpool", "p")], (1, 4, 1), "'p'.*at least 2x2"),
        ([Op("conv", "c", np.zeros((2, 1, 1, 1)), None, "relu"), Op("flatten", "f")], (2, 2, 1), "'f'.*end with a dense"),
    ],
)
def test_lower_rejects_what_the_device_cannot_run(ops, shape, match):
    with pytest.raises(UnsupportedError, match=match):
        lower(ops, shape, "m")


def test_out_of_range_values_fail_unless_saturated():
    ops = [dense("big", 2, 2, 1.5)]
    with pytest.raises(RangeError, match=r"'big'.*alpha > 1.*saturate"):
        lower(ops, (2,), "m")
    conv = lower(ops, (2,), "m", saturate=True)
    assert conv.model.layers[0].weights.tolist() == [[127, 127], [127, 127]] and conv.layers[0].weight_saturated == 4
    with pytest.raises(RangeError, match=r"'b' bias.*\[-8, 7.99"):
        lower([dense("b", 1, 2, 0.1, bias=[9.0])], (2,), "m")


# ---- TFLite int8 import (checked-in fixture; no TensorFlow needed) ---------


def tflite_tensors(data: bytes):
    """The fixture's weight tensors, read directly with the tflite package (independent of the importer)."""
    tflite = pytest.importorskip("tflite", reason="the tflite package is not installed (pip install 'edgetrain[tflite]')")
    model = tflite.Model.GetRootAsModel(data, 0)
    g = model.Subgraphs(0)
    found = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) in (tflite.BuiltinOperator.CONV_2D, tflite.BuiltinOperator.FULLY_CONNECTED):
            t = g.Tensors(op.Inputs(1))
            q = t.Quantization()
            raw = np.frombuffer(model.Buffers(t.Buffer()).DataAsNumpy().tobytes(), np.int8).reshape(t.ShapeAsNumpy())
            scale = q.ScaleAsNumpy().astype(np.float64)
            found.append(raw * scale.reshape((-1,) + (1,) * (raw.ndim - 1)))
    return found


def test_tflite_fixture_has_its_provenance():
    data = (GOLDEN / "small_int8.tflite").read_bytes()
    text = (GOLDEN / "small_int8.tflite.txt").read_text()
    assert text.startswith("# provenance: tools/gen_export_fixtures.py")
    assert f"sha256 {hashlib.sha256(data).hexdigest()}" in text


def test_tflite_int8_import_maps_every_weight_within_half_a_device_step(core):
    pytest.importorskip("tflite", reason="the tflite package is not installed (pip install 'edgetrain[tflite]')")
    from edgetrain.export import convert_tflite

    data = (GOLDEN / "small_int8.tflite").read_bytes()
    conv = convert_tflite(data, name="small")
    m = conv.model
    assert [(l.kind, l.activation) for l in m.layers] == [
        (LayerKind.CONV2D, Activation.RELU), (LayerKind.CONV2D, Activation.RELU), (LayerKind.MAXPOOL2, Activation.NONE),
        (LayerKind.FLATTEN, Activation.NONE), (LayerKind.DENSE, Activation.RELU), (LayerKind.DENSE, Activation.NONE),
        (LayerKind.SOFTMAX_CE, Activation.NONE)]
    assert [l.out_shape.c for l in m.layers] == [4, 6, 6, 96, 16, 3, 3]
    assert m.layers[1].out_shape.h == 8 and m.layers[2].out_shape.h == 4
    reals = tflite_tensors(data)
    macs = [l for l in m.layers if l.weights is not None]
    assert len(reals) == len(macs) == 4
    for layer, real in zip(macs, reals):
        s = layer.alpha_shift
        device = layer.weights.astype(np.float64) * 2.0 ** (-7 - s)
        assert device.shape == real.shape  # TFLite filters are already OHWI
        assert np.max(np.abs(device - real)) <= 2.0 ** (-8 - s) + 1e-12
        # s is the largest shift that fits: one more overflows int8 somewhere
        assert s == 15 or np.any(np.abs(np.round(real * 2.0 ** (s + 8))) > 127)
    rel = [r.weight_err_rel for r in conv.layers if r.kind in ("conv2d", "dense")]
    assert all(0 < e < 0.02 for e in rel), rel
    assert any("TFLite input: scale" in n for n in conv.notes)
    blob = write_etm(m, align=8)
    c = CParse(core, blob)
    assert c.status == ET_OK and c.table == py_table(read_etm(blob))


def test_tflite_import_rejects_non_tflite_bytes():
    pytest.importorskip("tflite", reason="the tflite package is not installed (pip install 'edgetrain[tflite]')")
    from edgetrain.export import from_tflite

    with pytest.raises(CorruptError, match="TFL3"):
        from_tflite(b"\x00" * 64)
    data = (GOLDEN / "small_int8.tflite").read_bytes()
    for n in (8, 100, len(data) // 2, len(data) - 600):
        with pytest.raises((CorruptError, UnsupportedError)):
            from_tflite(data[:n])


# ---- golden .etm --------------------------------------------------------------


def golden_blob() -> bytes:
    lines = (GOLDEN / "etm_tiny_v1.hex").read_text().splitlines()
    assert lines[0].startswith("# provenance: tools/gen_export_fixtures.py")
    blob = bytes.fromhex("".join(lines[1:]))
    assert f"sha256 {hashlib.sha256(blob).hexdigest()}" in lines[0]
    return blob


def test_golden_blob_still_parses_and_the_writer_reproduces_it(core):
    from test_model_check import tiny_model

    blob = golden_blob()
    assert CParse(core, blob).status == ET_OK
    parsed = read_etm(blob)
    assert parsed.model.name == "tiny" and parsed.align == 8 and len(parsed.model.layers) == 6
    assert write_etm(tiny_model(), align=8, provenance=parsed.provenance) == blob


# ---- C header -----------------------------------------------------------------

PROGRAM = r"""
#include <stdio.h>
#include <stdint.h>
#include "model.h"
#include "edgetrain/edgetrain.h"
extern int other_unit_size(void);
int main(int argc, char **argv)
{
    et_model_t model;
    et_etm_info_t info;
    FILE *f;
    if (argc != 2 || (uintptr_t)demo_etm % DEMO_ETM_ALIGN != 0 || other_unit_size() != (int)DEMO_ETM_SIZE) {
        return 3;
    }
    if (et_etm_parse(demo_etm, DEMO_ETM_SIZE, 0, &model, &info, NULL) != ET_OK) {
        return 4;
    }
    f = fopen(argv[1], "wb");
    if (f == NULL || fwrite(demo_etm, 1, DEMO_ETM_SIZE, f) != DEMO_ETM_SIZE || fclose(f) != 0) {
        return 5;
    }
    printf("%u %u %s\n", (unsigned)model.n_layers, (unsigned)info.align, info.name);
    return 0;
}
"""

OTHER_UNIT = r"""
#define DEMO_ETM_DECLARE_ONLY
#include "model.h"
int other_unit_size(void) { return (int)sizeof demo_etm; }
"""


@pytest.mark.skipif(CC is None, reason="no host C compiler")
@pytest.mark.parametrize("align", [4, 64])
def test_c_header_compiles_strictly_and_holds_the_blob(tmp_path, align):
    from test_model_check import tiny_model

    blob = write_etm(tiny_model(), align=align, provenance="header test")
    (tmp_path / "model.h").write_text(c_header(blob, "demo_etm", align=align, source="tiny.keras", source_sha256="ab" * 32))
    (tmp_path / "main.c").write_text(PROGRAM)
    (tmp_path / "other.c").write_text(OTHER_UNIT)
    core_src = sorted(str(p) for p in (ROOT / "csrc" / "src").glob("*.c"))
    exe = tmp_path / "prog"
    proc = subprocess.run(
        [CC, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{tmp_path}", f"-I{ROOT / 'csrc' / 'include'}",
         str(tmp_path / "main.c"), str(tmp_path / "other.c"), *core_src, "-o", str(exe)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    run = subprocess.run([str(exe), str(tmp_path / "out.etm")], capture_output=True, text=True)
    assert run.returncode == 0, run
    assert run.stdout.split() == ["6", str(align), "tiny"]
    assert (tmp_path / "out.etm").read_bytes() == blob
    text = (tmp_path / "model.h").read_text()
    assert f"edgetrain {edgetrain.__version__}" in text and "tiny.keras sha256 " + "ab" * 32 in text


def test_c_symbol_names():
    assert c_symbol("mcu-cnn_etm") == "mcu_cnn_etm" and c_symbol("3d.model") == "m_3d_model" and c_symbol("") == "model"


# ---- CLI (TFLite path: no TensorFlow) --------------------------------------


def test_cli_export_tflite_and_inspect(tmp_path, capsys, core):
    pytest.importorskip("tflite", reason="the tflite package is not installed (pip install 'edgetrain[tflite]')")
    out, header, report = tmp_path / "s.etm", tmp_path / "s.h", tmp_path / "s.json"
    assert cli_main(["export", str(GOLDEN / "small_int8.tflite"), "-o", str(out), "--c-header", str(header), "--json", str(report), "--align", "32"]) == 0
    printed = capsys.readouterr().out
    assert "conv2d" in printed and f"wrote {out}" in printed
    parsed = read_etm(out.read_bytes())
    assert parsed.align == 32 and "sha256 " + hashlib.sha256((GOLDEN / "small_int8.tflite").read_bytes()).hexdigest() in parsed.provenance
    assert "const uint8_t s_etm[" in header.read_text()
    assert cli_main(["inspect", str(out)]) == 0
    assert "accepted by the C core and the Python reader" in capsys.readouterr().out
    bad = tmp_path / "bad.etm"
    bad.write_bytes(out.read_bytes()[:-1])
    assert cli_main(["inspect", str(bad)]) == 2
    assert "ET_ERR_CORRUPT" in capsys.readouterr().err


def test_cli_export_rejects_unknown_input(tmp_path, capsys):
    f = tmp_path / "model.onnx"
    f.write_bytes(b"\0" * 16)
    assert cli_main(["export", str(f), "-o", str(tmp_path / "x.etm")]) == 2
    assert "neither a TFLite flatbuffer nor a .keras/.h5 file" in capsys.readouterr().err


def test_mnist_tflite_fixture_has_its_provenance():
    data = (GOLDEN / "mnist_int8.tflite").read_bytes()
    text = (GOLDEN / "mnist_int8.tflite.txt").read_text()
    assert text.startswith("# provenance: tools/gen_export_fixtures.py --only mnist-tflite")
    assert f"sha256 {hashlib.sha256(data).hexdigest()}" in text


def test_cli_export_without_an_interpreter_reports_the_device_accuracy_and_says_so(tmp_path, capsys, monkeypatch, mnist_dir):
    """Without TensorFlow (simulated here; real in the sanitizer venv) the TFLite model cannot run."""
    pytest.importorskip("tflite", reason="the tflite package is not installed (pip install 'edgetrain[tflite]')")
    import json

    import numpy as np

    from edgetrain.data import mnist
    from edgetrain.errors import UnsupportedError
    from edgetrain.export import evaluate

    try:
        import tensorflow  # noqa: F401
    except ImportError:
        pass
    else:
        def missing(data):
            raise UnsupportedError("running the TFLite model needs its interpreter: pip install 'edgetrain[tf]' (TensorFlow) or ai-edge-litert")

        monkeypatch.setattr(evaluate, "_interpreter", missing)
    out, report = tmp_path / "m.etm", tmp_path / "m.json"
    assert cli_main(["export", str(GOLDEN / "mnist_int8.tflite"), "-o", str(out), "--json", str(report),
                     "--data-dir", str(mnist_dir), "--eval-samples", "200"]) == 0
    text = capsys.readouterr().out
    acc = json.loads(report.read_text())["accuracy"]
    assert acc["source_accuracy"] is None and acc["change_points"] is None and acc["images"] == 200
    assert "needs its interpreter" in text and "weight-level error above is the mapping's only report" in text
    images, labels = mnist.load("test", mnist_dir)
    device = evaluate.device_labels(read_etm(out.read_bytes()).model, images[:200])
    assert acc["device_accuracy"] == float(np.mean(device == labels[:200])) > 0.5


def test_cli_export_says_when_accuracy_is_not_measured(tmp_path, capsys, monkeypatch):
    pytest.importorskip("tflite", reason="the tflite package is not installed (pip install 'edgetrain[tflite]')")
    monkeypatch.delenv("EDGETRAIN_DATA_DIR", raising=False)
    assert cli_main(["export", str(GOLDEN / "mnist_int8.tflite"), "-o", str(tmp_path / "a.etm")]) == 0
    assert "accuracy: not measured (give --data-dir DIR" in capsys.readouterr().out
    monkeypatch.setenv("EDGETRAIN_DATA_DIR", str(tmp_path))
    assert cli_main(["export", str(GOLDEN / "small_int8.tflite"), "-o", str(tmp_path / "b.etm")]) == 0
    assert "accuracy: not measured (accuracy is measured on MNIST: the model takes 12x12x1" in capsys.readouterr().out


def test_batch_norm_sigma_error_is_reported():
    """A Keras batch norm maps to msq = var + eps + mean^2; with a small variance next to a large mean the
    bn_sq LSB (2^-9) moves the device's sigma, and the report says by how much."""
    from edgetrain.export.lower import bn_sigma_error

    c = 3
    mean = np.array([0.1, 1.5, 1.5])
    var = np.array([0.04, 0.04, 0.0004])
    ops = [Op("flatten", "f"), dense("fc", c, 4, act="relu"),
           Op("bn", "bn", bn={"gamma": np.ones(c), "beta": np.zeros(c), "mean": mean, "var": var, "eps": 0.0}),
           dense("out", 2, c)]
    conv = lower(ops, (2, 2, 1), "bn_err")
    report = next(r for r in conv.layers if r.kind == "batchnorm")
    block = conv.model.layers[2].bn
    assert report.bn_sigma_err_rel == bn_sigma_error(block, var)
    device_sigma = np.sqrt(np.maximum(block[3].astype(np.int64) * 32768 - block[2].astype(np.int64) ** 2, 1)) * 2.0**-12
    assert np.allclose(device_sigma[:2], np.sqrt(var[:2]), rtol=0.02)  # ordinary channels: close
    assert report.bn_sigma_err_rel > 0.05 and any("standard deviation up to" in n for n in report.notes)
