"""The training configuration: Python mirrors of the C config structs and their checks.

``TrainConfig`` mirrors et_train_config_t (et_train.h), ``LrtConfig`` et_lrt_config_t (et_lrt.h) and
``LgaConfig`` et_lga_config_t (et_lga.h): same fields, same meaning, same ranges. Each ``*_check``
raises the ``ArgumentError`` the C would answer with ET_ERR_ARG, naming the field and its range.

This module sits below everything that trains: the session, the command line, the backends, the
NumPy twin (``edgetrain.reference``) and firmware_sim all take their config from here, and it imports
nothing of theirs (tests/test_layering.py checks both).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .errors import ArgumentError
from .model.description import MAX_LAYERS

# ---- LRT: the low-rank gradient accumulator (et_lrt.h) -----------------------------------------

LRT_MAX_RANK = 8  # ET_LRT_MAX_RANK


@dataclass
class LrtConfig:
    """et_lrt_config_t. Defaults are the paper's (lrt-paper-spec §6.5)."""

    rank: int = 4  # r, 1..8
    unbiased: int = 1  # 1: OK truncation; 0: keep the top r (biased)
    maxnorm: int = 1  # 1: max-norm L and R at flush
    gs_passes: int = 2  # Gram-Schmidt passes, 1..2
    batch_conv: int = 10  # B for conv layers, samples, 1..65535
    batch_dense: int = 100  # B for dense layers, samples, 1..65535
    eta0_q24: int = 167772  # eta0 * 2^24, 1..2^24 (0.01)
    rho_min_ppm: int = 10000  # rho_min in parts per million, 0..1000000 (1 %)
    kappa_th: int = 100  # kappa threshold; 0 disables the skip rule; <= 2^31 - 1
    reorth_terms: int = 0  # re-orthonormalise the bases every this many terms; 0 = never; <= 65535
    conv_term_batch: int = 0  # training, conv layers: terms per accumulate_batch call, 0..16; 0 or 1 = per term


LRT_FIELDS = ("rank", "unbiased", "maxnorm", "gs_passes", "batch_conv", "batch_dense", "eta0_q24", "rho_min_ppm",
              "kappa_th", "reorth_terms", "conv_term_batch")


def lrt_config_default() -> LrtConfig:
    return LrtConfig()


def lrt_config_check(cfg: LrtConfig) -> None:
    """Raise ArgumentError naming the first field out of range (et_lrt_config_check)."""
    checks = [
        ("rank", 1, LRT_MAX_RANK, "the rank r of the accumulator"),
        ("unbiased", 0, 1, "0 = biased (top r), 1 = unbiased (OK)"),
        ("maxnorm", 0, 1, "0 = off, 1 = max-norm L and R at flush"),
        ("gs_passes", 1, 2, "Gram-Schmidt passes per term"),
        ("batch_conv", 1, 65535, "samples per flush of a conv layer"),
        ("batch_dense", 1, 65535, "samples per flush of a dense layer"),
        ("eta0_q24", 1, 1 << 24, "eta0 * 2^24, i.e. eta0 in (0, 1]"),
        ("rho_min_ppm", 0, 1000000, "minimum update density in parts per million"),
        ("kappa_th", 0, (1 << 31) - 1, "kappa threshold (0 disables the skip rule)"),
        ("reorth_terms", 0, 65535, "terms between re-orthonormalisations of the bases (0 = never)"),
        ("conv_term_batch", 0, 16, "a conv layer's terms per batched accumulate call (0 or 1 = one call per term)"),
    ]
    for name, lo, hi, what in checks:
        v = getattr(cfg, name)
        if not isinstance(v, (int, np.integer)) or not lo <= int(v) <= hi:
            raise ArgumentError(f"LRT config: {name} = {v!r} is outside {lo}..{hi} ({what})")


# ---- LGA: low-rank gradient approximation (et_lga.h) --------------------------------------------

LGA_SGD, LGA_MOMENTUM, LGA_ADAM = 0, 1, 2
LGA_OPTIMIZERS = {"sgd": LGA_SGD, "momentum": LGA_MOMENTUM, "adam": LGA_ADAM}
LGA_RESTART_ZERO_A, LGA_RESTART_REDRAW_B = 0, 1
LGA_RESTARTS = {"zero-a": LGA_RESTART_ZERO_A, "redraw-b": LGA_RESTART_REDRAW_B}
LGA_MAX_RANK = 8  # ET_LGA_MAX_RANK
LGA_BETA_MAX = (1 << 30) - (1 << 20)
LGA_LR_EXP_MIN, LGA_LR_EXP_MAX = -46, -26


