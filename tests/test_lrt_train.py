"""Low-rank training in the training step (ET_OPT_LRT in csrc/src/train.c and plan.c against
edgetrain/reference/train.py and plan.py): whole steps byte for byte (NVM image, per-cell writes,
SRAM parameters, every layer's accumulator state, counters), the arena (poisoned: nothing beyond
the plan is touched and the plan is tight), the per-layer figures, and bad configs changing nothing."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edgetrain import ArgumentError, NoMemoryError
from edgetrain.backends import CBackend, CModel, CPlanner, NumpyBackend, c_config, c_plan, make_backend
from edgetrain.config import LRT_STATS, MAX_LAYERS, OPT_LRT, OPT_SGD, LrtConfig, TrainConfig
from edgetrain.model.presets import preset
from edgetrain.reference import plan as ref_plan
from edgetrain.reference import train as ref_train
from edgetrain.config import TRUNC_BIASED, TRUNC_DEFAULT, TRUNC_UNBIASED
from edgetrain.model.description import LayerKind
from test_train_twin import MODELS, assert_same_state, c_outputs, inputs, twin_outputs

ET_OK, ET_ERR_ARG, ET_ERR_NOMEM = 0, -1, -2


def lrt_config(seed=0, ranks=(), **lrt) -> TrainConfig:
    return TrainConfig(optimizer=OPT_LRT, seed=seed, lrt=LrtConfig(**lrt), lrt_rank=ranks)


def c_lrt(cb: CBackend, layer: int) -> dict:
    """The C accumulator of a layer (through et_train_lrt) in reference_snapshot's layout, plus counters."""
    from edgetrain.core import ffi, lib

    pst = ffi.new("et_lrt_state_t **")
    stats = ffi.new("et_train_lrt_stats_t *")
    assert lib.et_train_lrt(cb.ctx, layer, ffi.cast("const et_lrt_state_t **", pst), stats) == ET_OK
    s = pst[0]
    n, m, r = s.n, s.m, s.rank
    bases = ffi.cast("int16_t *", ffi.cast("uint8_t *", s) + ffi.sizeof("et_lrt_state_t"))
    vals = np.frombuffer(ffi.buffer(bases, 2 * r * (n + m)), dtype=np.int16)
    return {"ql": vals[: n * r].reshape(n, r).tolist(), "qr": vals[n * r :].reshape(m, r).tolist(), "exp_l": s.exp_l,
            "exp_r": s.exp_r, "c_mant": [int(s.c_mant[k]) for k in range(r)], "c_exp": s.c_exp, "b_eff": s.b_eff,
            "terms": s.terms, "skipped": s.skipped, "stats": {k: int(getattr(stats, k)) for k in LRT_STATS}}


def twin_lrt(nb: NumpyBackend, layer: int) -> dict:
    st = nb.state.layers[layer].lrt
    return {"ql": st.ql.tolist(), "qr": st.qr.tolist(), "exp_l": st.exp_l, "exp_r": st.exp_r, "c_mant": list(st.c_mant),
            "c_exp": st.c_exp, "b_eff": st.b_eff, "terms": st.terms, "skipped": st.skipped,
            "stats": ref_train.lrt_stats(nb.state, layer)}


def weight_layers(model):
    return [i for i, layer in enumerate(model.layers) if layer.weights is not None]


def assert_same_lrt(twin, cb, nb, what):
    assert_same_state(twin, cb, nb, what)
    for i in weight_layers(cb.model):
        twin.equal(c_lrt(cb, i), twin_lrt(nb, i), f"accumulator of layer {i} ({what})")
    twin.equal(int(cb._ffi.cast("uint32_t *", c_prng(cb))[0]), nb.state.prng.state, f"PRNG ({what})")


def c_prng(cb):
    """The context's PRNG state: the arena's prng part lies right before the LRT parts."""
    plan = cb.plan
    at = sum(plan[p] for p in ("context", "activations", "gradients", "optimizer"))
    return cb._ffi.cast("uint8_t *", cb._arena) + at


# ---- whole steps -------------------------------------------------------------------------------------

