"""Low-rank gradient approximation in the training step (ET_OPT_LGA in csrc/src/train.c and plan.c
against edgetrain/reference/train.py and plan.py): whole steps byte for byte (predictions, every
layer output, NVM image, per-cell writes, SRAM parameters, every layer's factors and optimizer
states), whole runs by weights_sha256, the plan and its per-layer figures, the arena (nothing
beyond the plan is touched), and bad configs changing nothing."""
from __future__ import annotations

import numpy as np
import pytest

from edgetrain import ArgumentError
from edgetrain.backends import CBackend, CModel, CPlanner, NumpyBackend, c_config, c_plan
from edgetrain.config import (
    LGA_ADAM, LGA_MOMENTUM, LGA_RESTART_REDRAW_B, LGA_SGD, OPT_LGA, OPT_SGD, LgaConfig, TrainConfig, lga_lr_pair
)
from edgetrain.lga import reference_snapshot
from edgetrain.model.presets import preset
from edgetrain.reference import lga as ref_lga
from edgetrain.reference import plan as ref_plan
from test_train_twin import MODELS, assert_same_state, c_outputs, inputs, twin_outputs

ET_OK, ET_ERR_ARG = 0, -1


def lga_config(seed=0, ranks=(), **lga) -> TrainConfig:
    return TrainConfig(optimizer=OPT_LGA, seed=seed, lga=LgaConfig(**lga), lga_rank=ranks)


def weight_layers(model):
    return [i for i, layer in enumerate(model.layers) if layer.weights is not None]


def c_lga(cb: CBackend, layer: int) -> dict:
    """The C factor state of a layer (through et_train_lga) in reference_snapshot's layout (PRNG aside)."""
    ffi, lib = cb._ffi, __import__("edgetrain.core", fromlist=["lib"]).lib
    pst = ffi.new("et_lga_state_t **")
    assert lib.et_train_lga(cb.ctx, layer, ffi.cast("const et_lga_state_t **", pst)) == ET_OK
    s = pst[0]
    n, m, r, opt = s.n, s.m, s.rank, s.optimizer
    base = ffi.cast("uint8_t *", s)
    size = ref_lga.state_get_size(n, m, r, opt)
    raw = np.frombuffer(ffi.buffer(base, size), dtype=np.uint8)
    a8 = lambda v: (v + 7) & ~7  # noqa: E731
    off = ref_lga.HEADER_BYTES
    out = {}

    def take(name, dtype, shape):
        nonlocal off
        count = shape[0] * shape[1]
        out[name] = raw[off:off + count * np.dtype(dtype).itemsize].view(dtype).reshape(shape).copy()
        off += a8(count * np.dtype(dtype).itemsize)

    take("a", np.int16, (n, r))
    take("b", np.int16, (r, m))
    if opt != LGA_SGD:
        take("mu_a", np.int32, (n, r))
        take("mu_b", np.int32, (r, m))
    if opt == LGA_ADAM:
        take("nu_a", np.uint64, (n, r))
        take("nu_b", np.uint64, (r, m))
    out.update(steps=s.steps, samples=s.samples, beta1_pow=s.beta1_pow, beta2_pow=s.beta2_pow, merges=s.merges,
               norm_a=(s.norm_a.count, s.norm_a.beta_pow, s.norm_a.moving.mant, s.norm_a.moving.exp),
               norm_b=(s.norm_b.count, s.norm_b.beta_pow, s.norm_b.moving.mant, s.norm_b.moving.exp))
    return out


def twin_lga(nb: NumpyBackend, layer: int) -> dict:
    snap = reference_snapshot(nb.state.layers[layer].lga, nb.state.prng)
    snap.pop("prng")
    return snap


def assert_same_lga(twin, cb, nb, what):
    for i in weight_layers(cb.model):
        twin.equal(_plain(c_lga(cb, i)), _plain(twin_lga(nb, i)), f"factors of layer {i} ({what})")


def _plain(d: dict) -> dict:
    return {k: (v.dtype.str, v.tolist()) if isinstance(v, np.ndarray) else v for k, v in d.items()}


# Fast merges (K = 2, 3) so that merges, restarts and the write path run within a few steps; large
# learning rates so that merges change weights.
STEP_CONFIGS = [
    ("adam-r4", dict(merge_every=3, lr=1 << 29, lr_exp=-35)),
    ("adam-r1-redraw", dict(rank=1, restart=LGA_RESTART_REDRAW_B, merge_every=2, lr=1 << 29, lr_exp=-34)),
    ("momentum-r2", dict(optimizer=LGA_MOMENTUM, rank=2, merge_every=2, lr=1 << 29, lr_exp=-34)),
    ("sgd-r8-redraw", dict(optimizer=LGA_SGD, rank=8, restart=LGA_RESTART_REDRAW_B, merge_every=3,
                           lr=1 << 29, lr_exp=-34)),
]


