"""Saturation (clip) counters: the C core (et_train_get_clip_counts) against the twin
(reference/train.clip_counts), with equality, over several steps of each optimizer on
mcu-cnn, mlp and the small BN models, with inputs and learning rates that make the
stores clip; plus the reset, the range checks of the query and the run report key."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from edgetrain.backends import CBackend, NumpyBackend
from edgetrain.core import ffi, lib
from edgetrain.reference.layers import CLIP_FIELDS
from edgetrain.config import OPTIMIZERS, TrainConfig
from test_train_twin import MODELS, inputs

ET_OK, ET_ERR_ARG = 0, -1


def clip_config(opt: str, big_bias: bool) -> TrainConfig:
    """Large learning rates (weights 1.0, biases 4 or 2^10) so that updates hit the int8/int16 limits."""
    cfg = TrainConfig(optimizer=OPTIMIZERS[opt], lr_weight=1 << 30, lr_weight_exp=-30, lr_bias=1 << 30,
                      lr_bias_exp=-20 if big_bias else -28, seed=3)
    if opt == "lrt":
        cfg.lrt = replace(cfg.lrt, batch_conv=2, batch_dense=2)
    if opt == "lga":
        cfg.lga = replace(cfg.lga, merge_every=2)
    return cfg


def run_both(model_name: str, opt: str, big_bias: bool, steps: int = 6):
    model = MODELS[model_name](0)
    cfg = clip_config(opt, big_bias)
    c, n = CBackend(model, cfg), NumpyBackend(model, cfg)
    for k, x in enumerate(inputs(model, steps, 1)):
        assert c.step(x, k % model.n_classes) == n.step(x, k % model.n_classes)
    return c, n


@pytest.mark.parametrize("opt", ["sgd", "lrt", "bias", "lga"])
@pytest.mark.parametrize("model_name", ["mcu-cnn", "mlp", "tiny-dense-bn"])
@pytest.mark.parametrize("big_bias", [False, True])
def test_c_counts_equal_twin_counts(model_name, opt, big_bias):
    c, n = run_both(model_name, opt, big_bias)
    cc, nc = c.clip_counts(), n.clip_counts()
    assert cc == nc
    assert c.weights_sha256() == n.weights_sha256()
    assert sum(v for layer in cc.values() for v in layer.values()) > 0  # the inputs do clip


def test_every_counted_store_clips_somewhere():
    """Across the grid above, each counter but the BN statistics fires (so the equality is not 0 == 0)."""
    seen = dict.fromkeys(CLIP_FIELDS, 0)
    for model_name in ("mcu-cnn", "mlp"):
        for opt in ("sgd", "lrt", "lga"):
            for big_bias in (False, True):
                c, _ = run_both(model_name, opt, big_bias, steps=4)
                for layer in c.clip_counts().values():
                    for k, v in layer.items():
                        seen[k] += v
    assert {k for k, v in seen.items() if v > 0} >= {"pre", "act", "grad", "weight", "param"}, seen


def test_predictions_count_nothing_and_reset_zeroes():
    c, n = run_both("mcu-cnn", "sgd", False, steps=2)
    before = c.clip_counts()
    x = inputs(c.model, 1, 9)[0]
    c.predict(x)
    n.predict(x)
    assert c.clip_counts() == before == n.clip_counts()
    c.reset_clip_counts()
    n.reset_clip_counts()
    zero = {name: dict.fromkeys(CLIP_FIELDS, 0) for name in before}
    assert c.clip_counts() == zero == n.clip_counts()


def test_query_range_and_null():
    c, _ = run_both("mlp", "sgd", False, steps=1)
    out = ffi.new("et_clip_counts_t *")
    n_layers = len(c.model.layers)
    assert lib.et_train_get_clip_counts(c.ctx, n_layers - 1, out) == ET_OK
    out.pre = 12345
    assert lib.et_train_get_clip_counts(c.ctx, n_layers, out) == ET_ERR_ARG
    assert out.pre == 12345  # nothing written
    assert lib.et_train_get_clip_counts(c.ctx, 0, ffi.NULL) == ET_ERR_ARG
    assert lib.et_train_get_clip_counts(ffi.NULL, 0, out) == ET_ERR_ARG
    assert lib.et_train_reset_clip_counts(ffi.NULL) == ET_ERR_ARG


def test_counts_saturate_instead_of_wrapping():
    """The twin's counter helper saturates at 2^32-1, as the C folds do."""
    from edgetrain.reference.layers import U32_MAX, count_clips

    clips = dict.fromkeys(CLIP_FIELDS, U32_MAX - 1)
    count_clips(clips, "act", np.ones(5, bool))
    assert clips["act"] == U32_MAX


@pytest.mark.parametrize("optimizer", ["sgd", "lrt"])
def test_run_json_reports_equal_clip_counts_on_both_backends(tmp_path, capsys, mnist_dir, optimizer):
    from edgetrain import cli

    reports = {}
    for backend in ("c", "numpy"):
        out = tmp_path / f"{backend}.json"
        assert cli.main(["run", "--model", "mcu-cnn", "--optimizer", optimizer, "--samples", "30", "--seed", "2",
                         "--data-dir", str(mnist_dir), "--backend", backend, "--json", str(out), "--no-progress"]) == 0
        capsys.readouterr()
        reports[backend] = json.loads(out.read_text())
    clips = reports["c"]["clip_counts"]
    assert clips == reports["numpy"]["clip_counts"]
    assert set(clips) == {"conv1", "conv2", "bn", "fc1", "fc2", "head"}
    assert all(set(c) == set(CLIP_FIELDS) for c in clips.values())
    assert sum(v for c in clips.values() for v in c.values()) > 0
