"""NumPy twin of csrc/src/train.c: the training step (docs/training.md).

``et_train_<op>`` is ``<op>`` here: ``init``, ``predict``, ``step``,
``checkpoint``, ``write_rows``. The state holds the NVM region as a NumPy
uint8 array; each weight layer reads its weights through a live view of that
array (the twin of the C per-layer read pointer), and every change of the
image goes through ``write_rows`` / ``_program_changed``, which change only
the bytes that differ and count them per cell.

The order of every optimizer step (which tracker is fed when, which tensor
is skipped) follows the C exactly; the arithmetic is whole-tensor NumPy.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from .. import config as config_module
from ..config import LRT_STATS, OPT_LGA, OPT_LRT, OPT_NONE, OPT_SGD, TrainConfig
from ..errors import ArgumentError, UnsupportedError
from ..model.description import Activation, LayerKind, Model
from ..model.image import TensorOffsets
from ..model.kinds import has_weights, per_pixel_terms, spec, weight_cols
from ..model.validate import check_model
from . import fixed, layers, lga, lrt, maxnorm, plan

U32_MAX = 0xFFFFFFFF


@dataclass
class GradPair:
    """One rank-1 term of a weight layer's gradient (et_grad_pair_t)."""

    delta: np.ndarray  # int8 [n]
    x: np.ndarray  # int16 [m]
    index: int
    delta_exp: int
    x_exp: int


@dataclass
class LayerState:
    weights: np.ndarray | None = None  # live int8 [n, m] view into the NVM array
    bias: np.ndarray | None = None  # int16 [n] SRAM copy
    bn: np.ndarray | None = None  # int16 [4, c] SRAM copy
    bn_decay_q30: int = 0
    mean_hat: np.ndarray | None = None
    inv_sigma: np.ndarray | None = None
    out: np.ndarray | None = None  # output of the last forward pass
    inp: np.ndarray | None = None  # input of the last forward pass
    mn_weight: maxnorm.MaxNorm | None = None
    mn_bias: maxnorm.MaxNorm | None = None
    lrt: lrt.State | None = None  # OPT_LRT: the layer's accumulator
    lrt_norms: lrt.Norms | None = None  # its max-norm trackers
    lrt_samples: int = 0  # samples since the last flush attempt
    lrt_done: dict = field(default_factory=lambda: dict.fromkeys(LRT_STATS, 0))  # counters up to the last reset
    lga: lga.State | None = None  # OPT_LGA: the layer's factors and optimizer states
    clips: dict = field(default_factory=lambda: dict.fromkeys(layers.CLIP_FIELDS, 0))  # et_clip_counts_t


@dataclass
class TrainState:
    model: Model
    offsets: list[TensorOffsets]
    nvm: np.ndarray  # uint8, the whole NVM region (writable)
    image_at: int
    image_size: int
    config: TrainConfig
    layers: list[LayerState]
    prng: fixed.Prng
    samples: int = 0
    cell_counts: np.ndarray | None = None  # uint32 per image byte
    hook: Callable[[int, GradPair], None] | None = None
    logits: np.ndarray | None = field(default=None, repr=False)

    @property
    def image(self) -> np.ndarray:
        return self.nvm[self.image_at : self.image_at + self.image_size]


def _s16(image: np.ndarray, offset: int, count: int) -> np.ndarray:
    return image[offset : offset + 2 * count].view("<i2").astype(np.int16)


