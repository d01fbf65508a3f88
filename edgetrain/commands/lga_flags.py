"""The flags of ``--optimizer lga`` (low-rank gradient approximation, docs/lga.md), shared by
``edgetrain run`` and ``edgetrain plan``, and the planner's full-matrix baselines it is compared with.

``--rank`` and ``--layer-ranks`` are the same flags as for ``--optimizer lrt``.
"""
from __future__ import annotations

from dataclasses import replace

from ..config import (
    LGA_BETA_MAX, LGA_MAX_RANK, LGA_OPTIMIZERS, LGA_RESTARTS, OPT_LGA, OPT_SGD, LgaConfig, TrainConfig,
    lga_config_check, lga_lr_pair
)
from ..errors import ArgumentError
from . import argtypes

# Learning rates of the factors when --lga-lr is not given (docs/lga.md, measured on MNIST): Adam 0.003
# (better than the customary 0.001); the max-normed SGD the project's 0.01 (the largest step on a factor
# entry per sample); the max-normed momentum 0.001 (at 0.01 its steps do not cancel as SGD's do and it
# loses 20 points).
LGA_LR_DEFAULT = {"sgd": 0.01, "momentum": 0.001, "adam": 0.003}
# Bytes per weight of full-matrix optimizer states in the formats LGA uses on its factors: an int32 first
# moment (momentum, Adam) and a uint64 second moment (Adam).
FULL_STATE_BYTES = {"momentum": 4, "adam": 12}


def add_lga_arguments(p, with_training: bool = True) -> None:
    g = p.add_argument_group("low-rank gradient approximation (--optimizer lga; --rank / --layer-ranks give the factor ranks)")
    g.add_argument("--lga-optimizer", default="adam", choices=tuple(LGA_OPTIMIZERS),
                   help="the optimizer on the factors A and B (default: adam)")
    if not with_training:
        return
    d = LgaConfig()
    g.add_argument("--merge-every", type=argtypes.int_range(1, 65535), default=d.merge_every, metavar="K",
                   help=f"merge A B into the NVM weights every K samples of a layer, 1..65535 (default: {d.merge_every})")
    g.add_argument("--lga-lr", type=argtypes.fraction, default=None,
                   help="the factors' learning rate (default: 0.003 for adam, 0.01 for the max-normed sgd, 0.001 for momentum)")
    g.add_argument("--lga-restart", default="redraw-b", choices=tuple(LGA_RESTARTS),
                   help="after a merge: zero A and draw B anew (redraw-b, default) or zero A and keep B (zero-a)")
    g.add_argument("--beta1", type=argtypes.fraction, default=0.9, help="first-moment decay of momentum and Adam (default: 0.9)")
    g.add_argument("--beta2", type=argtypes.fraction, default=0.999, help="second-moment decay of Adam (default: 0.999)")


def _q30(value: float, flag: str) -> int:
    q = int(round(value * (1 << 30)))
    if not 0 <= q <= LGA_BETA_MAX:
        raise ArgumentError(f"{flag} {value} is outside [0, 0.99902]")
    return q


def lga_config(args, ranks: tuple = ()) -> tuple[LgaConfig, tuple]:
    """The factor config the flags ask for (ArgumentError naming the flag otherwise) and the per-layer ranks."""
    lr = args.lga_lr if args.lga_lr is not None else LGA_LR_DEFAULT[args.lga_optimizer]
    try:
        mant, exp = lga_lr_pair(lr)
    except ArgumentError as e:
        raise ArgumentError(f"--lga-lr: {e}") from None
    if not 1 <= args.merge_every <= 65535:
        raise ArgumentError(f"--merge-every {args.merge_every} is outside 1..65535 samples")
    if not 1 <= args.rank <= LGA_MAX_RANK:
        raise ArgumentError(f"--rank {args.rank} is outside 1..{LGA_MAX_RANK}")
    cfg = LgaConfig(optimizer=LGA_OPTIMIZERS[args.lga_optimizer], rank=args.rank,
                    restart=LGA_RESTARTS[args.lga_restart], merge_every=args.merge_every, lr=mant, lr_exp=exp,
                    beta1_q30=_q30(args.beta1, "--beta1"), beta2_q30=_q30(args.beta2, "--beta2"))
    lga_config_check(cfg)
    return cfg, ranks


def lga_train_config(rank: int, optimizer: str, ranks: tuple = ()) -> TrainConfig:
    return TrainConfig(optimizer=OPT_LGA, lga=replace(LgaConfig(), rank=rank,
                                                      optimizer=LGA_OPTIMIZERS[optimizer]), lga_rank=ranks)


def full_baselines(planner) -> dict:
    """Arena of full-matrix momentum and Adam (no device path: planner figures): the SGD arena plus
    FULL_STATE_BYTES per weight, the states of every weight in the formats LGA uses on its factors."""
    sgd = planner.plan(TrainConfig(optimizer=OPT_SGD))["total"]
    weights = sum(layer.n * layer.m for layer in planner.model.layers if layer.weights is not None)
    return {f"full_{k}_bytes": sgd + v * weights for k, v in FULL_STATE_BYTES.items()}


def lga_verify_config(seed: int) -> TrainConfig:
    """The training of ``verify-commit --updates lga``: Adam at rank 4 with a merge every 2 samples and a
    large rate, so that merges change weights within a few steps."""
    mant, exp = lga_lr_pair(0.03)
    return TrainConfig(optimizer=OPT_LGA, seed=seed, lga=replace(LgaConfig(), merge_every=2, lr=mant, lr_exp=exp))