@dataclass
class LgaConfig:
    """Mirror of et_lga_config_t (defaults of et_lga_config_default)."""

    optimizer: int = LGA_ADAM
    rank: int = 4
    restart: int = LGA_RESTART_REDRAW_B
    reserved: int = 0
    merge_every: int = 100
    lr: int = 1610613  # 0.003 * 2^29
    lr_exp: int = -29
    beta1_q30: int = 966367642  # 0.9
    beta2_q30: int = 1072668082  # 0.999
    eps: int = 16  # 2^-20 in the gradient LSB 2^-24


LGA_FIELDS = ("optimizer", "rank", "restart", "reserved", "merge_every", "lr", "lr_exp", "beta1_q30", "beta2_q30",
              "eps")


def lga_config_check(c: LgaConfig) -> None:
    """Raise ArgumentError naming the first field out of range (et_lga_config_check)."""
    if c.optimizer not in (LGA_SGD, LGA_MOMENTUM, LGA_ADAM):
        raise ArgumentError(f"lga optimizer {c.optimizer} is unknown: use 0 (sgd), 1 (momentum) or 2 (adam)")
    if not 1 <= c.rank <= LGA_MAX_RANK:
        raise ArgumentError(f"lga rank {c.rank} is outside 1..{LGA_MAX_RANK}")
    if c.restart not in (LGA_RESTART_ZERO_A, LGA_RESTART_REDRAW_B):
        raise ArgumentError(f"lga restart {c.restart} is unknown: use 0 (zero A) or 1 (zero A, redraw B)")
    if c.reserved != 0:
        raise ArgumentError("lga reserved must be 0")
    if not 1 <= c.merge_every <= 65535:
        raise ArgumentError(f"lga merge_every = {c.merge_every} is outside 1..65535 samples")
    if not 1 <= c.lr < 1 << 31:
        raise ArgumentError(f"lga lr = {c.lr} is outside 1..2^31-1 (the mantissa of lr * 2^lr_exp)")
    if not LGA_LR_EXP_MIN <= c.lr_exp <= LGA_LR_EXP_MAX:
        raise ArgumentError(f"lga lr_exp = {c.lr_exp} is outside {LGA_LR_EXP_MIN}..{LGA_LR_EXP_MAX}: "
                            "scale the mantissa instead")
    for name in ("beta1_q30", "beta2_q30"):
        if not 0 <= getattr(c, name) <= LGA_BETA_MAX:
            raise ArgumentError(f"lga {name} = {getattr(c, name)} is outside 0..{LGA_BETA_MAX} (beta at most 0.99902)")
    if not 1 <= c.eps <= 65535:
        raise ArgumentError(f"lga eps = {c.eps} is outside 1..65535 (units of 2^-24)")


def lga_lr_pair(lr: float) -> tuple[int, int]:
    """A learning rate as (mantissa, exponent): mantissa in [2^29, 2^30] where the exponent range allows."""
    if not 2.0 ** LGA_LR_EXP_MIN <= lr < 2.0 ** -4:
        raise ArgumentError(f"lga learning rate {lr} is outside [2^{LGA_LR_EXP_MIN}, 0.0625)")
    e = max(LGA_LR_EXP_MIN, int(np.floor(np.log2(lr))) - 29)
    return int(round(lr * 2.0 ** -e)), e


# ---- the training step (et_train.h) -------------------------------------------------------------

