"""``edgetrain run``: stream a task through the training step and report (CLI/JSON contract).

Prequential: each sample is first predicted, scored, then trained on. The
``control`` task streams the MNIST training images once, in an order drawn
from the seed. The same model, optimizer, seed and data give the same NVM
bytes on every backend (``weights_sha256``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..backends import BACKENDS, c_plan, make_backend
from ..data import mnist
from ..errors import ArgumentError, UnsupportedError
from ..model.loader import MODEL_NAMES, has_bn_statistics, load_model
from ..model.presets import hash_u64
from ..reference.lrt import Config as LrtConfig
from ..reference.lrt import config_check as lrt_config_check
from ..reference.train import LR_DEFAULT, LR_EXP_DEFAULT, OPTIMIZERS, TrainConfig

TASKS = ("control",)
LRT_LIMITS = {"rank": (1, 8), "batch_conv": (1, 65535), "batch_dense": (1, 65535), "kappa_th": (0, 2**31 - 1)}
# Contract choices (DESIGN.md); 'arm' arrives with its own issue.
OPTIMIZER_CHOICES = ("lrt", "sgd", "bias", "none")
BACKEND_CHOICES = (*BACKENDS, "arm")
ORDER_STREAM = 0xDA7A  # hash stream of the data order (the weights use streams 1, 2, ...)
RRAM_WRITE_J_PER_BIT = 10.9e-12  # the paper's 18 KB RRAM macro (lrt-paper-spec §1)
LAST = 500  # the paper's accuracy window: the last 500 predictions


def register(sub) -> None:
    p = sub.add_parser("run", help="train a model on a data stream and report accuracy and NVM writes",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help=f"a model name ({', '.join(MODEL_NAMES)}) or a model file (.etm)")
    p.add_argument("--task", default="control", choices=TASKS, help="data stream (default: control = MNIST training images)")
    p.add_argument("--optimizer", default="sgd", choices=OPTIMIZER_CHOICES, help="default: sgd")
    p.add_argument("--samples", type=int, default=1000, help="samples to stream (default: 1000)")
    p.add_argument("--backend", default="c", choices=BACKEND_CHOICES, help="training engine (default: c)")
    p.add_argument("--seed", type=int, default=0, help="seeds the model init, the data order and the PRNG (default: 0)")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON to FILE ('-' for stdout)")
    p.add_argument("--data-dir", metavar="DIR", help=f"folder of the MNIST idx .gz files (default: ${mnist.ENV})")
    p.add_argument("--conv-per-pixel", action="store_true", help="sgd: apply conv updates at every output pixel (the paper's baseline)")
    p.add_argument("--lr", type=float, default=0.01, help="weight learning rate (default: 0.01)")
    p.add_argument("--lr-bias", type=float, default=0.01, help="bias and BN learning rate (default: 0.01)")
    add_lrt_arguments(p)
    # NVM emulation (firmware_sim): the C core over an emulated memory map, figures from its counters.
    emu = p.add_argument_group("NVM emulation (C backend)")
    emu.add_argument("--memory-map", metavar="PRESET_OR_TOML",
                     help="train over the NVM region of a memory map (rram-mcu, mram-mcu, pcm-mcu, flash-mcu, or a TOML "
                          "file); the report's write, energy and wear figures then come from the emulator")
    emu.add_argument("--samples-per-day", type=float, default=None, metavar="N",
                     help="with --memory-map: samples a day for projected_lifetime_days (default: 1440, one a minute)")
    emu.add_argument("--plots", metavar="DIR",
                     help="with --memory-map: write a wear heat map PNG per layer and a histogram of writes per cell "
                          "(needs matplotlib: pip install 'edgetrain[plots]')")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_const", const=True, help="always show a progress bar")
    bar.add_argument("--no-progress", dest="progress", action="store_const", const=False, help="never show a progress bar")
    p.set_defaults(func=main, progress=None)


# ---- low-rank training flags (--optimizer lrt) -----------------------------------------------


def add_lrt_arguments(p) -> None:
    """The flags of --optimizer lrt (defaults: the paper's, lrt-paper-spec §6.5). --lr is its eta0."""
    d = LrtConfig()
    g = p.add_argument_group("low-rank training (--optimizer lrt; --lr is the base rate eta0, scaled by sqrt(B_eff))")
    g.add_argument("--rank", type=int, default=d.rank, help=f"rank r of every layer's accumulator, 1..8 (default: {d.rank})")
    g.add_argument("--layer-ranks", metavar="R1,R2,...", help="one rank per trainable layer, in model order (overrides --rank; "
                   "e.g. from `edgetrain plan --budget ... --per-layer`)")
    g.add_argument("--batch-conv", type=int, default=d.batch_conv, help=f"B of conv layers: samples per flush attempt, 1..65535 (default: {d.batch_conv})")
    g.add_argument("--batch-dense", type=int, default=d.batch_dense, help=f"B of dense layers: samples per flush attempt, 1..65535 (default: {d.batch_dense})")
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("--unbiased", dest="unbiased", action="store_true", help="unbiased OK truncation (default)")
    mode.add_argument("--biased", dest="unbiased", action="store_false", help="biased truncation: keep the top r")
    g.add_argument("--kappa", type=int, default=d.kappa_th, help=f"skip a term when c_1 > kappa rho_L rho_R; 0 = never (default: {d.kappa_th})")
    g.add_argument("--rho-min", type=float, default=d.rho_min_ppm / 1e6, help="write only when more than this fraction of a layer's "
                   f"quantized update is non-zero, 0..1 (default: {d.rho_min_ppm / 1e6})")
    g.add_argument("--no-max-norm", dest="max_norm", action="store_false",
                   help="no max-norm of L and R at a flush (the paper's no-norm column); biases keep theirs")
    p.set_defaults(unbiased=bool(d.unbiased), max_norm=bool(d.maxnorm))


def lrt_config(args, model) -> tuple[LrtConfig, tuple]:
    """The accumulator config and per-layer ranks the flags ask for; ArgumentError naming the flag otherwise."""
    if not 0 < args.lr <= 1 or round(args.lr * 2**24) < 1:
        raise ArgumentError(f"--lr {args.lr}: with --optimizer lrt the base rate eta0 must lie in [2^-24, 1]")
    if not 0 <= args.rho_min <= 1:
        raise ArgumentError(f"--rho-min {args.rho_min} must lie in [0, 1]")
    cfg = LrtConfig(rank=args.rank, unbiased=int(args.unbiased), maxnorm=int(args.max_norm),
                    batch_conv=args.batch_conv, batch_dense=args.batch_dense,
                    eta0_q24=round(args.lr * 2**24), rho_min_ppm=round(args.rho_min * 1e6), kappa_th=args.kappa)
    flags = {"rank": "--rank", "batch_conv": "--batch-conv", "batch_dense": "--batch-dense", "kappa_th": "--kappa"}
    for name, flag in flags.items():
        lo, hi = LRT_LIMITS[name]
        if not lo <= getattr(cfg, name) <= hi:
            raise ArgumentError(f"{flag} {getattr(cfg, name)} is outside {lo}..{hi}")
    lrt_config_check(cfg)
    ranks: tuple = ()
    if args.layer_ranks:
        ranks = layer_ranks(model, args.layer_ranks)
    return cfg, ranks


def layer_ranks(model, text: str) -> tuple:
    """'4,4,2,8' (one rank per trainable layer, in order) as et_train_config_t.lrt_rank (by layer index)."""
    weight_layers = [i for i, layer in enumerate(model.layers) if layer.weights is not None]
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ArgumentError(f"--layer-ranks {text!r}: give comma-separated integers, one per trainable layer") from None
    if len(values) != len(weight_layers):
        names = ", ".join(model.layers[i].name for i in weight_layers)
        raise ArgumentError(f"--layer-ranks {text!r}: model {model.name} has {len(weight_layers)} trainable layers ({names}); give one rank each")
    ranks = [0] * len(model.layers)
    for i, r in zip(weight_layers, values):
        if not 1 <= r <= 8:
            raise ArgumentError(f"--layer-ranks: rank {r} of layer {model.layers[i].name} is outside 1..8")
        ranks[i] = r
    return tuple(ranks)


def lr_pair(value: float, flag: str) -> tuple[int, int]:
    """A learning rate as (mantissa, exponent) with 24 fractional bits: 0.01 -> (167772, -24)."""
    if not 0 <= value < 1:
        raise ArgumentError(f"{flag} {value} must lie in [0, 1)")
    return round(value * 2**24), -24


def stream_order(n_total: int, seed: int) -> np.ndarray:
    """The seeded order of the task's samples: a permutation from a portable hash."""
    return np.argsort(hash_u64(seed, ORDER_STREAM, n_total), kind="stable")


def _progress(total: int, enabled: bool | None):
    enabled = sys.stderr.isatty() if enabled is None else enabled
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, file=sys.stderr, unit="sample", dynamic_ncols=True)