def init(model: Model, nvm: np.ndarray, image_at: int, offsets: list[TensorOffsets], config: TrainConfig) -> TrainState:
    """Set up a training state over the image lying at ``image_at`` in ``nvm``."""
    config.check()
    check_model(model)
    if nvm.dtype != np.uint8 or nvm.ndim != 1:
        raise ArgumentError("nvm must be a 1-D uint8 array (the NVM region)")
    image_size = len(nvm) - image_at
    state = TrainState(model, offsets, nvm, image_at, image_size, config, [], fixed.Prng(config.seed))
    image = state.image
    trains = config.optimizer != OPT_NONE
    for layer, off in zip(model.layers, offsets):
        ls = LayerState()
        if has_weights(layer):
            n, m = layer.out_shape.c, weight_cols(layer)
            ls.weights = image[off.weight : off.weight + n * m].view(np.int8).reshape(n, m)
            ls.bias = _s16(image, off.bias, n)
            ls.mn_weight = maxnorm.maxnorm_init() if config.optimizer == OPT_SGD else None
            ls.mn_bias = maxnorm.maxnorm_init() if trains else None
            if config.optimizer == OPT_LRT:
                kind = lrt.KIND_CONV if per_pixel_terms(layer) else lrt.KIND_DENSE
                ls.lrt = lrt.state_init(n, m, config.lrt_layer_config(len(state.layers)), kind)
                ls.lrt_norms = lrt.norms_init()
        elif layer.kind == LayerKind.BATCHNORM:
            c = layer.in_shape.c
            ls.bn = _s16(image, off.bn, 4 * c).reshape(4, c)
            if not config.bn_warm:
                ls.bn[2:] = 0
            ls.bn_decay_q30 = 0 if config.bn_warm else layers.BN_ONE_Q30
            ls.mn_weight = maxnorm.maxnorm_init() if trains else None
            ls.mn_bias = maxnorm.maxnorm_init() if trains else None
        state.layers.append(ls)
    if config.optimizer == OPT_LGA:  # B is drawn from the seeded PRNG, layer by layer
        for i, (layer, ls) in enumerate(zip(model.layers, state.layers)):
            if has_weights(layer):
                ls.lga = lga.state_init(layer.out_shape.c, weight_cols(layer), config.lga_layer_config(i), state.prng)
    return state


# ---- the write path ------------------------------------------------------------------


def _program_changed(state: TrainState, image_off: int, data: np.ndarray) -> None:
    """Make image bytes [image_off, image_off + len) equal data, changing (and counting) only bytes that differ."""
    image = state.image
    data = np.asarray(data).view(np.uint8).reshape(-1)
    cur = image[image_off : image_off + data.size]
    changed = np.flatnonzero(cur != data)
    if changed.size:
        if state.cell_counts is not None:
            state.cell_counts[image_off + changed] += 1
        cur[changed] = data[changed]


def write_rows(state: TrainState, layer: int, row0: int, rows) -> None:
    """The one path for weight changes (et_train_write_rows): rows row0.. of layer's [n, m] matrix."""
    if not 0 <= layer < len(state.model.layers) or state.layers[layer].weights is None:
        raise ArgumentError(f"layer {layer} has no weights")
    w = state.layers[layer].weights
    r = np.asarray(rows, dtype=np.int8).reshape(-1, w.shape[1])
    if not 0 <= row0 <= w.shape[0] - r.shape[0]:
        raise ArgumentError(f"rows {row0}..{row0 + r.shape[0] - 1} are outside 0..{w.shape[0] - 1}")
    _program_changed(state, state.offsets[layer].weight + row0 * w.shape[1], r)


def checkpoint(state: TrainState) -> None:
    """Write the SRAM biases and BN tensors (statistics bias-corrected) back to the image."""
    if state.config.optimizer == OPT_NONE:
        return
    for layer, off, ls in zip(state.model.layers, state.offsets, state.layers):
        if has_weights(layer):
            _program_changed(state, off.bias, ls.bias.astype("<i2"))
        elif layer.kind == LayerKind.BATCHNORM:
            c = layer.in_shape.c
            _program_changed(state, off.bn, ls.bn[:2].astype("<i2"))
            stats = layers.batchnorm_corrected_stats(layer, ls.bn, ls.bn_decay_q30)
            _program_changed(state, off.bn + 4 * c, stats.astype("<i2"))


# ---- forward ----------------------------------------------------------------------------


def _check_input(state: TrainState, x) -> np.ndarray:
    shape = state.model.input_shape
    arr = np.asarray(x)
    if arr.dtype != np.uint8 or arr.size != shape.size:
        raise ArgumentError(f"input: expected {shape.size} uint8 values ({shape.h}x{shape.w}x{shape.c}), got {arr.size} of {arr.dtype}")
    return arr.reshape(shape.h, shape.w, shape.c)


def _rows(layer, x: np.ndarray) -> np.ndarray:
    """The layer's input rows as stored integers: im2col rows (conv) or the one input row (dense)."""
    return layers.im2col(layer, x) if layer.kind == LayerKind.CONV2D else x.reshape(1, -1).astype(np.int64)