OPT_NONE, OPT_BIAS, OPT_SGD, OPT_LRT, OPT_LGA = 0, 1, 2, 3, 4
OPTIMIZERS = {"none": OPT_NONE, "bias": OPT_BIAS, "sgd": OPT_SGD, "lrt": OPT_LRT, "lga": OPT_LGA}
LR_DEFAULT, LR_EXP_DEFAULT = 167772, -24  # 0.01
STAGE_DEFAULT, STAGE_MAX = 16, 65536  # ET_TRAIN_STAGE_DEFAULT, ET_TRAIN_STAGE_MAX
RING_DEFAULT, RING_MIN, RING_MAX = 8, 2, 1024  # ET_TRAIN_RING_DEFAULT, ET_COMMIT_MIN_RING, ET_COMMIT_MAX_RING
LRT_STATS = ("terms", "skipped", "flushes", "applied")  # et_train_lrt_stats_t
TRUNC_DEFAULT, TRUNC_BIASED, TRUNC_UNBIASED = 0, 1, 2  # ET_LRT_TRUNC_DEFAULT, ET_LRT_TRUNC_BIASED, ET_LRT_TRUNC_UNBIASED
TRUNCATIONS = {"default": TRUNC_DEFAULT, "biased": TRUNC_BIASED, "unbiased": TRUNC_UNBIASED}  # et_lrt_truncation_t


@dataclass
class TrainConfig:
    """Mirror of et_train_config_t (same fields, same meaning)."""

    optimizer: int = OPT_SGD
    conv_per_pixel: bool = False
    bn_warm: bool = False
    lr_weight: int = LR_DEFAULT
    lr_weight_exp: int = LR_EXP_DEFAULT
    lr_bias: int = LR_DEFAULT
    lr_bias_exp: int = LR_EXP_DEFAULT
    seed: int = 0
    lrt: LrtConfig = field(default_factory=LrtConfig)  # OPT_LRT: the accumulator's hyper-parameters
    lrt_rank: tuple = ()  # OPT_LRT: rank per layer index (0 = lrt.rank); up to MAX_LAYERS entries
    commit_stage_bytes: int = STAGE_DEFAULT  # the C commit's staging buffer (plan part "commit"); no effect here
    ring_slots: int = RING_DEFAULT  # commit records per tensor ring (C); no effect here
    lga: LgaConfig = field(default_factory=LgaConfig)  # OPT_LGA: the factors' optimizer and merge (et_lga.h)
    lga_rank: tuple = ()  # OPT_LGA: rank per layer index (0 = lga.rank); up to MAX_LAYERS entries
    lrt_truncation: tuple = ()  # OPT_LRT: truncation per layer index, TRUNC_DEFAULT (lrt.unbiased), TRUNC_BIASED
    # or TRUNC_UNBIASED; up to MAX_LAYERS entries

    def check(self) -> None:
        if self.optimizer not in (OPT_NONE, OPT_BIAS, OPT_SGD, OPT_LRT, OPT_LGA):
            raise ArgumentError(f"optimizer {self.optimizer} is unknown: use 0 (none), 1 (bias), 2 (sgd), 3 (lrt) "
                                "or 4 (lga)")
        for name in ("lr_weight", "lr_bias"):
            if not 0 <= getattr(self, name) < 1 << 31:
                raise ArgumentError(f"{name} = {getattr(self, name)} is outside 0..2^31-1")
        for name in ("lr_weight_exp", "lr_bias_exp"):
            if not -64 <= getattr(self, name) <= 0:
                raise ArgumentError(f"{name} = {getattr(self, name)} is outside -64..0")
        if not 0 <= self.seed < 1 << 32:
            raise ArgumentError(f"seed {self.seed} is outside 0..2^32-1")
        if self.optimizer == OPT_LRT:
            lrt_config_check(self.lrt)
            if len(self.lrt_rank) > MAX_LAYERS:
                raise ArgumentError(f"lrt_rank has {len(self.lrt_rank)} entries; a model has at most {MAX_LAYERS} layers")
            for i, r in enumerate(self.lrt_rank):
                if not 0 <= int(r) <= LRT_MAX_RANK:
                    raise ArgumentError(f"lrt_rank[{i}] = {r} is outside 1..{LRT_MAX_RANK} (0 = the global rank {self.lrt.rank})")
            if len(self.lrt_truncation) > MAX_LAYERS:
                raise ArgumentError(f"lrt_truncation has {len(self.lrt_truncation)} entries; a model has at most "
                                    f"{MAX_LAYERS} layers")
            for i, t in enumerate(self.lrt_truncation):
                if not isinstance(t, (int, np.integer)) or int(t) not in TRUNCATIONS.values():
                    raise ArgumentError(f"lrt_truncation[{i}] = {t!r} is not one of {TRUNC_DEFAULT} (the config's "
                                        f"lrt.unbiased), {TRUNC_BIASED} (biased) or {TRUNC_UNBIASED} (unbiased)")
        if self.optimizer == OPT_LGA:
            lga_config_check(self.lga)
            if len(self.lga_rank) > MAX_LAYERS:
                raise ArgumentError(f"lga_rank has {len(self.lga_rank)} entries; a model has at most {MAX_LAYERS} layers")
            for i, r in enumerate(self.lga_rank):
                if not 0 <= int(r) <= LGA_MAX_RANK:
                    raise ArgumentError(f"lga_rank[{i}] = {r} is outside 1..{LGA_MAX_RANK} (0 = the global rank {self.lga.rank})")
        if not 16 <= self.commit_stage_bytes <= STAGE_MAX:
            raise ArgumentError(f"commit_stage_bytes = {self.commit_stage_bytes} is outside 16..{STAGE_MAX}")
        if not RING_MIN <= self.ring_slots <= RING_MAX:
            raise ArgumentError(f"ring_slots = {self.ring_slots} is outside {RING_MIN}..{RING_MAX}")

    def lrt_layer_config(self, layer: int) -> LrtConfig:
        """The accumulator config of weight layer ``layer``: lrt with the layer's rank and truncation
        (et_train_lrt_layer_config)."""
        r = int(self.lrt_rank[layer]) if layer < len(self.lrt_rank) else 0
        t = int(self.lrt_truncation[layer]) if layer < len(self.lrt_truncation) else TRUNC_DEFAULT
        cfg = replace(self.lrt, rank=r) if r else self.lrt
        return replace(cfg, unbiased=int(t == TRUNC_UNBIASED)) if t != TRUNC_DEFAULT else cfg

    def lga_layer_config(self, layer: int) -> LgaConfig:
        """The factor config of weight layer ``layer``: lga with the layer's rank (et_train_lga_layer_config)."""
        r = int(self.lga_rank[layer]) if layer < len(self.lga_rank) else 0
        return replace(self.lga, rank=r) if r else self.lga