# Small B and rho_min = 0 so that flushes (applied and, with a high rho_min, refused) happen within a few steps.
STEP_CONFIGS = [
    ("unbiased-r4", dict(batch_conv=2, batch_dense=3, rho_min_ppm=0)),
    ("biased-r2", dict(rank=2, unbiased=0, batch_conv=1, batch_dense=2, rho_min_ppm=0)),
    ("r1-kappa-off", dict(rank=1, kappa_th=0, batch_conv=3, batch_dense=4, rho_min_ppm=0)),
    ("r8-gate", dict(rank=8, batch_conv=2, batch_dense=2, rho_min_ppm=300000, eta0_q24=1 << 15)),
    ("no-maxnorm-1pass", dict(maxnorm=0, gs_passes=1, batch_conv=2, batch_dense=3, eta0_q24=1 << 12)),
    ("reorth-5", dict(reorth_terms=5, kappa_th=0, batch_conv=2, batch_dense=4, rho_min_ppm=0)),
    # conv layers' terms through et_lrt_accumulate_batch_*, 16 or 5 at a time (the last of a sample shorter)
    ("term-batch-16", dict(conv_term_batch=16, kappa_th=0, batch_conv=2, batch_dense=3, rho_min_ppm=0)),
    ("term-batch-5-r3", dict(conv_term_batch=5, rank=3, batch_conv=2, batch_dense=3, rho_min_ppm=0, reorth_terms=7)),
]


@pytest.mark.parametrize("model_name", ["tiny-bn", "tiny-dense-bn", "tiny-logit-conv", "mlp"])
@pytest.mark.parametrize("cfg_name, lrt", STEP_CONFIGS, ids=[c[0] for c in STEP_CONFIGS])
def test_lrt_steps_agree_byte_for_byte(core, twin, model_name, cfg_name, lrt):
    model = MODELS[model_name](5)
    cfg = lrt_config(seed=11, **lrt)
    cb, nb = CBackend(model, cfg), NumpyBackend(model, cfg)
    xs = inputs(model, 14, 2, "digits" if model_name == "mlp" else "random")
    labels = np.random.default_rng(4).integers(0, model.n_classes, len(xs))
    for k, (x, y) in enumerate(zip(xs, labels)):
        twin.equal(cb.step(x, y), nb.step(x, y), f"prediction {k}")
        twin.equal(c_outputs(cb), twin_outputs(nb), f"layer outputs {k}")
        assert_same_lrt(twin, cb, nb, f"{model_name} {cfg_name} step {k}")
    cb.checkpoint()
    nb.checkpoint()
    assert_same_state(twin, cb, nb, "after checkpoint")
    stats = cb.lrt_stats()
    assert all(s["flushes"] >= 3 for s in stats.values()), stats  # flushes did happen in every layer
    if lrt.get("rho_min_ppm") == 0:
        assert cb.cell_writes[cb.weight_cells()].sum() > 0 and all(s["applied"] > 0 for s in stats.values())
    if cfg_name == "r8-gate":  # the density gate refused some attempts: the estimate kept accumulating
        assert any(s["applied"] < s["flushes"] for s in stats.values()), stats


def test_per_layer_ranks_agree_and_apply(core, twin):
    model = MODELS["tiny-dense-bn"](1)
    ranks = [0] * len(model.layers)
    w = weight_layers(model)
    ranks[w[0]], ranks[w[-1]] = 7, 2  # the others keep the global rank 3
    cfg = lrt_config(seed=3, ranks=tuple(ranks), rank=3, batch_conv=2, batch_dense=2, rho_min_ppm=0)
    cb, nb = CBackend(model, cfg), NumpyBackend(model, cfg)
    for k, x in enumerate(inputs(model, 8, 5)):
        twin.equal(cb.step(x, k % model.n_classes), nb.step(x, k % model.n_classes))
    assert_same_lrt(twin, cb, nb, "per-layer ranks")
    got = [len(c_lrt(cb, i)["c_mant"]) for i in w]
    assert got == [7] + [3] * (len(w) - 2) + [2]
    twin.equal([f["rank"] for f in CPlanner(model).lrt_layers(cfg)], got)


def kind_truncation(model, conv: int, dense: int) -> tuple:
    """lrt_truncation by layer index: ``conv`` for conv layers, ``dense`` for dense ones, 0 elsewhere."""
    return tuple(0 if layer.weights is None else conv if layer.kind == LayerKind.CONV2D else dense
                 for layer in model.layers)


@pytest.mark.parametrize("unbiased, conv, dense", [(1, TRUNC_BIASED, TRUNC_DEFAULT), (0, TRUNC_DEFAULT, TRUNC_UNBIASED),
                                                   (1, TRUNC_UNBIASED, TRUNC_BIASED)])