def _lga_forward(layer, ls: LayerState, x: np.ndarray, clips: dict | None) -> np.ndarray:
    """OPT_LGA: z = W x + bias without the activation, z += A (B x) per output pixel, then the activation."""
    zl = replace(layer, activation=Activation.NONE, out_shape=replace(layer.out_shape, fmt=fixed.FMT_BIAS))
    fwd = layers.conv2d_forward if layer.kind == LayerKind.CONV2D else layers.dense_forward
    z = fwd(zl, ls.weights, ls.bias, x, clips)
    u = lga.project(ls.lga, _rows(layer, x), fixed.FORMATS[layer.in_shape.fmt].lsb_exp)
    z = lga.correct(ls.lga, u, z.reshape(u.shape[0], -1), clips).reshape(z.shape)
    return layers.relu_forward(z, clips) if layer.activation == Activation.RELU else z


def _forward(state: TrainState, x: np.ndarray, train: bool) -> int:
    cur = x
    pred = 0
    for layer, ls in zip(state.model.layers, state.layers):
        ls.inp = cur
        kind = layer.kind
        clips = ls.clips if train else None  # a prediction counts nothing
        if ls.lga is not None:
            out = _lga_forward(layer, ls, cur, clips)
        elif kind == LayerKind.CONV2D:
            out = layers.conv2d_forward(layer, ls.weights, ls.bias, cur, clips)
        elif kind == LayerKind.DENSE:
            out = layers.dense_forward(layer, ls.weights, ls.bias, cur, clips)
        elif kind == LayerKind.MAXPOOL2:
            out = layers.maxpool2_forward(layer, cur)
        elif kind == LayerKind.BATCHNORM:
            if train:
                ls.bn, ls.bn_decay_q30 = layers.batchnorm_update_stats(layer, cur, ls.bn, ls.bn_decay_q30, clips)
            ls.mean_hat, ls.inv_sigma = layers.batchnorm_prepare(layer, ls.bn, ls.bn_decay_q30)
            out = layers.batchnorm_forward(layer, cur, ls.bn, ls.mean_hat, ls.inv_sigma, clips)
        elif kind == LayerKind.FLATTEN:
            out = cur.reshape(1, 1, -1)
        elif kind == LayerKind.SOFTMAX_CE:
            state.logits = cur.reshape(-1)
            pred = layers.softmax_ce_forward(layer, cur)
            out = None
        else:
            raise UnsupportedError(f"the twin has no forward pass for a {spec(kind).name} layer (docs/layers.md)")
        ls.out = out
        cur = out
    return pred


def predict(state: TrainState, x) -> int:
    """Forward with the current parameters and statistics; nothing is updated."""
    return _forward(state, _check_input(state, x), train=False)


# ---- optimizer --------------------------------------------------------------------------


def _update_params(state: TrainState, mn: maxnorm.MaxNorm, g: np.ndarray, g_exp: int, params: np.ndarray,
                   clips: dict | None = None) -> None:
    """Per-sample max-norm update of a bias / gamma / beta tensor (in place); zero gradient: no step.
    Values clamped to int16 are counted as clips["param"]."""
    g = np.asarray(g, dtype=np.int64)
    gmax = int(np.abs(g).max()) if g.size else 0
    if gmax == 0:
        return
    s = max(0, gmax.bit_length() - 30)
    if s:
        g = fixed.round_shift_s64(g, s)
        gmax = fixed.round_shift_s64(gmax, s)
    div = maxnorm.maxnorm_update(mn, gmax, g_exp + s)
    cfg = state.config
    d = maxnorm.maxnorm_scale(g, g_exp + s, cfg.lr_bias, cfg.lr_bias_exp, div, fixed.FMT_BIAS)
    new = params.astype(np.int64) - d
    layers.count_clips(clips, "param", (new < -(1 << 15)) | (new > (1 << 15) - 1))
    params[...] = np.clip(new, -(1 << 15), (1 << 15) - 1).astype(np.int16)


SGD_DITHER_BITS = 16  # ET_SGD_DITHER_BITS: fractional bits of the update before its stochastic rounding