@pytest.mark.parametrize("model_name", ["tiny-bn", "tiny-dense-bn", "tiny-logit-conv", "mlp"])
@pytest.mark.parametrize("cfg_name, lga", STEP_CONFIGS, ids=[c[0] for c in STEP_CONFIGS])
def test_lga_steps_agree_byte_for_byte(core, twin, model_name, cfg_name, lga):
    model = MODELS[model_name](5)
    cfg = lga_config(seed=11, **lga)
    cb, nb = CBackend(model, cfg), NumpyBackend(model, cfg)
    xs = inputs(model, 10, 2, "digits" if model_name == "mlp" else "random")
    labels = np.random.default_rng(4).integers(0, model.n_classes, len(xs))
    for k, (x, y) in enumerate(zip(xs, labels)):
        twin.equal(cb.step(x, y), nb.step(x, y), f"prediction {k}")
        twin.equal(c_outputs(cb), twin_outputs(nb), f"layer outputs {k}")
        assert_same_lga(twin, cb, nb, f"{model_name} {cfg_name} step {k}")
    cb.checkpoint()
    nb.checkpoint()
    assert_same_state(twin, cb, nb, "after checkpoint")
    assert cb.weights_sha256() == nb.weights_sha256()
    assert all(c_lga(cb, i)["merges"] >= 3 for i in weight_layers(model))
    assert cb.cell_writes[cb.weight_cells()].sum() > 0  # merges changed weights through the write path


@pytest.mark.slow
@pytest.mark.parametrize("opt", [LGA_SGD, LGA_MOMENTUM, LGA_ADAM])
def test_mcu_cnn_whole_run_agrees(core, twin, opt):
    """The deployed shape with the defaults of each optimizer's CLI run: 12 samples, K = 5, per-layer ranks."""
    model = preset("mcu-cnn", 2)
    lr, lr_exp = lga_lr_pair(0.001 if opt == LGA_ADAM else 0.01)
    ranks = [0] * len(model.layers)
    w = weight_layers(model)
    ranks[w[1]], ranks[w[-1]] = 2, 8
    cfg = lga_config(seed=9, ranks=tuple(ranks), optimizer=opt, merge_every=5, lr=lr, lr_exp=lr_exp)
    cb, nb = CBackend(model, cfg), NumpyBackend(model, cfg)
    for k, x in enumerate(inputs(model, 12, 8, "digits")):
        twin.equal(cb.step(x, k % 10), nb.step(x, k % 10), f"prediction {k}")
    assert_same_lga(twin, cb, nb, "mcu-cnn")
    cb.checkpoint()
    nb.checkpoint()
    twin.equal(cb.weights_sha256(), nb.weights_sha256(), "weights_sha256")
    assert [c_lga(cb, i)["a"].shape[1] for i in weight_layers(model)] == [f["rank"] for f in
                                                                          CPlanner(model).lga_layers(cfg)]


def test_forward_uses_the_factors(core):
    """z = W x + A (B x): with A != 0 the prediction pass differs from the weights alone, and the merge
    folds the correction into W (after it the NVM weights reproduce what the factors added)."""
    model = preset("mlp", 1)
    cfg = lga_config(seed=1, merge_every=4, lr=1 << 29, lr_exp=-27)
    nb = NumpyBackend(model, cfg)
    xs = inputs(model, 4, 3, "digits")
    for k, x in enumerate(xs[:3]):
        nb.step(x, k)
    ls = nb.state.layers[weight_layers(model)[0]]
    assert np.any(ls.lga.a != 0)
    before = ls.weights.copy()
    nb.step(xs[3], 3)
    assert ls.lga.merges == 1 and np.all(ls.lga.a == 0) and np.any(ls.weights != before)


@pytest.mark.parametrize("model_name", ["tiny-bn", "tiny-dense-bn", "mlp", "mcu-cnn"])
@pytest.mark.parametrize("opt", [LGA_SGD, LGA_MOMENTUM, LGA_ADAM])
@pytest.mark.parametrize("rank", [1, 4, 8])
def test_lga_plan_agrees_with_twin(core, twin, model_name, opt, rank):
    model = MODELS[model_name](0)
    cfg = lga_config(rank=rank, optimizer=opt)
    planner = CPlanner(model)
    c = planner.plan(cfg)
    twin.equal(c, ref_plan.plan(model, cfg, context_bytes=c["context"]), f"plan {model_name} r={rank}")
    layers = planner.lga_layers(cfg)
    for f in layers:
        t = ref_plan.lga_layer(model, cfg, f["index"])
        twin.equal({k: f[k] for k in t}, t)
    sgd = planner.plan(TrainConfig(optimizer=OPT_SGD))
    assert sgd["lga_state"] == sgd["lga_scratch"] == 0
    per_entry = {LGA_SGD: 2, LGA_MOMENTUM: 6, LGA_ADAM: 14}[opt]
    for f in layers:  # the header plus per_entry bytes per factor entry (8-padded arrays)
        assert 0 <= f["state_bytes"] - 64 - per_entry * rank * (f["n"] + f["m"]) < 8 * 6