def test_per_layer_truncation_agrees_and_applies(core, twin, unbiased, conv, dense):
    model = MODELS["tiny-bn"](2)
    truncation = kind_truncation(model, conv, dense)
    cfg = replace(lrt_config(seed=5, rank=1, unbiased=unbiased, batch_conv=3, batch_dense=3, rho_min_ppm=0),
                  lrt_truncation=truncation)
    cb, nb = CBackend(model, cfg), NumpyBackend(model, cfg)
    for k, x in enumerate(inputs(model, 10, 6)):
        twin.equal(cb.step(x, k % model.n_classes), nb.step(x, k % model.n_classes), f"prediction {k}")
        assert_same_lrt(twin, cb, nb, f"truncation {truncation} step {k}")
    want = {1: 0, 2: 1, 0: unbiased}
    got = [cfg.lrt_layer_config(i).unbiased for i in weight_layers(model)]
    assert got == [want[truncation[i]] for i in weight_layers(model)]
    assert 0 in got and 1 in got  # a mixed config: both truncations in one model
    # The mixed run differs from both pure runs: the switch reaches the accumulator.
    for pure in (0, 1):
        other = CBackend(model, lrt_config(seed=5, unbiased=pure, batch_conv=2, batch_dense=3, rho_min_ppm=0))
        for k, x in enumerate(inputs(model, 10, 6)):
            other.step(x, k % model.n_classes)
        assert any(c_lrt(other, i) != c_lrt(cb, i) for i in weight_layers(model))


@pytest.mark.parametrize("truncation, message", [((0, 3), "lrt_truncation\\[1\\] = 3 is not one of"),
                                                 ((0, -1), "lrt_truncation\\[1\\] = -1 is not one of"),
                                                 ((0,) * (MAX_LAYERS + 1), "lrt_truncation has 33 entries")])
def test_bad_layer_truncation(core, truncation, message):
    from edgetrain.core import ffi, lib

    model = preset("mlp", 0)
    bad = replace(lrt_config(), lrt_truncation=truncation)
    with pytest.raises(ArgumentError, match=message):
        make_backend("numpy", model, bad)
    with pytest.raises(ArgumentError):  # the C backend: the core's ET_ERR_ARG, or a value its uint8 cannot hold
        make_backend("c", model, bad)
    if len(truncation) <= MAX_LAYERS and min(truncation) >= 0:
        cm = CModel(model)
        plan = ffi.new("et_plan_t *")
        assert lib.et_plan(cm.c, c_config(ffi, bad), plan) == ET_ERR_ARG
        for value in (3, 255):  # every value past ET_LRT_TRUNC_UNBIASED is refused by the core
            raw = c_config(ffi, replace(lrt_config(), lrt_truncation=(0, value)))
            assert lib.et_plan(cm.c, raw, plan) == ET_ERR_ARG
        # Not read by the other optimizers.
        assert lib.et_plan(cm.c, c_config(ffi, replace(bad, optimizer=OPT_SGD)), plan) == ET_OK


@pytest.mark.slow
@pytest.mark.parametrize("conv, dense", [(TRUNC_BIASED, TRUNC_UNBIASED), (TRUNC_UNBIASED, TRUNC_BIASED)])
def test_mcu_cnn_mixed_truncation_steps_agree(core, twin, conv, dense):
    """Table 1's mixed rows on the deployed shape: conv biased / dense unbiased and the reverse, byte for byte."""
    model = preset("mcu-cnn", 2)
    cfg = replace(lrt_config(seed=9, batch_conv=2, batch_dense=3, rho_min_ppm=0),
                  lrt_truncation=kind_truncation(model, conv, dense))
    cb, nb = CBackend(model, cfg), NumpyBackend(model, cfg)
    for k, x in enumerate(inputs(model, 6, 8, "digits")):
        twin.equal(cb.step(x, k % 10), nb.step(x, k % 10), f"prediction {k}")
        assert_same_lrt(twin, cb, nb, f"mcu-cnn mixed step {k}")
    stats = cb.lrt_stats()
    assert all(s["applied"] >= 1 for s in stats.values()), stats