def _new_weights(state: TrainState, w: np.ndarray, g: np.ndarray, exp: int, div: maxnorm.UFloat,
                 clips: dict | None = None) -> np.ndarray:
    """SGD: W - dW, dW rounded to the weight grid stochastically (train.c, et_sgd_cell).

    The update is scaled with SGD_DITHER_BITS more fractional bits than the weight
    LSB, then floored after adding the top SGD_DITHER_BITS bits of one PRNG draw
    per cell whose gradient is not zero, drawn in row-major order.
    """
    cfg = state.config
    fine_exp = exp - fixed.FORMATS[fixed.FMT_WEIGHT].lsb_exp + SGD_DITHER_BITS  # into FMT_ACC32 (LSB 2^0)
    flat = g.reshape(-1)
    nz = np.flatnonzero(flat)
    d = np.zeros(flat.size, np.int64)
    if nz.size:
        v = maxnorm.maxnorm_scale(flat[nz], fine_exp, cfg.lr_weight, cfg.lr_weight_exp, div, fixed.FMT_ACC32)
        u = np.array([state.prng.next_u32() >> (32 - SGD_DITHER_BITS) for _ in range(nz.size)], np.int64)
        d[nz] = (np.asarray(v, np.int64) + u) >> SGD_DITHER_BITS
    new = w.astype(np.int64) - d.reshape(w.shape)
    layers.count_clips(clips, "weight", (new < -128) | (new > 127))
    return np.clip(new, -128, 127).astype(np.int8)


def pairs(state: TrainState, i: int, x: np.ndarray, dz: np.ndarray, skip_zero: bool = False):
    """The rank-1 terms of weight layer i's gradient (et_train pair stream)."""
    layer = state.model.layers[i]
    n = layer.out_shape.c
    d = dz.reshape(-1, n)
    delta_exp = -7 - layer.alpha_shift
    x_exp = fixed.FORMATS[layer.in_shape.fmt].lsb_exp
    rows = layers.im2col(layer, x) if layer.kind == LayerKind.CONV2D else x.reshape(1, -1)
    for t in range(d.shape[0]):
        if skip_zero and not d[t].any():
            continue
        yield GradPair(d[t], rows[t].astype(np.int16), t, delta_exp, x_exp)


def _sgd_pair(state: TrainState, i: int, pair: GradPair) -> None:
    """SGD on one rank-1 term: max|dW| = max|delta| * max|x|."""
    ls = state.layers[i]
    dmax = int(np.abs(pair.delta.astype(np.int64)).max())
    xmax = int(np.abs(pair.x.astype(np.int64)).max())
    if dmax == 0 or xmax == 0:
        return
    exp = pair.delta_exp + pair.x_exp
    div = maxnorm.maxnorm_update(ls.mn_weight, dmax * xmax, exp)
    g = np.outer(pair.delta.astype(np.int64), pair.x.astype(np.int64))
    write_rows(state, i, 0, _new_weights(state, ls.weights, g, exp, div, ls.clips))


def _lrt_update(state: TrainState, i: int, x: np.ndarray, dz: np.ndarray) -> None:
    """LRT on weight layer i: accumulate the sample's non-zero terms; every B samples a flush attempt."""
    layer, ls = state.model.layers[i], state.layers[i]
    cfg = state.config.lrt_layer_config(i)
    signed = layer.in_shape.fmt == fixed.FMT_BN_OUT
    k = plan.lrt_term_batch(layer, cfg)
    if k == 1:
        accumulate = lrt.accumulate_s8 if signed else lrt.accumulate_u8
        for pair in pairs(state, i, x, dz, skip_zero=True):
            xv = pair.x.astype(np.int8 if signed else np.uint8)
            accumulate(ls.lrt, cfg, pair.delta, pair.delta_exp, xv, pair.x_exp, state.prng)
    else:  # a conv layer's terms k at a time, the last batch shorter (et_lrt_batch_drain)
        batch = lrt.accumulate_batch_s8 if signed else lrt.accumulate_batch_u8
        terms = list(pairs(state, i, x, dz, skip_zero=True))
        for b in range(0, len(terms), k):
            part = terms[b:b + k]
            batch(ls.lrt, cfg, np.stack([p.delta for p in part]), [p.delta_exp for p in part],
                  np.stack([p.x.astype(np.int8 if signed else np.uint8) for p in part]), [p.x_exp for p in part],
                  state.prng)
    ls.lrt_samples += 1
    if ls.lrt_samples < (cfg.batch_conv if per_pixel_terms(layer) else cfg.batch_dense):
        return
    ls.lrt_samples = 0
    fl = lrt.flush_begin(ls.lrt, cfg, ls.lrt_norms)
    done = ls.lrt_done
    done["flushes"] = min(done["flushes"] + 1, U32_MAX)
    if not fl.apply:
        return
    new = ls.weights.astype(np.int64) - lrt.delta_matrix(ls.lrt, fl)
    layers.count_clips(ls.clips, "weight", (new < -128) | (new > 127))
    write_rows(state, i, 0, np.clip(new, -128, 127).astype(np.int8))
    done["applied"] = min(done["applied"] + 1, U32_MAX)
    done["terms"] = min(done["terms"] + ls.lrt.terms, U32_MAX)
    done["skipped"] = min(done["skipped"] + ls.lrt.skipped, U32_MAX)
    lrt.reset(ls.lrt)