def run(args) -> dict:
    if not 0 <= args.seed < 1 << 32:
        raise ArgumentError(f"--seed {args.seed} is outside 0..2^32-1")
    model = load_model(args.model, args.seed)
    if args.samples < 1:
        raise ArgumentError(f"--samples {args.samples}: give at least 1")
    images, labels = mnist.load("train", args.data_dir)
    if args.samples > len(images):
        raise ArgumentError(f"--samples {args.samples} exceeds the {len(images)} images of task {args.task!r} (one pass)")
    lrt_cfg, ranks = lrt_config(args, model) if args.optimizer == "lrt" else (LrtConfig(), ())
    lr_w, lr_w_exp = lr_pair(args.lr, "--lr") if args.optimizer != "lrt" else (LR_DEFAULT, LR_EXP_DEFAULT)
    lr_b, lr_b_exp = lr_pair(args.lr_bias, "--lr-bias")
    config = TrainConfig(optimizer=OPTIMIZERS[args.optimizer], conv_per_pixel=args.conv_per_pixel, lr_weight=lr_w,
                         lr_weight_exp=lr_w_exp, lr_bias=lr_b, lr_bias_exp=lr_b_exp, seed=args.seed, lrt=lrt_cfg,
                         lrt_rank=ranks,
                         bn_warm=has_bn_statistics(model))  # trained statistics: used at once, then continued
    emulated = _emulated_nvm(args, model, config)
    if emulated is not None:
        config = emulated["config"]
    backend = make_backend(args.backend, model, config, region=emulated and emulated["region"])
    order = stream_order(len(images), args.seed)[: args.samples]
    hits = np.zeros(args.samples, dtype=bool)
    bar = _progress(args.samples, args.progress)
    start = time.perf_counter()
    for k, index in enumerate(order):
        label = int(labels[index])
        hits[k] = backend.step(images[index], label) == label
        if bar is not None:
            bar.update(1)
            if k % 100 == 99:
                bar.set_postfix(acc=f"{hits[: k + 1].mean():.3f}")
    backend.checkpoint()
    elapsed = time.perf_counter() - start
    if bar is not None:
        bar.close()
    weights = backend.weight_cells()
    writes = backend.cell_writes
    n_weights = int(weights.sum())
    total_writes = int(writes[weights].sum())
    all_writes = int(writes.sum())
    plan = c_plan(model, config)
    report = {
        "accuracy": float(hits.mean()),
        "accuracy_last_500": float(hits[-LAST:].mean()),
        "samples": int(args.samples),
        "max_writes_per_cell": int(writes[weights].max(initial=0)),
        "total_cell_writes": total_writes,
        "write_density": total_writes / (n_weights * args.samples),
        "other_cell_writes": all_writes - total_writes,
        "nvm_energy_j": all_writes * 8 * RRAM_WRITE_J_PER_BIT,
        "nvm_energy_model": "estimate: 8 bits programmed per changed byte at 10.9 pJ/bit (the paper's RRAM macro)",
        "aux_bytes": plan["total"],
        "plan": plan,
        "weights_sha256": backend.weights_sha256(),
        "backend": backend.name,
        "elapsed_s": elapsed,
        "per_sample_ms": 1e3 * elapsed / args.samples,
        "model": model.name,
        "n_weights": n_weights,
        "optimizer": args.optimizer,
        "conv_per_pixel": bool(args.conv_per_pixel),
        "lr": args.lr,
        "lr_bias": args.lr_bias,
        "task": args.task,
        "seed": int(args.seed),
        "bn_statistics": "stored" if config.bn_warm else "fresh",
        **({"lrt": {**lrt_report(model, config), "layers": backend.lrt_stats()}} if args.optimizer == "lrt" else {}),
        "edgetrain_version": __version__,
    }
    if emulated is not None:
        del report["other_cell_writes"]  # logical; in logical_writes beside the physical figures
        report.update(_emulated_report(args, backend, emulated, n_weights, total_writes, all_writes))
    return report