@pytest.mark.slow
@pytest.mark.parametrize("unbiased, reorth, term_batch", [(1, 0, 0), (0, 0, 0), (1, 50, 0), (1, 0, 16)])
def test_mcu_cnn_lrt_steps_agree(core, twin, unbiased, reorth, term_batch):
    """The deployed shape: conv terms per pixel (up to 676 per sample), BN-fed dense, flushes of every layer;
    with reorth, the conv layers' bases are re-orthonormalised many times between flushes; with term_batch,
    the conv layers' terms go to the batched accumulate 16 at a time."""
    model = preset("mcu-cnn", 2)
    cfg = lrt_config(seed=9, unbiased=unbiased, batch_conv=2, batch_dense=3, rho_min_ppm=0, reorth_terms=reorth,
                     conv_term_batch=term_batch)
    cb, nb = CBackend(model, cfg), NumpyBackend(model, cfg)
    for k, x in enumerate(inputs(model, 6, 8, "digits")):
        twin.equal(cb.step(x, k % 10), nb.step(x, k % 10), f"prediction {k}")
        assert_same_lrt(twin, cb, nb, f"mcu-cnn step {k}")
    stats = cb.lrt_stats()
    assert stats["conv1"]["terms"] > 6 * 100 and all(s["applied"] >= 1 for s in stats.values()), stats


def test_weights_change_only_at_flushes(core):
    """B = 4 for every layer: the NVM weights change only at samples 4, 8, ...; the biases every sample."""
    model = preset("mlp", 1)
    cb = CBackend(model, lrt_config(batch_dense=4, rho_min_ppm=0))
    wmask = cb.weight_cells()
    before = cb.image()
    for k, x in enumerate(inputs(model, 12, 3, "digits"), start=1):
        cb.step(x, k % 10)
        now = cb.image()
        changed = bool((now[wmask] != before[wmask]).any())
        assert changed == (k % 4 == 0), k
        before = now
    stats = cb.lrt_stats()
    assert stats == {name: {"terms": 12, "skipped": stats[name]["skipped"], "flushes": 3, "applied": 3} for name in ("fc1", "fc2")}


# ---- memory: the plan, the arena --------------------------------------------------------------------