def _lga_update(state: TrainState, i: int, x: np.ndarray, dz: np.ndarray) -> None:
    """OPT_LGA on weight layer i: one factor step from the sample's terms; every K samples merge and restart."""
    layer, ls = state.model.layers[i], state.layers[i]
    cfg = state.config.lga_layer_config(i)
    x_exp = fixed.FORMATS[layer.in_shape.fmt].lsb_exp
    d = dz.reshape(-1, layer.out_shape.c)
    keep = d.any(axis=1)  # terms whose delta is all zero add nothing (the C skips them)
    lga.grad_zero(ls.lga)
    lga.grad_add(ls.lga, d[keep], _rows(layer, x)[keep], x_exp)
    lga.step(ls.lga, cfg, x_exp)
    ls.lga.samples += 1
    if ls.lga.samples < cfg.merge_every:
        return
    write_rows(state, i, 0, lga.merge(ls.lga, layer.alpha_shift, ls.weights, ls.clips))
    lga.restart(ls.lga, cfg, state.prng)


def lga_state(state: TrainState, layer: int) -> lga.State:
    """et_train_lga: weight layer ``layer``'s factor state."""
    if not 0 <= layer < len(state.layers) or state.layers[layer].lga is None:
        raise ArgumentError(f"layer {layer} has no low-rank factors (optimizer lga, conv or dense layers only)")
    return state.layers[layer].lga


def clip_counts(state: TrainState, layer: int) -> dict:
    """et_train_get_clip_counts: layer ``layer``'s saturation counters (layers.CLIP_FIELDS) since init or reset."""
    if not 0 <= layer < len(state.layers):
        raise ArgumentError(f"layer {layer} is outside 0..{len(state.layers) - 1}")
    return dict(state.layers[layer].clips)


def reset_clip_counts(state: TrainState) -> None:
    """et_train_reset_clip_counts: every layer's saturation counters to zero."""
    for ls in state.layers:
        ls.clips = dict.fromkeys(layers.CLIP_FIELDS, 0)


def lrt_stats(state: TrainState, layer: int) -> dict:
    """et_train_lrt's counters of weight layer ``layer`` since init."""
    ls = state.layers[layer]
    if ls.lrt is None:
        raise ArgumentError(f"layer {layer} has no low-rank accumulator (optimizer lrt, conv or dense layers only)")
    out = dict(ls.lrt_done)
    out["terms"] = min(out["terms"] + ls.lrt.terms, U32_MAX)
    out["skipped"] = min(out["skipped"] + ls.lrt.skipped, U32_MAX)
    return out


def _update_weight_layer(state: TrainState, i: int, x: np.ndarray, dz: np.ndarray) -> None:
    layer = state.model.layers[i]
    ls = state.layers[i]
    if state.hook is not None:
        for pair in pairs(state, i, x, dz):
            state.hook(i, pair)
    db = layers.conv2d_bias_grad(layer, dz) if layer.kind == LayerKind.CONV2D else dz.reshape(-1)
    _update_params(state, ls.mn_bias, db, -7, ls.bias, ls.clips)
    if state.config.optimizer == OPT_LRT:
        _lrt_update(state, i, x, dz)
        return
    if state.config.optimizer == OPT_LGA:
        _lga_update(state, i, x, dz)
        return
    if state.config.optimizer != OPT_SGD:
        return
    if layer.kind == LayerKind.CONV2D and not state.config.conv_per_pixel:
        g = layers.conv2d_weight_grad(layer, x, dz).astype(np.int64)
        gmax = int(np.abs(g).max())
        if gmax == 0:
            return
        exp = -7 - layer.alpha_shift + fixed.FORMATS[layer.in_shape.fmt].lsb_exp
        div = maxnorm.maxnorm_update(ls.mn_weight, gmax, exp)
        write_rows(state, i, 0, _new_weights(state, ls.weights, g, exp, div, ls.clips))
        return
    for pair in pairs(state, i, x, dz, skip_zero=True):
        _sgd_pair(state, i, pair)


