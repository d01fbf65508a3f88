"""Twin of csrc/src/plan.c: the arena plan, part by part.

Every buffer takes a multiple of 8 bytes. The context part is the size of C
structs (the context, its layer records and the commit handle), which
depends on the ABI (pointer width): it is a parameter here
(``context_bytes``), taken from the C plan when one is at hand. The C
``et_plan`` stays the one source of truth the rest of the package asks.
"""
from __future__ import annotations

from ..config import OPT_LGA, OPT_LRT, OPT_NONE, OPT_SGD, TrainConfig
from ..model.description import Model
from ..model.kinds import has_weights, per_pixel_terms, spec, weight_cols
from ..model.validate import check_model
from . import fixed, lga, lrt

PARTS = ("context", "activations", "gradients", "optimizer", "prng", "lrt_state", "lrt_scratch", "commit", "lga_state",
         "lga_scratch")
MAXNORM_BYTES = 16  # et_maxnorm_t: count, beta_pow, et_ufloat_t (mant, exp)
PRNG_BYTES = 4  # et_prng_t
LRT_NORMS_BYTES = 2 * MAXNORM_BYTES  # et_lrt_norms_t
LRT_FLUSH_BYTES = 92  # et_lrt_flush_t: g[8], shift, nonzero, apply (+3), eta, div_l, div_r, stamp[6]


def _a8(n: int) -> int:
    return (n + 7) & ~7


def _elems(s) -> int:
    return s.h * s.w * s.c


def _act_bytes(s) -> int:
    return _elems(s) * (2 if s.fmt == fixed.FMT_BIAS else 1)


def _saved(layer) -> int:
    total = 0
    if spec(layer.kind).saves_output:
        total += _a8(_act_bytes(layer.out_shape))
    if spec(layer.kind).bn:  # the statistics' SRAM copies
        total += 2 * _a8(4 * layer.in_shape.c)
    return total


def _scratch_sizes(layer, config: TrainConfig) -> tuple[int, int, int, int, int]:
    """(delta elements, wide BN-gradient elements, conv dW values, columns, parameter channels)."""
    if config.optimizer == OPT_NONE:
        return 0, 0, 0, 0, 0
    grad = max(_elems(layer.in_shape), _elems(layer.out_shape))
    dw = m = 0
    if has_weights(layer):
        m = weight_cols(layer)
        if per_pixel_terms(layer) and config.optimizer == OPT_SGD and not config.conv_per_pixel:
            dw = layer.out_shape.c * m
    c = layer.out_shape.c if has_weights(layer) else (layer.in_shape.c if spec(layer.kind).bn else 0)
    g16 = _elems(layer.out_shape) if spec(layer.kind).bn else 0
    return grad, g16, dw, m, c


def _scratch_bytes(grad: int, g16: int, dw: int, m: int, c: int, config: TrainConfig) -> int:
    row = m if config.optimizer in (OPT_SGD, OPT_LRT, OPT_LGA) else 0
    return 2 * _a8(grad) + _a8(2 * g16) + _a8(4 * dw) + _a8(2 * m) + _a8(row) + _a8(16 * c)


def layer_get_buffer_size(layer, config: TrainConfig) -> tuple[int, int]:
    """(saved, scratch) bytes of one layer (et_layer_get_buffer_size)."""
    return _saved(layer), _scratch_bytes(*_scratch_sizes(layer, config), config)


def lrt_layer(model: Model, config: TrainConfig, i: int) -> dict[str, int]:
    """One weight layer's LRT figures (et_plan_lrt_layer): n, m, rank, kind, state/norms/scratch bytes."""
    layer = model.layers[i]
    cfg = config.lrt_layer_config(i)
    n, m = layer.out_shape.c, weight_cols(layer)
    return {"n": n, "m": m, "rank": cfg.rank, "kind": lrt.KIND_CONV if per_pixel_terms(layer) else lrt.KIND_DENSE,
            "state_bytes": lrt.state_get_size(n, m, cfg.rank), "norms_bytes": LRT_NORMS_BYTES,
            "scratch_bytes": lrt_scratch_bytes(n, m, cfg.rank, lrt_term_batch(layer, cfg))}