def test_training_stays_inside_the_plan(core):
    """Poisoned arena, K = 1 (a merge every sample): no byte beyond the plan changes; the lga parts are used."""
    from edgetrain.core import ffi, lib

    model = preset("mcu-cnn", 0)
    cfg = lga_config(rank=3, merge_every=1, lr=1 << 29, lr_exp=-34)
    cm = CModel(model)
    plan = c_plan(model, cfg)
    total, guard = plan["total"], 256
    touched = None
    for poison in (0xA5, 0x5A):
        arena = ffi.new("uint64_t[]", (total + guard) // 8)
        ffi.memmove(arena, bytes([poison]) * (total + guard), total + guard)
        ctx, required = ffi.new("et_train_t **"), ffi.new("uint32_t *")
        assert lib.et_train_init(ctx, arena, total, cm.c, cm.nvm, c_config(ffi, cfg), required) == ET_OK
        res = ffi.new("et_train_result_t *")
        for k, x in enumerate(inputs(model, 3, 6, "digits")):
            assert lib.et_train_step(ctx[0], ffi.from_buffer("uint8_t[]", x), x.size, k % 10, res) == ET_OK
        mem = np.frombuffer(ffi.buffer(arena, total + guard), dtype=np.uint8).copy()
        hit = mem != poison
        touched = hit if touched is None else touched | hit
        assert not hit[total:].any(), f"bytes beyond the plan ({total}) were written"
    high_water = int(np.flatnonzero(touched).max()) + 1
    assert (high_water + 7) // 8 * 8 == total
    tail = plan["lga_state"] + plan["lga_scratch"]
    assert touched[total - tail:].mean() > 0.5


BAD = [("rank", 0), ("rank", 9), ("optimizer", 3), ("merge_every", 0), ("lr", 0), ("lr_exp", -25), ("eps", 0),
       ("beta1_q30", 1 << 30), ("restart", 2)]


@pytest.mark.parametrize("field, value", BAD)
def test_bad_lga_config_is_rejected_and_nothing_is_written(core, field, value):
    from edgetrain.core import ffi, lib

    model = preset("mlp", 0)
    cfg = lga_config(**{field: value})
    with pytest.raises(ArgumentError, match="lga"):
        cfg.check()
    cm = CModel(model)
    arena = ffi.new("uint64_t[]", 1 << 16)
    ctx, required = ffi.new("et_train_t **"), ffi.new("uint32_t *")
    required[0] = 12345
    assert lib.et_train_init(ctx, arena, 8 << 16, cm.c, cm.nvm, c_config(ffi, cfg), required) == ET_ERR_ARG
    assert ctx[0] == ffi.NULL and required[0] == 12345 and not any(arena[0:1 << 16])
    plan = ffi.new("et_plan_t *")
    assert lib.et_plan(cm.c, c_config(ffi, cfg), plan) == ET_ERR_ARG


def test_bad_layer_ranks(core):
    from edgetrain.core import ffi, lib

    cfg = lga_config(ranks=(0, 9))
    with pytest.raises(ArgumentError, match=r"lga_rank\[1\] = 9 is outside 1..8"):
        cfg.check()
    cm = CModel(preset("mlp", 0))
    assert lib.et_plan(cm.c, c_config(ffi, cfg), ffi.new("et_plan_t *")) == ET_ERR_ARG


def test_lga_accessors_refuse_what_has_no_factors(core):
    from edgetrain.core import ffi, lib

    cb = CBackend(preset("mlp", 0), lga_config())
    pst = ffi.new("et_lga_state_t **")
    out = ffi.cast("const et_lga_state_t **", pst)
    assert lib.et_train_lga(cb.ctx, 0, out) == ET_ERR_ARG  # flatten
    assert lib.et_train_lga(cb.ctx, 9, out) == ET_ERR_ARG  # beyond the model
    assert lib.et_train_lga(cb.ctx, 1, out) == ET_OK
    sgd = CBackend(preset("mlp", 0), TrainConfig())
    assert lib.et_train_lga(sgd.ctx, 1, out) == ET_ERR_ARG
    f = ffi.new("et_plan_lga_layer_t *")
    cm = CModel(preset("mlp", 0))
    assert lib.et_plan_lga_layer(cm.c, c_config(ffi, lga_config()), 0, f) == ET_ERR_ARG  # flatten
    assert lib.et_plan_lga_layer(cm.c, c_config(ffi, TrainConfig()), 1, f) == ET_ERR_ARG  # not an LGA config
    assert lib.et_plan_lga_layer(cm.c, c_config(ffi, lga_config()), 1, f) == ET_OK
    assert f.state_bytes == 64 + 14 * 4 * (64 + 784)