def _emulated_nvm(args, model, config) -> dict | None:
    """--memory-map: the map, an emulated NVM region, the config's commit staging buffer for it, fit checks."""
    if args.memory_map is None:
        for flag, value in (("--samples-per-day", args.samples_per_day), ("--plots", args.plots)):
            if value is not None:
                raise ArgumentError(f"{flag} needs --memory-map (the figures come from the NVM emulator)")
        return None
    if args.backend != "c":
        raise UnsupportedError(f"--memory-map runs the C core over the NVM emulator; backend {args.backend!r} has none: "
                               "use --backend c (the numpy twin keeps the logical counts only)")
    if args.samples_per_day is not None and not args.samples_per_day > 0:
        raise ArgumentError(f"--samples-per-day {args.samples_per_day} must be > 0")
    from dataclasses import replace

    from firmware_sim.commit import area_size, commit_stage_bytes
    from firmware_sim.memory_map import MemoryMap
    from ..model.image import layout

    mmap = MemoryMap.load(args.memory_map)
    region = mmap.make_nvm(seed=args.seed)
    config = replace(config, commit_stage_bytes=commit_stage_bytes(region))
    mmap.check_arena(c_plan(model, config)["total"])
    image, _ = layout(model, align=max(4, region.tech.program_unit))
    mmap.check_image(len(image), area_size(model, region, config.ring_slots))
    return {"map": mmap, "region": region, "config": config}


