"""csrc/src/train.c and plan.c against edgetrain/reference/train.py and plan.py:
whole training steps compared byte for byte (NVM image, per-cell write counts,
SRAM parameters, every layer output, the (delta, x) pair stream), the memory
plan, the write path, and bad input leaving everything untouched."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgetrain import ArgumentError, CorruptError, NoMemoryError, NvmIOError, UnsupportedError
from edgetrain.backends import CBackend, CModel, NumpyBackend, c_config, c_plan, make_backend, tensor_spans
from edgetrain.config import OPT_BIAS, OPT_NONE, OPT_SGD, TrainConfig
from edgetrain.model.description import LayerKind, Padding, Shape
from edgetrain.model.presets import _Builder, preset
from edgetrain.reference import plan as ref_plan
from edgetrain.reference import train as ref_train
from edgetrain.reference.fixed import FMT_INPUT
from layer_cases import buf

ET_OK, ET_ERR_ARG, ET_ERR_NOMEM, ET_ERR_CORRUPT, ET_ERR_IO, ET_ERR_UNSUPPORTED = 0, -1, -2, -3, -6, -7


# ---- small models that exercise every layer path ------------------------------------------


def tiny_bn(seed=0):
    """SAME conv, pool, BN, a conv fed by the signed BN format, flatten, dense, head."""
    b = _Builder("tiny-bn", Shape(6, 6, 1, FMT_INPUT), seed)
    b.conv("c1", 3, padding=Padding.SAME)
    b.pool("p1")
    b.batchnorm("bn")
    b.conv("c2", 4)
    b.flatten()
    b.dense("fc", 3, relu=False)
    return b.head()


def tiny_dense_bn(seed=0):
    """BN feeding a dense layer through flatten; two BN layers."""
    b = _Builder("tiny-dense-bn", Shape(5, 5, 1, FMT_INPUT), seed)
    b.conv("c1", 2)
    b.batchnorm("bn1")
    b.conv("c2", 3, k=1)
    b.batchnorm("bn2")
    b.flatten()
    b.dense("fc1", 5)
    b.dense("fc2", 4, relu=False)
    return b.head()


def tiny_logit_conv(seed=0):
    """A conv without ReLU giving the logits through flatten."""
    b = _Builder("tiny-logit-conv", Shape(3, 3, 1, FMT_INPUT), seed)
    b.conv("c1", 2, k=3, relu=False, padding=Padding.VALID)
    b.flatten()
    return b.head()


MODELS = {"tiny-bn": tiny_bn, "tiny-dense-bn": tiny_dense_bn, "tiny-logit-conv": tiny_logit_conv,
          "mlp": lambda s: preset("mlp", s), "mcu-cnn": lambda s: preset("mcu-cnn", s)}


def inputs(model, n, seed, kind="random"):
    rng = np.random.default_rng(seed)
    size = model.input_shape.size
    if kind == "digits":  # MNIST-like: mostly dark, a bright blob
        x = np.zeros((n, size), np.uint8)
        for i in range(n):
            x[i, rng.choice(size, size // 5, replace=False)] = rng.integers(100, 256, size // 5)
        return x
    return rng.integers(0, 256, (n, size)).astype(np.uint8)


# ---- C state readers ------------------------------------------------------------------------


def c_outputs(cb: CBackend):
    ffi, lib = cb._ffi, __import__("edgetrain.core", fromlist=["lib"]).lib
    data, nbytes = ffi.new("void **"), ffi.new("uint32_t *")
    outs = []
    for i, layer in enumerate(cb.model.layers[:-1]):
        status = lib.et_train_output(cb.ctx, i, ffi.cast("const void **", data), nbytes)
        if all(l.kind == LayerKind.FLATTEN for l in cb.model.layers[: i + 1]):
            assert status == -8  # ET_ERR_STATE: the caller's input, not kept
            outs.append(None)
            continue
        assert status == ET_OK
        outs.append(bytes(ffi.buffer(ffi.cast("uint8_t *", data[0]), nbytes[0])))
    assert lib.et_train_output(cb.ctx, len(cb.model.layers) - 1, ffi.cast("const void **", data), nbytes) == ET_ERR_ARG
    return outs


def twin_outputs(nb: NumpyBackend):
    layers = nb.model.layers
    return [None if all(l.kind == LayerKind.FLATTEN for l in layers[: i + 1]) else np.ascontiguousarray(ls.out).tobytes()
            for i, ls in enumerate(nb.state.layers[:-1])]


def c_params(cb: CBackend):
    from edgetrain.core import ffi, lib

    bias, bn = ffi.new("int16_t **"), ffi.new("int16_t **")
    out = []
    for i, layer in enumerate(cb.model.layers):
        assert lib.et_train_params(cb.ctx, i, ffi.cast("const int16_t **", bias), ffi.cast("const int16_t **", bn)) == ET_OK
        b = list(ffi.unpack(bias[0], layer.out_shape.c)) if bias[0] != ffi.NULL else None
        n = list(ffi.unpack(bn[0], 4 * layer.in_shape.c)) if bn[0] != ffi.NULL else None
        out.append((b, n))
    return out


def twin_params(nb: NumpyBackend):
    return [(ls.bias.tolist() if ls.bias is not None else None, ls.bn.reshape(-1).tolist() if ls.bn is not None else None)
            for ls in nb.state.layers]


def assert_same_state(twin, cb, nb, what):
    twin.equal(cb.image().tobytes(), nb.image().tobytes(), f"NVM image ({what})")
    twin.equal(cb.cell_writes.tolist(), nb.cell_writes.tolist(), f"cell writes ({what})")
    twin.equal(c_params(cb), twin_params(nb), f"SRAM parameters ({what})")


# ---- whole steps ----------------------------------------------------------------------------------


CONFIGS = [
    ("sgd", TrainConfig(optimizer=OPT_SGD)),
    ("sgd-per-pixel", TrainConfig(optimizer=OPT_SGD, conv_per_pixel=True)),
    ("bias", TrainConfig(optimizer=OPT_BIAS)),
    ("none", TrainConfig(optimizer=OPT_NONE)),
    ("sgd-lr", TrainConfig(optimizer=OPT_SGD, lr_weight=1 << 20, lr_weight_exp=-24, lr_bias=3, lr_bias_exp=-8)),
]


@pytest.mark.parametrize("model_name", ["tiny-bn", "tiny-dense-bn", "tiny-logit-conv", "mlp"])
@pytest.mark.parametrize("cfg_name, cfg", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_steps_agree_byte_for_byte(core, twin, model_name, cfg_name, cfg):
    model = MODELS[model_name](7)
    cb, nb = CBackend(model, cfg), NumpyBackend(model, cfg)
    xs = inputs(model, 24, 1, "digits" if model_name == "mlp" else "random")
    labels = np.random.default_rng(2).integers(0, model.n_classes, len(xs))
    for k, (x, y) in enumerate(zip(xs, labels)):
        twin.equal(cb.step(x, y), nb.step(x, y), f"prediction {k}")
        twin.equal(c_outputs(cb), twin_outputs(nb), f"layer outputs {k}")
        assert_same_state(twin, cb, nb, f"{model_name} {cfg_name} step {k}")
    twin.equal(cb.predict(xs[0]), nb.predict(xs[0]), "predict")
    cb.checkpoint()
    nb.checkpoint()
    assert_same_state(twin, cb, nb, "after checkpoint")
    twin.equal(cb.weights_sha256(), nb.weights_sha256())
    if cfg.optimizer == OPT_NONE:
        assert cb.image().tobytes() == cb.image_bytes and cb.cell_writes.sum() == 0
    elif cfg.optimizer == OPT_BIAS:
        w = cb.weight_cells()
        assert cb.cell_writes[w].sum() == 0 and cb.cell_writes[~w].sum() > 0


@pytest.mark.parametrize("per_pixel", [False, True])
def test_mcu_cnn_steps_agree(core, twin, per_pixel):
    model = preset("mcu-cnn", 11)
    cfg = TrainConfig(optimizer=OPT_SGD, conv_per_pixel=per_pixel)
    cb, nb = CBackend(model, cfg), NumpyBackend(model, cfg)
    xs = inputs(model, 12 if per_pixel else 30, 3, "digits")
    for k, x in enumerate(xs):
        twin.equal(cb.step(x, k % 10), nb.step(x, k % 10), f"prediction {k}")
        assert_same_state(twin, cb, nb, f"mcu-cnn step {k}")
    assert cb.cell_writes[cb.weight_cells()].sum() > 0  # weights did change


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["tiny-bn", "tiny-dense-bn", "tiny-logit-conv"]), st.integers(0, 2**32 - 1),
       st.sampled_from([0, 1, 2]), st.booleans(), st.booleans(), st.integers(1 << 16, (1 << 24) - 1), st.integers(-30, -16))
def test_random_configs_agree(core, twin, model_name, seed, optimizer, per_pixel, warm, lr, lr_exp):
    model = MODELS[model_name](seed)
    cfg = TrainConfig(optimizer=optimizer, conv_per_pixel=per_pixel, bn_warm=warm, lr_weight=lr, lr_weight_exp=lr_exp,
                      lr_bias=lr, lr_bias_exp=lr_exp, seed=seed)
    cb, nb = CBackend(model, cfg), NumpyBackend(model, cfg)
    rng = np.random.default_rng(seed)
    for x in inputs(model, 6, seed):
        y = int(rng.integers(0, model.n_classes))
        twin.equal(cb.step(x, y), nb.step(x, y))
    cb.checkpoint()
    nb.checkpoint()
    assert_same_state(twin, cb, nb, "random config")


# ---- the (delta, x) pair stream ---------------------------------------------------------------


def test_pair_stream_agrees_and_sums_to_the_weight_gradient(core, twin):
    from edgetrain.core import ffi, lib

    model = tiny_bn(3)
    cfg = TrainConfig(optimizer=OPT_BIAS)  # weights fixed: the stream is all that is asked of them
    cb, nb = CBackend(model, cfg), NumpyBackend(model, cfg)
    c_pairs, t_pairs = [], []

    @ffi.callback("et_status_t(void *, uint16_t, const et_grad_pair_t *)")
    def hook(user, layer, pair):
        c_pairs.append((layer, pair.index, pair.delta_exp, pair.x_exp, tuple(ffi.unpack(pair.delta, pair.n)), tuple(ffi.unpack(pair.x, pair.m))))
        return 0

    assert lib.et_train_set_pair_hook(cb.ctx, hook, ffi.NULL) == ET_OK
    nb.state.hook = lambda layer, p: t_pairs.append((layer, p.index, p.delta_exp, p.x_exp, tuple(p.delta.tolist()), tuple(p.x.tolist())))
    x = inputs(model, 1, 9)[0]
    cb.step(x, 1)
    nb.step(x, 1)
    twin.equal(c_pairs, t_pairs, "pair stream")
    # Order: top layer first; conv c2 (3x3 valid on 3x3) has one output pixel, c1 (SAME on 6x6) 36.
    layers = [p[0] for p in c_pairs]
    assert layers == [5] + [3] + [0] * 36
    # Sum of the conv c1 terms == et_conv2d_weight_grad on the same input and delta.
    c1 = model.layers[0]
    dz = np.array([p[4] for p in c_pairs if p[0] == 0], np.int8).reshape(6, 6, 3)
    total = sum(np.outer(np.array(p[4], np.int64), np.array(p[5], np.int64)) for p in c_pairs if p[0] == 0)
    from edgetrain.reference import layers as ref_layers

    assert np.array_equal(total, ref_layers.conv2d_weight_grad(c1, x.reshape(6, 6, 1), dz))
    assert c_pairs[0][2] == -7 - model.layers[5].alpha_shift and c_pairs[0][3] == -7  # dense fed by ReLU activations


def test_pair_hook_error_stops_the_step(core):
    from edgetrain.core import ffi, lib

    cb = CBackend(tiny_bn(1), TrainConfig())

    @ffi.callback("et_status_t(void *, uint16_t, const et_grad_pair_t *)")
    def failing(user, layer, pair):
        return ET_ERR_IO

    lib.et_train_set_pair_hook(cb.ctx, failing, ffi.NULL)
    with pytest.raises(NvmIOError):
        cb.step(inputs(cb.model, 1, 0)[0], 0)


# ---- memory plan -------------------------------------------------------------------------------


@pytest.mark.parametrize("model_name", ["tiny-bn", "tiny-dense-bn", "mlp", "mcu-cnn"])
@pytest.mark.parametrize("cfg_name, cfg", CONFIGS[:4], ids=[c[0] for c in CONFIGS[:4]])
def test_plan_agrees_with_twin(core, twin, model_name, cfg_name, cfg):
    from edgetrain.core import ffi, lib

    model = MODELS[model_name](0)
    c = c_plan(model, cfg)
    t = ref_plan.plan(model, cfg, context_bytes=c["context"])
    twin.equal(c, t, f"plan {model_name} {cfg_name}")
    assert c["total"] == sum(c[p] for p in ref_plan.PARTS) and all(c[p] % 8 == 0 for p in c)
    cm = CModel(model)
    saved, scratch = ffi.new("uint32_t *"), ffi.new("uint32_t *")
    for i, layer in enumerate(model.layers):
        assert lib.et_layer_get_buffer_size(ffi.addressof(cm.c.layers[i]), c_config(ffi, cfg), saved, scratch) == ET_OK
        twin.equal((saved[0], scratch[0]), ref_plan.layer_get_buffer_size(layer, cfg))


def test_mcu_cnn_plan_figures(core):
    """Written out from the layer shapes: conv1 26x26x8, pool 13x13x8, conv2 11x11x16, pool 5x5x16,
    BN 5x5x16 (+ mean_hat, inv_sigma: 2 x 16 int32), fc1 64, logits 10 int16 (padded to 24)."""
    plan = c_plan(preset("mcu-cnn"), TrainConfig())
    assert plan["activations"] == 5408 + 1352 + 1936 + 400 + 400 + 2 * 64 + 64 + 24
    # two int8 delta buffers of the largest tensor, the wide BN gradient (400 int16), conv2's dW
    # (16 x 72 int32), an int16 row and an int8 row of 400, parameter gradients 2 x 64 int64
    assert plan["gradients"] == 2 * 5408 + 2 * 400 + 4 * 16 * 72 + 2 * 400 + 400 + 16 * 64
    assert plan["total"] < 32 * 1024


def test_init_with_a_small_arena_is_nomem_and_touches_nothing(core):
    from edgetrain.core import ffi, lib

    model = tiny_bn(0)
    cm = CModel(model)
    cfg = c_config(ffi, TrainConfig())
    total = c_plan(model, TrainConfig())["total"]
    arena = ffi.new("uint64_t[]", total // 8 + 1)
    ffi.memmove(arena, b"\xa5" * (total + 8), total + 8)
    ctx, required = ffi.new("et_train_t **"), ffi.new("uint32_t *")
    assert lib.et_train_init(ctx, arena, total - 1, cm.c, cm.nvm, cfg, required) == ET_ERR_NOMEM
    assert required[0] == total and ctx[0] == ffi.NULL
    assert bytes(ffi.buffer(arena, total + 8)) == b"\xa5" * (total + 8)
    assert lib.et_train_init(ctx, ffi.NULL, 0, cm.c, cm.nvm, cfg, required) == ET_ERR_NOMEM
    misaligned = ffi.cast("uint8_t *", arena) + 1
    assert lib.et_train_init(ctx, misaligned, total, cm.c, cm.nvm, cfg, required) == ET_ERR_ARG
    assert lib.et_train_init(ctx, arena, total, cm.c, cm.nvm, cfg, required) == ET_OK
    with pytest.raises(NoMemoryError) as info:
        from edgetrain.core import call

        call("et_train_init", ctx, arena, 16, cm.c, cm.nvm, cfg, required, required_bytes=total)
    assert info.value.required_bytes == total


def test_init_rejects_models_config_and_nvm_it_cannot_use(core):
    from edgetrain.core import ffi, lib

    model = tiny_bn(0)
    cm = CModel(model)
    total = c_plan(model, TrainConfig())["total"]
    arena = ffi.new("uint64_t[]", total)
    ctx, required = ffi.new("et_train_t **"), ffi.new("uint32_t *")
    bad_cfg = c_config(ffi, TrainConfig())
    bad_cfg.optimizer = 5  # 0..4 are none, bias, sgd, lrt, lga
    assert lib.et_train_init(ctx, arena, total, cm.c, cm.nvm, bad_cfg, required) == ET_ERR_ARG
    cfg = c_config(ffi, TrainConfig())
    # Shapes that do not chain.
    cm.c.layers[1].out.h = 2
    assert lib.et_train_init(ctx, arena, total, cm.c, cm.nvm, cfg, required) == ET_ERR_CORRUPT
    plan = ffi.new("et_plan_t *")
    assert lib.et_plan(cm.c, cfg, plan) == ET_ERR_CORRUPT
    cm.c.layers[1].out.h = 3
    # NVM geometries the commit cannot use: an odd program unit, an erase unit without an erase function.
    cm.nvm.program_unit = 3
    assert lib.et_train_init(ctx, arena, total, cm.c, cm.nvm, cfg, required) == ET_ERR_UNSUPPORTED
    cm.nvm.program_unit = 1
    erase = cm.nvm.erase
    cm.nvm.erase_unit, cm.nvm.erase = 4096, ffi.NULL
    assert lib.et_train_init(ctx, arena, total, cm.c, cm.nvm, cfg, required) == ET_ERR_UNSUPPORTED
    # An erasable NVM is usable, but needs a staging buffer of its erase unit (the default 16 bytes
    # is refused) and room for page-aligned banks (this region was sized for byte-programmed cells).
    cm.nvm.erase = erase
    assert lib.et_train_init(ctx, arena, total, cm.c, cm.nvm, cfg, required) == ET_ERR_ARG
    paged = TrainConfig(commit_stage_bytes=4096)
    paged_total = c_plan(model, paged)["total"]
    assert paged_total == total - 16 + 4096  # plan part "commit"
    paged_arena = ffi.new("uint64_t[]", paged_total // 8)
    assert lib.et_train_init(ctx, paged_arena, paged_total, cm.c, cm.nvm, c_config(ffi, paged), required) == ET_ERR_NOMEM
    assert required[0] == paged_total
    cm.nvm.erase_unit = 0
    # A staging buffer below the record slot or not a multiple of the program unit.
    cm.nvm.program_unit = 32
    assert lib.et_train_init(ctx, arena, total, cm.c, cm.nvm, cfg, required) == ET_ERR_ARG
    odd = TrainConfig(commit_stage_bytes=48)
    assert lib.et_train_init(ctx, arena, c_plan(model, odd)["total"], cm.c, cm.nvm, c_config(ffi, odd), required) == ET_ERR_ARG
    cm.nvm.program_unit = 1
    other = ffi.new("uint8_t[]", cm.size)
    cm.c.image = other
    assert lib.et_train_init(ctx, arena, total, cm.c, cm.nvm, cfg, required) == ET_ERR_ARG
    assert ctx[0] == ffi.NULL
    # Config ranges of the commit fields: refused by the plan and by the twin's config check.
    plan = ffi.new("et_plan_t *")
    for bad in (TrainConfig(commit_stage_bytes=8), TrainConfig(commit_stage_bytes=65537), TrainConfig(ring_slots=1),
                TrainConfig(ring_slots=1025)):
        assert lib.et_plan(CModel(model).c, c_config(ffi, bad), plan) == ET_ERR_ARG
        with pytest.raises(ArgumentError, match="commit_stage_bytes|ring_slots"):
            bad.check()


def test_a_model_with_more_tensors_than_a_commit_handle_holds_is_refused(core):
    b = _Builder("deep", Shape(1, 1, 4, FMT_INPUT), 0)
    for k in range(17):  # 17 weight tensors + 17 biases = 34 > ET_COMMIT_MAX_TENSORS (32)
        b.dense(f"fc{k}", 4, relu=k < 16)
    model = b.head()
    with pytest.raises(UnsupportedError, match="ET_ERR_UNSUPPORTED"):
        CBackend(model, TrainConfig())


def test_python_rejects_shapes_that_do_not_chain():
    model = tiny_bn(0)
    model.layers[3].in_shape = Shape(2, 2, 3, model.layers[3].in_shape.fmt)
    for backend in ("c", "numpy"):
        with pytest.raises(CorruptError, match="does not match the previous output"):
            make_backend(backend, model, TrainConfig())


# ---- bad input changes nothing -----------------------------------------------------------


def snapshot(cb: CBackend):
    from edgetrain.core import ffi, lib

    samples = ffi.new("uint32_t *")
    lib.et_train_samples(cb.ctx, samples)
    return cb.image().tobytes(), cb.cell_writes.tobytes(), c_params(cb), c_outputs(cb), samples[0]


@pytest.mark.parametrize("model_name", ["tiny-bn", "mcu-cnn"])
def test_bad_input_is_rejected_and_changes_nothing(core, model_name):
    from edgetrain.core import ffi, lib

    model = MODELS[model_name](0)
    cb, nb = CBackend(model, TrainConfig()), NumpyBackend(model, TrainConfig())
    xs = inputs(model, 3, 0)
    cb.step(xs[0], 1)
    nb.step(xs[0], 1)
    before = snapshot(cb)
    res = ffi.new("et_train_result_t *")
    x = ffi.from_buffer("uint8_t[]", xs[1])
    n = model.input_shape.size
    assert lib.et_train_step(cb.ctx, x, n - 1, 1, res) == ET_ERR_ARG  # wrong input length
    assert lib.et_train_step(cb.ctx, x, n + 1, 1, res) == ET_ERR_ARG
    assert lib.et_train_step(cb.ctx, x, n, model.n_classes, res) == ET_ERR_ARG  # label out of range
    assert lib.et_train_step(cb.ctx, ffi.NULL, n, 1, res) == ET_ERR_ARG
    assert lib.et_train_step(cb.ctx, x, n, 1, ffi.NULL) == ET_ERR_ARG
    assert lib.et_train_predict(cb.ctx, x, n - 1, res) == ET_ERR_ARG
    assert snapshot(cb) == before
    # Python: typed errors that say what is wrong, for both backends, and nothing changes.
    twin_before = (nb.image().tobytes(), twin_params(nb), nb.state.samples)
    for backend in (cb, nb):
        with pytest.raises(ArgumentError, match=f"takes {n} uint8 values"):
            backend.step(xs[1][:-1], 1)
        with pytest.raises(ArgumentError, match=f"label {model.n_classes} is outside 0..{model.n_classes - 1}"):
            backend.step(xs[1], model.n_classes)
        with pytest.raises(ArgumentError):
            backend.step(xs[1].astype(np.int16), 1)
    with pytest.raises(ArgumentError, match="label -1 is outside"):
        ref_train.step(nb.state, xs[1], -1)
    assert snapshot(cb) == before
    assert (nb.image().tobytes(), twin_params(nb), nb.state.samples) == twin_before


def test_c_backend_reports_c_status_as_typed_error(core):
    """The C check, not only the Python one, rejects a wrong label: go around the Python check."""
    cb = CBackend(tiny_bn(0), TrainConfig())
    with pytest.raises(ArgumentError, match="et_train_step.*ET_ERR_ARG"):
        cb._step(inputs(cb.model, 1, 0)[0], 3)


# ---- the write path -------------------------------------------------------------------------


def test_write_rows_commits_only_changed_bytes(core, twin):
    """et_train_write_rows streams into one commit per layer update; et_train_write_end makes it active.
    Physical writes are checked against an independent count: snapshot diffs of the plain-memory NVM."""
    from edgetrain.core import ffi, lib

    model = tiny_bn(2)
    cb, nb = CBackend(model, TrainConfig()), NumpyBackend(model, TrainConfig())
    off = cb.offsets[0].weight
    stats = cb.cm.stats
    mem = lambda: np.frombuffer(ffi.buffer(cb.cm.mem, cb.cm.nvm_size), np.uint8).copy()  # noqa: E731
    current = cb.image()[off:off + 27].view(np.int8).reshape(3, 9).copy()
    changes = [[(1, 2), (1, 3), (1, 7)], [(0, 0), (2, 8)], [(1, 2)], [(2, 0), (2, 1)]]
    for k, cells in enumerate(changes):
        new = current.copy()
        for r, col in cells:
            new[r, col] ^= 5
        rows = sorted({r for r, _ in cells})
        before, calls, programmed = mem(), stats.program_calls, stats.bytes_programmed
        for r in rows:
            assert lib.et_train_write_rows(cb.ctx, 0, r, 1, buf(ffi, np.ascontiguousarray(new[r:r + 1]))) == ET_OK
            ref_train.write_rows(nb.state, 0, r, new[r:r + 1])
        # Streamed, not yet active: the read pointer still shows the old weights.
        assert np.array_equal(cb.image()[off:off + 27].view(np.int8).reshape(3, 9), current)
        assert lib.et_train_write_end(cb.ctx) == ET_OK
        after = mem()
        assert np.array_equal(cb.image()[off:off + 27].view(np.int8).reshape(3, 9), new)
        twin.equal(cb.image().tobytes(), nb.image().tobytes(), f"logical image after commit {k}")
        twin.equal(cb.cell_writes.tolist(), nb.cell_writes.tolist(), f"logical cell writes after commit {k}")
        # Independent count: only tensor 0's target bank and ring changed, the factory image never; the
        # bank received exactly the bytes in which it differed from the new tensor (commits 0 and 1: the
        # first fill of banks A and B), the ring one 16-byte record.
        info = ffi.new("et_commit_tensor_t *")
        assert lib.et_commit_tensor_info(cb.commit, 0, info) == ET_OK
        target = slice(info.bank_offset[k % 2], info.bank_offset[k % 2] + 27)
        ring = slice(info.ring_offset, info.ring_offset + 16 * info.ring_slots)
        assert "AB"[info.active] == "AB"[k % 2]
        outside = np.ones(len(before), bool)
        outside[target] = outside[ring] = False
        assert np.array_equal(before[outside], after[outside])
        assert np.array_equal(after[target].view(np.int8), new.reshape(-1))
        bank_bytes = int(np.count_nonzero(before[target].view(np.int8) != new.reshape(-1)))
        assert stats.bytes_programmed - programmed == bank_bytes + 16
        assert int(np.count_nonzero(before[ring] != after[ring])) <= 16
        # One program call per run of changed bytes within each 16-byte staging window, plus the record.
        differs = before[target] != after[target]
        runs = sum(int((np.diff(np.r_[0, differs[w:w + 16].astype(int)]) == 1).sum()) for w in range(0, 27, 16))
        assert stats.program_calls - calls == runs + 1
        current = new
    # Steady state: after both banks were filled, a one-byte change programs that byte, the byte the
    # previous commit changed (two commits ago in this bank's history), and a record: nothing else.
    new = current.copy()
    new[0, 4] ^= 3
    programmed = stats.bytes_programmed
    assert lib.et_train_write_rows(cb.ctx, 0, 0, 1, buf(ffi, np.ascontiguousarray(new[0:1]))) == ET_OK
    assert lib.et_train_write_end(cb.ctx) == ET_OK
    assert stats.bytes_programmed - programmed == 1 + 2 + 16  # (0, 4); (2, 0) and (2, 1) of the last commit; record
    # Logical counts: one per changed weight byte, whatever the physical writes were.
    assert cb.cell_writes[off + 9 + 2] == 2 and cb.cell_writes[off + 9 + 7] == 1 and cb.cell_writes.sum() == 9
    # Rows beyond the matrix, a layer without weights: rejected, nothing written.
    before = mem()
    assert lib.et_train_write_rows(cb.ctx, 0, 2, 2, buf(ffi, np.ascontiguousarray(new[1:]))) == ET_ERR_ARG
    assert lib.et_train_write_rows(cb.ctx, 1, 0, 1, buf(ffi, np.ascontiguousarray(new[1:]))) == ET_ERR_ARG
    assert lib.et_train_write_end(ffi.NULL) == ET_ERR_ARG
    with pytest.raises(ArgumentError):
        ref_train.write_rows(nb.state, 1, 0, new[1:])
    assert cb.cell_writes.sum() == 9 and np.array_equal(mem(), before)


def test_writes_to_another_layer_or_an_earlier_row_end_the_open_commit(core):
    from edgetrain.core import ffi, lib

    model = tiny_bn(4)
    cb = CBackend(model, TrainConfig())
    w0 = cb.image()[cb.offsets[0].weight:cb.offsets[0].weight + 27].view(np.int8).reshape(3, 9).copy()
    commits = lambda: cb.nvm_stats()["commits"]  # noqa: E731
    row = np.ascontiguousarray(w0[1:2] ^ 1)
    assert lib.et_train_write_rows(cb.ctx, 0, 1, 1, buf(ffi, row)) == ET_OK and commits() == 0
    assert lib.et_train_write_rows(cb.ctx, 0, 1, 1, buf(ffi, row ^ 2)) == ET_OK  # row 1 again: a new commit
    assert commits() == 1
    fc = len(model.layers) - 2
    m = model.layers[fc].weights.shape[1]
    assert lib.et_train_write_rows(cb.ctx, fc, 0, 1, buf(ffi, np.zeros((1, m), np.int8))) == ET_OK  # another layer
    assert commits() == 2
    cb.checkpoint()  # ends the open commit first
    assert commits() == 3
    assert np.array_equal(cb.image()[cb.offsets[0].weight:cb.offsets[0].weight + 27].view(np.int8).reshape(3, 9)[1], (row ^ 2)[0])


def test_write_path_respects_the_program_unit(core, twin):
    """A HAL with 4-byte program units: every program call is aligned whole units, result unchanged."""
    from edgetrain.core import ffi, lib

    model = preset("mlp", 4)
    cfg = TrainConfig()
    cm = CModel(model, program_unit=4)
    inner = cm.nvm.program
    seen = []

    @ffi.callback("et_status_t(et_nvm_t *, uint32_t, const uint8_t *, uint32_t)")
    def program(nvm, offset, data, length):
        seen.append((offset, length))
        return inner(nvm, offset, data, length)

    cm.nvm.program = program
    total = c_plan(model, cfg)["total"]
    arena = ffi.new("uint64_t[]", total // 8)
    ctx, required = ffi.new("et_train_t **"), ffi.new("uint32_t *")
    assert lib.et_train_init(ctx, arena, total, cm.c, cm.nvm, c_config(ffi, cfg), required) == ET_OK
    counts = np.zeros(cm.size, np.uint32)
    lib.et_train_set_cell_counter(ctx[0], ffi.from_buffer("uint32_t[]", counts), cm.size)
    nb = NumpyBackend(model, cfg)
    res = ffi.new("et_train_result_t *")
    for k, x in enumerate(inputs(model, 5, 1, "digits")):
        assert lib.et_train_step(ctx[0], ffi.from_buffer("uint8_t[]", x), x.size, k % 10, res) == ET_OK
        nb.step(x, k % 10)
    lib.et_train_checkpoint(ctx[0])
    nb.checkpoint()
    assert seen and all(o % 4 == 0 and n % 4 == 0 for o, n in seen)
    commit = ffi.new("const et_commit_t **")
    assert lib.et_train_commit(ctx[0], commit) == ET_OK
    twin_image = nb.image()
    ptr = ffi.new("const int8_t **")
    for tensor, off, size in tensor_spans(model, cm.offsets):  # the same layout as the twin's (align 4)
        assert lib.et_commit_active_tensor(commit[0], tensor, ptr) == ET_OK
        twin.equal(bytes(ffi.buffer(ptr[0], size)), twin_image[off:off + size].tobytes(), f"tensor {tensor:#x}")
    twin.equal(counts.tolist(), nb.cell_writes.tolist())


def test_hal_failure_is_reported(core):
    from edgetrain.core import ffi

    cb = CBackend(preset("mlp", 0), TrainConfig())

    @ffi.callback("et_status_t(et_nvm_t *, uint32_t, const uint8_t *, uint32_t)")
    def broken(nvm, offset, data, length):
        return ET_ERR_IO

    cb.cm.nvm.program = broken
    before = cb.image().tobytes()
    with pytest.raises(NvmIOError, match="ET_ERR_IO"):
        for x in inputs(cb.model, 5, 0, "digits"):
            cb.step(x, 3)
    assert cb.image().tobytes() == before


def test_checkpoint_then_reload_warm_predicts_the_same(core, twin):
    """A checkpoint holds bias-corrected statistics: a warm context over it predicts exactly as the old one."""
    model = tiny_dense_bn(5)
    cb = CBackend(model, TrainConfig())
    xs = inputs(model, 20, 4)
    for k, x in enumerate(xs[:15]):
        cb.step(x, k % 4)
    cb.checkpoint()
    image = cb.image().tobytes()
    warm_c = CBackend(model, TrainConfig(bn_warm=True), image=image)
    warm_t = NumpyBackend(model, TrainConfig(bn_warm=True), image=image)
    for x in xs[15:]:
        p = cb.predict(x)
        old = c_outputs(cb)
        twin.equal(warm_c.predict(x), p)
        twin.equal(c_outputs(warm_c), old, "outputs after reload")
        twin.equal(warm_t.predict(x), p)
    # A fresh (not warm) context ignores the stored statistics: its first prediction differs in the BN outputs.
    cold = CBackend(model, TrainConfig(), image=image)
    cold.predict(xs[15])
    cb.predict(xs[15])
    assert c_outputs(cold)[1] != c_outputs(cb)[1]


# ---- the stochastic rounding of SGD weight updates ---------------------------------------


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.9])
def test_sgd_update_rounds_stochastically_and_without_bias(fraction):
    """A gradient that scales to `fraction` of a weight LSB moves each cell by one LSB with
    that probability: the mean update is the unrounded one (round-to-nearest gives 0 or 1
    for every cell). A zero gradient moves nothing and draws nothing."""
    from types import SimpleNamespace

    from edgetrain.reference import fixed, maxnorm

    cells = 4000
    state = SimpleNamespace(config=TrainConfig(lr_weight=1 << 20, lr_weight_exp=-20), prng=fixed.Prng(11))  # lr = 1
    div = maxnorm.ufloat_make(1, 0)
    # g * 2^exp = fraction * 2^-7: the update in weight LSBs is `fraction` (to 2^-20)
    g = np.full((2, cells), round(fraction * 2**20), np.int64)
    g[1] = 0
    w = np.zeros((2, cells), np.int8)
    before = state.prng.state
    new = ref_train._new_weights(state, w, g, -27, div)
    assert set(np.unique(new[0])) <= {-1, 0}
    assert (new[1] == 0).all()
    moved = float(np.mean(new[0] == -1))
    assert abs(moved - fraction) < 4 * np.sqrt(fraction * (1 - fraction) / cells)  # 4 sigma
    draws = fixed.Prng(11)
    for _ in range(cells):
        draws.next_u32()
    assert state.prng.state == draws.state != before  # one draw per non-zero gradient cell