def _feeds_bn(model: Model, i: int) -> bool:
    """Whether layer i's input gradient is the gradient at a BN output (flatten in between)."""
    below = [l for l in model.layers[:i] if l.kind != LayerKind.FLATTEN]
    return bool(below) and below[-1].kind == LayerKind.BATCHNORM


def _backward(state: TrainState, label: int) -> None:
    model = state.model
    head = len(model.layers) - 1
    lowest = next(i for i, l in enumerate(model.layers) if has_weights(l) or spec(l.kind).bn)
    g = layers.softmax_ce_backward(model.layers[head], state.layers[head].inp, label, state.layers[head].clips)
    for i in range(head - 1, lowest - 1, -1):
        layer, ls = model.layers[i], state.layers[i]
        need_in = i > lowest
        if has_weights(layer):
            if layer.activation == Activation.RELU:
                g = layers.relu_backward(ls.out, g)
            h = None
            if need_in:
                conv = layer.kind == LayerKind.CONV2D
                if _feeds_bn(model, i):  # the wide gradient (int16, 2^-15) for the BN below
                    backward_input = layers.conv2d_backward_input_s16 if conv else layers.dense_backward_input_s16
                else:
                    backward_input = layers.conv2d_backward_input if conv else layers.dense_backward_input
                h = backward_input(layer, ls.weights, g, ls.clips)
            _update_weight_layer(state, i, ls.inp, g)
            g = h
        elif layer.kind == LayerKind.MAXPOOL2:
            g = layers.maxpool2_backward(layer, ls.inp, g)
        elif layer.kind == LayerKind.BATCHNORM:
            din, dgamma, dbeta = layers.batchnorm_backward(layer, ls.inp, ls.out, ls.bn, ls.mean_hat, ls.inv_sigma, g,
                                                           ls.clips)
            _update_params(state, ls.mn_weight, dgamma, -27, ls.bn[0], ls.clips)
            _update_params(state, ls.mn_bias, dbeta, -15, ls.bn[1], ls.clips)
            g = din
        elif layer.kind == LayerKind.FLATTEN:
            s = layer.in_shape
            g = g.reshape(s.h, s.w, s.c)
        else:
            raise UnsupportedError(f"the twin has no backward pass for a {spec(layer.kind).name} layer (docs/layers.md)")


def step(state: TrainState, x, label: int) -> int:
    """One prequential training step; returns the prediction made before any update."""
    xv = _check_input(state, x)
    n_classes = state.model.n_classes
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
        raise ArgumentError(f"label {label!r} must be an integer class index 0..{n_classes - 1}; round or look it up "
                            "before training (a float label is never truncated)")
    if not 0 <= int(label) < n_classes:
        raise ArgumentError(f"label {label} is outside 0..{n_classes - 1}")
    if state.config.optimizer == OPT_NONE:
        return predict(state, xv)
    pred = _forward(state, xv, train=True)
    _backward(state, int(label))
    state.samples += 1
    return pred


# Config names this module held before they moved to edgetrain.config: still answered, with a warning.
_MOVED = {"OPT_BIAS": "OPT_BIAS", "OPTIMIZERS": "OPTIMIZERS", "LR_DEFAULT": "LR_DEFAULT",
          "LR_EXP_DEFAULT": "LR_EXP_DEFAULT", "MAX_LAYERS": "MAX_LAYERS", "STAGE_DEFAULT": "STAGE_DEFAULT",
          "STAGE_MAX": "STAGE_MAX", "RING_DEFAULT": "RING_DEFAULT", "RING_MIN": "RING_MIN",
          "RING_MAX": "RING_MAX"}


__getattr__ = config_module.moved_names(__name__, _MOVED)