def _emulated_report(args, backend, emulated, n_weights: int, logical_weight_writes: int, logical_all: int) -> dict:
    """The emulator's figures (firmware_sim.report.nvm_report) and the split of writes by kind of cell."""
    from firmware_sim.commit import CommitView
    from firmware_sim.report import DEFAULT_SAMPLES_PER_DAY, cell_breakdown, nvm_report, write_plots

    region, mmap = emulated["region"], emulated["map"]
    per_day = args.samples_per_day if args.samples_per_day is not None else DEFAULT_SAMPLES_PER_DAY
    view = CommitView(backend.model, region, backend.commit)
    figures = nvm_report(region, args.samples, n_weights, samples_per_day=per_day)
    stats = backend.nvm_stats()
    weights = backend.weight_cells()
    out = {
        **figures,
        "nvm_energy_model": (f"emulated {region.tech.name}: program + erase energy of every device operation "
                             f"({region.tech.program_energy} pJ/bit, basis '{region.tech.energy_basis}'); reads not counted"),
        "memory_map": mmap.name,
        "technology": region.tech.name,
        "physical_writes": cell_breakdown(view),
        "logical_writes": {
            "max_writes_per_weight": int(backend.cell_writes[weights].max(initial=0)),
            "total_weight_writes": logical_weight_writes,
            "write_density": logical_weight_writes / (n_weights * args.samples),
            "other_writes": logical_all - logical_weight_writes,
        },
        "commits": stats["commits"],
        "commits_lost": stats["commits_lost"],
        "worn_reports": stats["worn_reports"],
        "commit_bytes_programmed": stats["bytes_programmed"],
        "commit_record_bytes": stats["record_bytes"],
    }
    if args.plots:
        out["plots"] = [str(p) for p in write_plots(view, args.plots)]
    return out


def lrt_report(model, config: TrainConfig) -> dict:
    """The accumulator settings of a run and each trainable layer's rank, in the report."""
    c = config.lrt
    return {"rank": c.rank, "layer_ranks": {model.layers[i].name: config.lrt_layer_config(i).rank
                                            for i, layer in enumerate(model.layers) if layer.weights is not None},
            "unbiased": bool(c.unbiased), "batch_conv": c.batch_conv, "batch_dense": c.batch_dense,
            "eta0": c.eta0_q24 / 2**24, "rho_min": c.rho_min_ppm / 1e6, "kappa": c.kappa_th, "maxnorm": bool(c.maxnorm)}


def main(args) -> int:
    report = run(args)
    text = json.dumps(report, indent=2, sort_keys=True)
    if args.json == "-":
        print(text)
    else:
        if args.json:
            Path(args.json).write_text(text + "\n")
        print(f"{report['model']} {report['optimizer']} on {report['task']}, {report['samples']} samples, backend "
              f"{report['backend']}: accuracy {report['accuracy']:.4f} (last 500: {report['accuracy_last_500']:.4f}), "
              f"max writes per cell {report['max_writes_per_cell']}, {report['per_sample_ms']:.2f} ms/sample, "
              f"weights {report['weights_sha256'][:16]}")
    return 0
