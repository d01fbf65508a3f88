"""edgetrain run: stream a task through the training step and report (CLI/JSON contract).

A thin wrapper over edgetrain.Session (docs/api.md). Prequential: each sample
is first predicted, scored, then trained on. Tasks (docs/experiments.md):
control, shifts, drift-analog, drift-digital. Data: MNIST from --data-dir or
$EDGETRAIN_DATA_DIR, else the subset shipped in the package. The same model,
optimizer, seed and data give the same NVM bytes on every backend
(weights_sha256).
"""
from __future__ import annotations

import argparse
import json
import sys

from ..config import LRT_MAX_RANK, TRUNC_BIASED, TRUNC_UNBIASED, LrtConfig, kind_truncation, lrt_config_check
from ..outputs import write_report
from ..backends import backend_names, c_plan
from ..data import mnist
from ..errors import ArgumentError
from ..model.loader import MODEL_NAMES, load_model
from ..session import LAST, Session
from ..tasks import TASKS, TaskOptions
from . import argtypes
from .lga_flags import add_lga_arguments, lga_config
from .plan import MAX_ARENA_DEFAULT, parse_size

LRT_LIMITS = {"rank": (1, LRT_MAX_RANK), "batch_conv": (1, 65535), "batch_dense": (1, 65535), "kappa_th": (0, 2**31 - 1),
              "reorth_terms": (0, 65535), "conv_term_batch": (0, 16)}
OPTIMIZER_CHOICES = ("lrt", "lga", "sgd", "bias", "none")
BIASED_KINDS = ("all", "conv", "dense")  # --biased KIND: the layers whose truncation is biased