def kind_truncation(model, conv: int, dense: int) -> tuple:
    """A ``TrainConfig.lrt_truncation`` by layer index: ``conv`` for conv layers, ``dense`` for dense ones
    (each a TRUNC_* value), TRUNC_DEFAULT for layers without weights."""
    from .model.kinds import spec
    return tuple(TRUNC_DEFAULT if layer.weights is None else conv if spec(layer.kind).group == "conv" else dense
                 for layer in model.layers)


def moved_names(module: str, moved: dict):
    """A module ``__getattr__`` that still answers the config names ``module`` held before they moved
    here (``moved``: old name -> name in this module), with a DeprecationWarning naming the new place."""
    import sys
    import warnings

    def __getattr__(name: str):
        if name in moved:
            warnings.warn(f"{module}.{name} moved: use edgetrain.config.{moved[name]}", DeprecationWarning,
                          stacklevel=2)
            return getattr(sys.modules[__name__], moved[name])
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__


__all__ = [
    "TrainConfig", "LrtConfig", "LgaConfig", "lrt_config_check", "lrt_config_default", "lga_config_check",
    "lga_lr_pair", "OPT_NONE", "OPT_BIAS", "OPT_SGD", "OPT_LRT", "OPT_LGA", "OPTIMIZERS", "LR_DEFAULT",
    "LR_EXP_DEFAULT", "MAX_LAYERS", "STAGE_DEFAULT", "STAGE_MAX", "RING_DEFAULT", "RING_MIN", "RING_MAX", "LRT_STATS",
    "TRUNC_DEFAULT", "TRUNC_BIASED", "TRUNC_UNBIASED", "TRUNCATIONS", "kind_truncation", "LRT_MAX_RANK", "LRT_FIELDS", "LGA_MAX_RANK", "LGA_SGD", "LGA_MOMENTUM", "LGA_ADAM", "LGA_OPTIMIZERS",
    "LGA_RESTART_ZERO_A", "LGA_RESTART_REDRAW_B", "LGA_RESTARTS", "LGA_BETA_MAX", "LGA_LR_EXP_MIN", "LGA_LR_EXP_MAX",
    "LGA_FIELDS",
]