def lrt_term_batch(layer, cfg) -> int:
    """Terms per accumulate_batch call of a weight layer in training (et_train_lrt_term_batch): a conv
    layer's conv_term_batch when above 1, else 1 (one accumulate call per term)."""
    return cfg.conv_term_batch if per_pixel_terms(layer) and cfg.conv_term_batch > 1 else 1


def lrt_batch_input_bytes(n: int, m: int, k: int) -> int:
    """Bytes of a layer's buffered terms at the start of its scratch (et_train_lrt_batch_input_bytes): k deltas
    and k x rows, padded to 4, then 2 k int32 exponents; 0 for k = 1."""
    return ((k * (n + m) + 3) & ~3) + 8 * k if k > 1 else 0


def lrt_scratch_bytes(n: int, m: int, rank: int, k: int) -> int:
    """A layer's need of the shared accumulate scratch: per term, or the buffered terms plus the batch's."""
    if k == 1:
        return lrt.accumulate_get_buffer_size(n, m, rank)
    return lrt_batch_input_bytes(n, m, k) + lrt.accumulate_batch_get_buffer_size(n, m, rank, k)


def lga_layer(model: Model, config: TrainConfig, i: int) -> dict[str, int]:
    """One weight layer's LGA figures (et_plan_lga_layer): n, m, rank, optimizer, state/scratch/z bytes."""
    layer = model.layers[i]
    cfg = config.lga_layer_config(i)
    n, m = layer.out_shape.c, weight_cols(layer)
    return {"n": n, "m": m, "rank": cfg.rank, "optimizer": cfg.optimizer,
            "state_bytes": lga.state_get_size(n, m, cfg.rank, cfg.optimizer),
            "scratch_bytes": lga.grad_get_buffer_size(n, m, cfg.rank), "z_bytes": 2 * _elems(layer.out_shape)}


def plan(model: Model, config: TrainConfig, context_bytes: int) -> dict[str, int]:
    """Bytes per part and "total", as et_plan (context part given)."""
    check_model(model)
    config.check()
    trains = config.optimizer != OPT_NONE
    parts = dict.fromkeys(PARTS, 0)
    parts["context"] = context_bytes
    parts["activations"] = sum(_saved(layer) for layer in model.layers)
    sizes = [_scratch_sizes(layer, config) for layer in model.layers]
    parts["gradients"] = _scratch_bytes(*(max(s[k] for s in sizes) for k in range(5)), config)
    opt = 0
    for layer in model.layers:
        if has_weights(layer):
            opt += _a8(2 * layer.out_shape.c)
            opt += _a8(MAXNORM_BYTES) * ((config.optimizer == OPT_SGD) + trains)
            opt += _a8(LRT_NORMS_BYTES) if config.optimizer == OPT_LRT else 0
        elif spec(layer.kind).bn:
            opt += _a8(8 * layer.in_shape.c) + 2 * trains * _a8(MAXNORM_BYTES)
    parts["optimizer"] = opt
    parts["prng"] = _a8(PRNG_BYTES)
    if config.optimizer == OPT_LRT:
        figures = [lrt_layer(model, config, i) for i, layer in enumerate(model.layers) if has_weights(layer)]
        parts["lrt_state"] = sum(_a8(f["state_bytes"]) for f in figures)
        parts["lrt_scratch"] = _a8(LRT_FLUSH_BYTES) + _a8(max(f["scratch_bytes"] for f in figures))
    if config.optimizer == OPT_LGA:
        figures = [lga_layer(model, config, i) for i, layer in enumerate(model.layers) if has_weights(layer)]
        parts["lga_state"] = sum(_a8(f["state_bytes"]) for f in figures)
        parts["lga_scratch"] = (_a8(max(f["scratch_bytes"] for f in figures))
                                + _a8(max(f["z_bytes"] for f in figures)))
    parts["commit"] = _a8(config.commit_stage_bytes)
    parts["total"] = sum(parts[p] for p in PARTS)
    return parts