@pytest.mark.parametrize("model_name", ["tiny-bn", "tiny-dense-bn", "mlp", "mcu-cnn"])
@pytest.mark.parametrize("rank, term_batch", [(1, 0), (4, 0), (8, 0), (4, 16), (8, 3)])
def test_lrt_plan_agrees_with_twin(core, twin, model_name, rank, term_batch):
    model = MODELS[model_name](0)
    cfg = lrt_config(rank=rank, conv_term_batch=term_batch)
    planner = CPlanner(model)
    c = planner.plan(cfg)
    twin.equal(c, ref_plan.plan(model, cfg, context_bytes=c["context"]), f"plan {model_name} r={rank}")
    layers = planner.lrt_layers(cfg)
    for f in layers:
        t = ref_plan.lrt_layer(model, cfg, f["index"])
        twin.equal((f["n"], f["m"], f["rank"], f["lrt_bytes"], f["norms_bytes"], f["scratch_bytes"]),
                   (t["n"], t["m"], t["rank"], t["state_bytes"], t["norms_bytes"], t["scratch_bytes"]))
    # Relative to SGD: the LRT parts appear, the conv dW buffer and the SGD weight trackers go, two LRT trackers come.
    sgd = planner.plan(TrainConfig(optimizer=OPT_SGD))
    assert sgd["lrt_state"] == sgd["lrt_scratch"] == 0
    assert c["lrt_state"] == sum((f["lrt_bytes"] + 7) // 8 * 8 for f in layers)
    assert c["lrt_scratch"] == 96 + (max(f["scratch_bytes"] for f in layers) + 7) // 8 * 8
    assert c["optimizer"] - sgd["optimizer"] == 16 * len(layers)


def test_persistent_state_is_the_bases_their_low_bits_and_a_60_byte_header(core):
    """Figures written out from the layer shapes: mcu-cnn conv1 8 x (3*3*1), conv2 16 x (3*3*8), fc1 64 x 400, fc2 10 x 64."""
    planner = CPlanner(preset("mcu-cnn"))
    for rank in range(1, 9):
        layers = planner.lrt_layers(lrt_config(rank=rank))
        assert [(f["name"], f["kind"], f["n"], f["m"]) for f in layers] == [
            ("conv1", "conv", 8, 9), ("conv2", "conv", 16, 72), ("fc1", "dense", 64, 400), ("fc2", "dense", 10, 64)]
        for f in layers:
            b = 2 if rank >= 3 else rank - 1  # column 1's low bits per row
            bases = 2 * rank * (f["n"] + f["m"]) + (f["n"] * b + 7) // 8 + (f["m"] * b + 7) // 8
            assert f["rank"] == rank and f["lrt_bytes"] - bases == 60 <= 64
            assert f["norms_bytes"] == 32  # two max-norm trackers: optimizer state, outside the 64
            assert f["scratch_bytes"] == 4 * (2 * (f["n"] + f["m"]) + 2 * (rank + 1) ** 2 + 3 * (rank + 1) * rank)


def run_poisoned(model, cfg, poison: int, steps: int, guard: int = 256):
    """Train in an arena filled with `poison` (plus a guard beyond the plan); return (arena bytes, plan total)."""
    from edgetrain.core import ffi, lib

    cm = CModel(model)
    total = c_plan(model, cfg)["total"]
    arena = ffi.new("uint64_t[]", (total + guard) // 8)
    ffi.memmove(arena, bytes([poison]) * (total + guard), total + guard)
    ctx, required = ffi.new("et_train_t **"), ffi.new("uint32_t *")
    assert lib.et_train_init(ctx, arena, total, cm.c, cm.nvm, c_config(ffi, cfg), required) == ET_OK
    assert required[0] == total
    res = ffi.new("et_train_result_t *")
    for k, x in enumerate(inputs(model, steps, 6, "digits")):
        assert lib.et_train_step(ctx[0], ffi.from_buffer("uint8_t[]", x), x.size, k % 10, res) == ET_OK
    assert lib.et_train_checkpoint(ctx[0]) == ET_OK
    stats = ffi.new("et_train_lrt_stats_t *")
    for i in weight_layers(model):
        assert lib.et_train_lrt(ctx[0], i, ffi.NULL, stats) == ET_OK
        assert stats.applied >= 1  # the flush paths (flush context, row buffer, write path) ran
    return np.frombuffer(ffi.buffer(arena, total + guard), dtype=np.uint8).copy(), total


@pytest.mark.parametrize("model_name", ["mlp", "mcu-cnn"])
@pytest.mark.parametrize("rank", [1, 4, 8])
def test_training_stays_inside_the_plan_and_the_plan_is_tight(core, model_name, rank):
    """Two poison patterns: a byte counts as touched when either run changed it. Every flush path runs
    (B = 1, rho_min = 0). No byte beyond the plan changes; the highest touched byte is the plan's last
    8-byte granule (the plan's unit: every buffer starts 8-byte aligned)."""
    model = preset(model_name, 0)
    cfg = lrt_config(rank=rank, batch_conv=1, batch_dense=1, rho_min_ppm=0)
    touched = None
    for poison in (0xA5, 0x5A):
        mem, total = run_poisoned(model, cfg, poison, steps=3)
        hit = mem != poison
        touched = hit if touched is None else touched | hit
        assert not hit[total:].any(), f"bytes beyond the plan ({total}) were written"
    high_water = int(np.flatnonzero(touched).max()) + 1
    assert (high_water + 7) // 8 * 8 == total, (high_water, total)
    # The LRT parts (the arena's tail) are used: the state of every layer and the largest layer's scratch.
    plan = c_plan(model, cfg)
    tail = plan["lrt_state"] + plan["lrt_scratch"]
    assert touched[total - tail :].mean() > 0.5


def test_init_with_a_small_arena_is_nomem_and_touches_nothing(core):
    from edgetrain.core import call, ffi, lib

    model = preset("mcu-cnn", 0)
    cm = CModel(model)
    cfg = lrt_config()
    c = c_config(ffi, cfg)
    total = c_plan(model, cfg)["total"]
    assert total > c_plan(model, TrainConfig())["total"]  # the LRT parts are in it
    arena = ffi.new("uint64_t[]", total // 8 + 1)
    ffi.memmove(arena, b"\xa5" * (total + 8), total + 8)
    ctx, required = ffi.new("et_train_t **"), ffi.new("uint32_t *")
    for short in (total - 8, total - 1, 64):
        assert lib.et_train_init(ctx, arena, short, cm.c, cm.nvm, c, required) == ET_ERR_NOMEM
        assert required[0] == total and ctx[0] == ffi.NULL
    assert bytes(ffi.buffer(arena, total + 8)) == b"\xa5" * (total + 8)
    with pytest.raises(NoMemoryError) as info:
        call("et_train_init", ctx, arena, total - 8, cm.c, cm.nvm, c, required, required_bytes=required[0])
    assert info.value.required_bytes == total
    assert lib.et_train_init(ctx, arena, total, cm.c, cm.nvm, c, required) == ET_OK


# ---- bad configs ----------------------------------------------------------------------------------------

BAD = [("rank", 0), ("rank", 9), ("batch_conv", 0), ("batch_dense", 0), ("eta0_q24", 0), ("eta0_q24", (1 << 24) + 1),
       ("unbiased", 2), ("rho_min_ppm", 1000001), ("gs_passes", 3)]


@pytest.mark.parametrize("field, value", BAD)
def test_bad_lrt_config_is_rejected_and_nothing_is_written(core, field, value):
    from edgetrain.core import ffi, lib

    model = preset("mlp", 0)
    good = lrt_config()
    bad = replace(good, lrt=replace(good.lrt, **{field: value}))
    cm = CModel(model)
    total = c_plan(model, good)["total"]
    arena = ffi.new("uint64_t[]", total // 8)
    ffi.memmove(arena, b"\x5a" * total, total)
    ctx, required, plan = ffi.new("et_train_t **"), ffi.new("uint32_t *", 77), ffi.new("et_plan_t *")
    c = c_config(ffi, bad)
    image = bytes(ffi.buffer(cm.mem, cm.size))
    assert lib.et_plan(cm.c, c, plan) == ET_ERR_ARG and plan.total == 0
    assert lib.et_train_init(ctx, arena, total, cm.c, cm.nvm, c, required) == ET_ERR_ARG
    assert ctx[0] == ffi.NULL and required[0] == 77
    assert bytes(ffi.buffer(arena, total)) == b"\x5a" * total and bytes(ffi.buffer(cm.mem, cm.size)) == image
    f = ffi.new("et_plan_lrt_layer_t *")
    assert lib.et_plan_lrt_layer(cm.c, c, 1, f) == ET_ERR_ARG
    for backend in ("c", "numpy"):
        with pytest.raises(ArgumentError, match=f"LRT config: {field} = {value} is outside"):
            make_backend(backend, model, bad)
    # The same field is not read by the other optimizers.
    assert lib.et_plan(cm.c, c_config(ffi, replace(bad, optimizer=OPT_SGD)), plan) == ET_OK


@pytest.mark.parametrize("ranks, message", [((0, 9), "lrt_rank\\[1\\] = 9 is outside 1..8"),
                                            ((0,) * (MAX_LAYERS + 1), "at most 32 layers")])
def test_bad_layer_ranks(core, ranks, message):
    from edgetrain.core import ffi, lib

    model = preset("mlp", 0)
    bad = lrt_config(ranks=ranks)
    with pytest.raises(ArgumentError, match=message):
        make_backend("numpy", model, bad)
    if len(ranks) <= MAX_LAYERS:
        cm = CModel(model)
        assert lib.et_plan(cm.c, c_config(ffi, bad), ffi.new("et_plan_t *")) == ET_ERR_ARG


def test_lrt_accessors_refuse_what_has_no_accumulator(core):
    from edgetrain.core import ffi, lib

    cb = CBackend(preset("mlp", 0), lrt_config())
    stats = ffi.new("et_train_lrt_stats_t *")
    assert lib.et_train_lrt(cb.ctx, 0, ffi.NULL, stats) == ET_ERR_ARG  # flatten
    assert lib.et_train_lrt(cb.ctx, 9, ffi.NULL, stats) == ET_ERR_ARG  # beyond the model
    assert lib.et_train_lrt(cb.ctx, 1, ffi.NULL, stats) == ET_OK
    sgd = CBackend(preset("mlp", 0), TrainConfig())
    assert lib.et_train_lrt(sgd.ctx, 1, ffi.NULL, stats) == ET_ERR_ARG
    with pytest.raises(ArgumentError, match="no low-rank accumulator"):
        make_backend("numpy", preset("mlp", 0), TrainConfig()).lrt_stats()
    f = ffi.new("et_plan_lrt_layer_t *")
    cm = CModel(preset("mlp", 0))
    assert lib.et_plan_lrt_layer(cm.c, c_config(ffi, lrt_config()), 0, f) == ET_ERR_ARG  # flatten: no weights
    assert lib.et_plan_lrt_layer(cm.c, c_config(ffi, lrt_config()), 3, f) == ET_ERR_ARG  # the head
    assert lib.et_plan_lrt_layer(cm.c, c_config(ffi, TrainConfig()), 1, f) == ET_ERR_ARG  # not an LRT config
    assert lib.et_plan_lrt_layer(cm.c, c_config(ffi, lrt_config()), 1, f) == ET_OK and f.state_bytes == 60 + 8 * (64 + 784) + 16 + 196