def register(sub) -> None:
    p = sub.add_parser("run", help="train a model on a data stream and report accuracy and NVM writes",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help=f"a model name ({', '.join(MODEL_NAMES)}) or a model file (.etm)")
    p.add_argument("--task", default="control", choices=TASKS, help="scenario (docs/experiments.md; default: control)")
    p.add_argument("--optimizer", default="sgd", choices=OPTIMIZER_CHOICES, help="default: sgd")
    p.add_argument("--samples", type=argtypes.int_range(1), default=1000, help="samples to stream (default: 1000)")
    p.add_argument("--backend", default="c", choices=backend_names(), help="training engine (default: c)")
    p.add_argument("--cpu", choices=("cortex-m0plus", "cortex-m4", "cortex-m33"),
                   help="--backend arm: the Cortex-M the firmware is built for and emulated on (default: cortex-m4)")
    p.add_argument("--seed", type=argtypes.int_range(0, 2**32 - 1), default=0, help="seeds the model init, the data order and the PRNG (default: 0)")
    p.add_argument("--json", metavar="FILE", type=argtypes.output_file_or_stdout, help="write the report as JSON to FILE ('-' for stdout)")
    p.add_argument("--data-dir", metavar="DIR", help=f"folder of the MNIST idx .gz files (default: ${mnist.ENV}, "
                   "else the subset shipped in the package)")
    p.add_argument("--conv-per-pixel", action="store_true", help="sgd: apply conv updates at every output pixel (the paper's baseline)")
    p.add_argument("--lr", type=argtypes.learning_rate, default=0.01, help="weight learning rate (default: 0.01)")
    p.add_argument("--lr-bias", type=argtypes.learning_rate, default=0.01, help="bias and BN learning rate (default: 0.01)")
    p.add_argument("--max-arena", metavar="SIZE", type=argtypes.checked(lambda text: parse_size(text, "--max-arena"), "size"),
                   default=MAX_ARENA_DEFAULT, help="refuse a model whose training arena (edgetrain plan) exceeds SIZE (default: 64MiB)")
    add_lrt_arguments(p)
    add_lga_arguments(p)
    d = TaskOptions()
    t = p.add_argument_group("task magnitudes (defaults: the paper's)")
    t.add_argument("--augment", action="store_true", help="elastically augment every streamed image (the paper's online pool)")
    t.add_argument("--block", type=argtypes.int_range(0), default=d.block, help="shifts: samples per block (default: a tenth of the run)")
    t.add_argument("--drift-every", type=argtypes.int_range(1), default=d.drift_every, help=f"drift: samples between applications (default: {d.drift_every})")
    t.add_argument("--sigma0", type=argtypes.non_negative_number, default=d.sigma0, help=f"drift-analog: strength sigma0 (default: {d.sigma0:g})")
    t.add_argument("--p0", type=argtypes.non_negative_number, default=d.p0, help=f"drift-digital: strength p0 (default: {d.p0:g})")
    # NVM emulation (firmware_sim): the C core over an emulated memory map, figures from its counters.
    emu = p.add_argument_group("NVM emulation (C backend)")
    emu.add_argument("--memory-map", metavar="PRESET_OR_TOML",
                     help="train over the NVM region of a memory map (rram-mcu, mram-mcu, pcm-mcu, flash-mcu, or a TOML "
                          "file); the report's write, energy and wear figures then come from the emulator")
    emu.add_argument("--samples-per-day", type=argtypes.positive_number, default=None, metavar="N",
                     help="with --memory-map: samples a day for projected_lifetime_days (default: 1440, one a minute)")
    emu.add_argument("--plots", metavar="DIR", type=argtypes.output_dir,
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
    g.add_argument("--rank", type=argtypes.int_range(1, LRT_MAX_RANK), default=d.rank, help=f"rank r of every layer's accumulator, 1..{LRT_MAX_RANK} (default: {d.rank})")
    g.add_argument("--layer-ranks", metavar="R1,R2,...", type=argtypes.int_list, help="one rank per trainable layer, in model order (overrides --rank; "
                   "e.g. from `edgetrain plan --budget ... --per-layer`)")
    g.add_argument("--batch-conv", type=argtypes.int_range(1, 65535), default=d.batch_conv, help=f"B of conv layers: samples per flush attempt, 1..65535 (default: {d.batch_conv})")
    g.add_argument("--batch-dense", type=argtypes.int_range(1, 65535), default=d.batch_dense, help=f"B of dense layers: samples per flush attempt, 1..65535 (default: {d.batch_dense})")
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("--unbiased", action="store_true", help="unbiased OK truncation in every layer (default)")
    mode.add_argument("--biased", nargs="?", const="all", choices=BIASED_KINDS, default=None, metavar="{all,conv,dense}",
                      help="biased truncation (keep the top r) in all layers, or only in the conv layers (dense ones "
                           "unbiased) or only in the dense ones (conv unbiased): Table 1's mixed rows (default: all)")
    g.add_argument("--kappa", type=argtypes.int_range(0, 2**31 - 1), default=d.kappa_th, help=f"skip a term when c_1 > kappa rho_L rho_R; 0 = never (default: {d.kappa_th})")
    g.add_argument("--reorth", type=argtypes.int_range(0, 65535), default=d.reorth_terms, metavar="K",
                   help="re-orthonormalise a layer's bases whenever its count of terms reaches a multiple of K, undoing the int16 rounding's drift "
                        f"on long accumulations (100 keeps it below 2e-3, docs/lrt.md); 0 = never (default: {d.reorth_terms})")
    g.add_argument("--term-batch", type=argtypes.int_range(0, 16), default=d.conv_term_batch, metavar="K",
                   help="give a conv layer's terms of a sample to the accumulator K at a time, rounding its int16 bases "
                        "once per K terms instead of once per term (16 keeps a long low-rank stream within 1.1x of the "
                        "float64 algorithm's error against 2.5x, at about 1.5x the time per term, docs/lrt.md); "
                        f"0 or 1 = one term at a time (default: {d.conv_term_batch})")
    g.add_argument("--rho-min", type=argtypes.fraction, default=d.rho_min_ppm / 1e6, help="write only when more than this fraction of a layer's "
                   f"quantized update is non-zero, 0..1 (default: {d.rho_min_ppm / 1e6})")
    g.add_argument("--no-max-norm", dest="max_norm", action="store_false",
                   help="no max-norm of L and R at a flush (the paper's no-norm column); biases keep theirs")
    p.set_defaults(max_norm=bool(d.maxnorm))


def lrt_truncation(args, model) -> tuple[int, tuple]:
    """(lrt.unbiased, TrainConfig.lrt_truncation) of --biased [all|conv|dense] / --unbiased."""
    biased = getattr(args, "biased", None)
    if biased is None:
        return 1, ()
    if biased == "all":
        return 0, ()
    if biased not in BIASED_KINDS:
        raise ArgumentError(f"--biased {biased!r}: choose one of {', '.join(BIASED_KINDS)}")
    conv, dense = (TRUNC_BIASED, TRUNC_UNBIASED) if biased == "conv" else (TRUNC_UNBIASED, TRUNC_BIASED)
    return 1, kind_truncation(model, conv, dense)


def lrt_config(args, model) -> tuple[LrtConfig, tuple, tuple]:
    """The accumulator config, per-layer ranks and per-layer truncation the flags ask for; ArgumentError
    naming the flag otherwise."""
    if not 0 < args.lr <= 1 or round(args.lr * 2**24) < 1:
        raise ArgumentError(f"--lr {args.lr}: with --optimizer lrt the base rate eta0 must lie in [2^-24, 1]")
    if not 0 <= args.rho_min <= 1:
        raise ArgumentError(f"--rho-min {args.rho_min} must lie in [0, 1]")
    unbiased, truncation = lrt_truncation(args, model)
    cfg = LrtConfig(rank=args.rank, unbiased=unbiased, maxnorm=int(args.max_norm),
                    batch_conv=args.batch_conv, batch_dense=args.batch_dense,
                    eta0_q24=round(args.lr * 2**24), rho_min_ppm=round(args.rho_min * 1e6), kappa_th=args.kappa,
                    reorth_terms=args.reorth, conv_term_batch=args.term_batch)
    flags = {"rank": "--rank", "batch_conv": "--batch-conv", "batch_dense": "--batch-dense", "kappa_th": "--kappa",
             "reorth_terms": "--reorth", "conv_term_batch": "--term-batch"}
    for name, flag in flags.items():
        lo, hi = LRT_LIMITS[name]
        if not lo <= getattr(cfg, name) <= hi:
            raise ArgumentError(f"{flag} {getattr(cfg, name)} is outside {lo}..{hi}")
    lrt_config_check(cfg)
    ranks: tuple = ()
    if args.layer_ranks:
        ranks = layer_ranks(model, args.layer_ranks)
    return cfg, ranks, truncation


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
        if not 1 <= r <= LRT_MAX_RANK:
            raise ArgumentError(f"--layer-ranks: rank {r} of layer {model.layers[i].name} is outside 1..{LRT_MAX_RANK}")
        ranks[i] = r
    return tuple(ranks)


def task_options(args):
    """The TaskOptions the flags ask for."""
    return TaskOptions(augment=args.augment, block=args.block, drift_every=args.drift_every, sigma0=args.sigma0, p0=args.p0)


def session(args) -> Session:
    """The Session the flags describe."""
    if not 0 <= args.seed < 1 << 32:
        raise ArgumentError(f"--seed {args.seed} is outside 0..2^32-1")
    lrt, ranks, truncation = lrt_config(args, load_model(args.model, args.seed)) if args.optimizer == "lrt" else (None, (), ())
    lga = None
    if args.optimizer == "lga":
        lga, ranks = lga_config(args, layer_ranks(load_model(args.model, args.seed), args.layer_ranks) if args.layer_ranks else ())
    if args.optimizer != "lrt" and not 0 <= args.lr < 1:
        raise ArgumentError(f"--lr {args.lr} must lie in [0, 1)")
    if args.cpu is not None and args.backend != "arm":
        raise ArgumentError(f"--cpu {args.cpu} chooses the firmware's CPU: it needs --backend arm")
    return Session(args.model, optimizer=args.optimizer, task=args.task, backend=args.backend, seed=args.seed,
                   memory_map=args.memory_map, data_dir=args.data_dir, conv_per_pixel=args.conv_per_pixel, lr=args.lr,
                   lr_bias=args.lr_bias, lrt=lrt, lga=lga, layer_ranks=ranks, layer_truncation=truncation,
                   task_options=task_options(args),
                   samples_per_day=args.samples_per_day, backend_options={"cpu": args.cpu} if args.cpu else None)


def check_arena(model, config, limit: int) -> None:
    """Refuse, before any work, a model whose training arena exceeds ``limit`` bytes."""
    need = c_plan(model, config)["total"]
    if need > limit:
        allow = -(-need // 2**20)
        raise ArgumentError(f"model {model.name!r} needs a training arena of {need:,} bytes ({need / 2**20:,.1f} MiB), more "
                            f"than the {limit:,} bytes --max-arena allows; give --max-arena {allow}MiB to run it anyway")


def run(args) -> dict:
    """Run the session the flags describe; the report with its curves."""
    if args.memory_map is None and args.plots is not None:
        raise ArgumentError("--plots needs --memory-map (the figures come from the NVM emulator)")
    if args.memory_map is None and args.samples_per_day is not None:
        raise ArgumentError("--samples-per-day needs --memory-map (the figures come from the NVM emulator)")
    if args.samples_per_day is not None and not args.samples_per_day > 0:
        raise ArgumentError(f"--samples-per-day {args.samples_per_day} must be > 0")
    if args.samples < 1:
        raise ArgumentError(f"--samples {args.samples}: give at least 1")
    s = session(args)
    check_arena(s.model, s.config, args.max_arena)
    result = s.run(args.samples, progress=args.progress, plots=args.plots,
                   announce=lambda line: print(f"edgetrain run: data: {line}", file=sys.stderr))
    return result.to_dict()


def summary(report: dict) -> str:
    """The console lines of a run report."""
    n = report["samples"]
    last = f" (last 500: {report['accuracy_last_500']:.4f})" if n > LAST else ""
    text = (f"{report['model']} {report['optimizer']} on {report['task']}, {n:,} samples, backend {report['backend']}: "
            f"accuracy {report['accuracy']:.4f}{last}, max writes per cell {report['max_writes_per_cell']:,}, "
            f"{report['per_sample_ms']:.2f} ms/sample, weights {report['weights_sha256'][:16]}")
    if "device_summary" in report:
        text += "\n" + report["device_summary"]
    return text


def main(args) -> int:
    report = run(args)
    text = json.dumps(report, indent=2, sort_keys=True)
    if args.json == "-":
        print(text)
    else:
        if args.json:
            write_report(args.json, text + "\n")
        print(summary(report))
    if "plots_error" in report:
        print(f"edgetrain run: warning: no plots written ({report['plots_error']}); the report is complete", file=sys.stderr)
    return 0
