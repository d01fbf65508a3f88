"""Size products and arena limits: every size the core computes is exact (64-bit or checked), an
arena the core cannot address is refused with its size named, and `edgetrain run` refuses a huge
arena before any work unless --max-arena allows it."""
from __future__ import annotations

import numpy as np
import pytest

from edgetrain import RangeError, cli
from edgetrain.backends import CPlanner
from edgetrain.config import OPT_SGD, TrainConfig
from edgetrain.model import Activation, Layer, LayerKind, Model, Padding, Shape
from edgetrain.model.etm import save
from edgetrain.reference import plan as ref_plan
from edgetrain.reference.fixed import FMT_ACT, FMT_BIAS, FMT_BN_OUT, FMT_INPUT
from layer_cases import c_layer

ET_OK, ET_ERR_RANGE = 0, -5


def wide_model(channels: int) -> Model:
    """A 1x1 conv widening a 256x256 image to ``channels`` channels, one narrowing it back, pool,
    flatten, dense, head: a small blob whose arena grows with ``channels`` (about 3 bytes per
    activation element)."""
    rng = np.random.default_rng(0)
    w8 = lambda *s: rng.integers(-3, 4, s, dtype=np.int8)  # noqa: E731
    b16 = lambda n: np.zeros(n, np.int16)  # noqa: E731
    return Model(f"wide{channels}", [
        Layer(LayerKind.CONV2D, Shape(256, 256, 1, FMT_INPUT), Shape(256, 256, channels, FMT_ACT), "widen",
              Activation.RELU, Padding.SAME, 1, 0, w8(channels, 1, 1, 1), b16(channels)),
        Layer(LayerKind.CONV2D, Shape(256, 256, channels, FMT_ACT), Shape(256, 256, 1, FMT_ACT), "narrow",
              Activation.RELU, Padding.SAME, 1, 0, w8(1, 1, 1, channels), b16(1)),
        Layer(LayerKind.MAXPOOL2, Shape(256, 256, 1, FMT_ACT), Shape(128, 128, 1, FMT_ACT), "pool"),
        Layer(LayerKind.FLATTEN, Shape(128, 128, 1, FMT_ACT), Shape(1, 1, 16384, FMT_ACT), "flat"),
        Layer(LayerKind.DENSE, Shape(1, 1, 16384, FMT_ACT), Shape(1, 1, 2, FMT_BIAS), "fc", Activation.NONE,
              weights=w8(2, 16384), bias=b16(2)),
        Layer(LayerKind.SOFTMAX_CE, Shape(1, 1, 2, FMT_BIAS), Shape(1, 1, 2, FMT_BIAS), "head"),
    ])


SGD = TrainConfig(optimizer=OPT_SGD)


def test_a_layer_size_query_beyond_32_bits_is_a_range_error(core):
    ffi, lib = core
    huge_bn = Layer(LayerKind.BATCHNORM, Shape(65535, 65535, 65535, FMT_ACT), Shape(65535, 65535, 65535, FMT_BN_OUT), "bn")
    saved, scratch = ffi.new("uint32_t *", 7), ffi.new("uint32_t *", 7)
    cfg = ffi.new("et_train_config_t *")
    assert lib.et_train_config_default(cfg) == ET_OK
    # 65535^3 activation bytes: a 32-bit product wrapped to a small, wrong figure.
    assert lib.et_layer_get_buffer_size(c_layer(ffi, huge_bn), cfg, saved, scratch) == ET_ERR_RANGE
    assert saved[0] == 7 and scratch[0] == 7
    # et_layer_tensor_bytes on a layer outside the limits (the fan-in check would reject it).
    wide = Layer(LayerKind.CONV2D, Shape(300, 300, 65535, FMT_ACT), Shape(300, 300, 65535, FMT_ACT), "c",
                 Activation.RELU, Padding.SAME, 15, 0)
    wb, bb, nb = (ffi.new("uint32_t *", 7) for _ in range(3))
    assert lib.et_layer_tensor_bytes(c_layer(ffi, wide), wb, bb, nb) == ET_ERR_RANGE
    assert wb[0] == bb[0] == nb[0] == 7


def test_an_arena_beyond_4_gib_names_its_size():
    model = wide_model(30000)  # ~2 GB per activation: the plan exceeds 2^32 - 1 bytes
    need = ref_plan.plan(model, SGD, 0)["total"]
    assert need > 2**32
    with pytest.raises(RangeError, match=rf"at least {need:,} bytes \(\d+\.\d GiB\): more than the 4,294,967,295 bytes"):
        CPlanner(model).plan(SGD)


def test_plan_cli_reports_an_unplannable_arena_in_one_line(tmp_path, capsys):
    path = tmp_path / "wide.etm"
    save(path, wide_model(30000))
    assert cli.main(["plan", str(path), "--optimizer", "sgd"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "GiB): more than the 4,294,967,295 bytes" in err and "numeric format" not in err


def test_run_refuses_a_huge_arena_before_any_work_unless_allowed(tmp_path, capsys):
    path = tmp_path / "wide.etm"
    save(path, wide_model(1200))  # ~240 MB of arena from a ~40 KB blob
    need = CPlanner(wide_model(1200)).plan(SGD)["total"]
    assert 64 * 2**20 < need < 2**32
    report = tmp_path / "r.json"
    assert cli.main(["run", "--model", str(path), "--samples", "1", "--json", str(report)]) == 2
    err = capsys.readouterr().err
    assert f"needs a training arena of {need:,} bytes" in err and f"--max-arena {-(-need // 2**20)}MiB" in err
    assert not report.exists()
    # The plan command says so too, without refusing (it allocates nothing).
    assert cli.main(["plan", str(path), "--optimizer", "sgd"]) == 0
    assert "exceeds 64 MiB; edgetrain run refuses it unless given --max-arena" in capsys.readouterr().err


def test_max_arena_lets_a_small_model_through_and_rejects_bad_sizes(capsys):
    assert cli.main(["run", "--model", "tiny", "--max-arena", "lots"]) == 2
    assert "--max-arena 'lots': give a size such as" in capsys.readouterr().err
