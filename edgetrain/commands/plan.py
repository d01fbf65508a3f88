"""edgetrain plan MODEL --rank R [--json]: the exact SRAM arena of training MODEL, by part and
by trainable layer, from the C planner (et_plan, et_plan_lrt_layer: one source of truth).

Budget mode answers "what fits?": --budget 24KiB picks the highest rank, the same for every
layer, whose arena fits; with --per-layer it then raises single layers' ranks while the arena
still fits (cheapest raise first). When nothing fits it says which part does not fit and by how
much. The context part is the size of C structs on this host (x86-64 here; 32-bit MCUs need less).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import replace
from fractions import Fraction

from ..config import LRT_MAX_RANK, OPT_LGA, OPT_LRT, OPTIMIZERS, LrtConfig, TrainConfig
from ..outputs import write_report
from ..backends import CPlanner
from ..errors import ArgumentError
from ..model.kinds import kind_name
from ..model.loader import MODEL_NAMES, load_model
from . import argtypes
from .lga_flags import add_lga_arguments, full_baselines, lga_train_config

LRT_PARTS = ("lrt_state", "lrt_scratch")
MAX_BUDGET = 2**32
MAX_ARENA_DEFAULT = 64 * 2**20  # `edgetrain run` refuses a larger arena unless given --max-arena
UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024**2, "kb": 1000, "mb": 1000**2}


def register(sub) -> None:
    p = sub.add_parser("plan", help="the exact SRAM arena of training a model, by part and layer (C planner)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help=f"a model name ({', '.join(MODEL_NAMES)}) or a model file (.etm)")
    p.add_argument("--rank", type=argtypes.int_range(1, LRT_MAX_RANK), default=LrtConfig().rank, help="rank r of every layer's accumulator, 1..8 (default: 4)")
    p.add_argument("--optimizer", default="lrt", choices=tuple(OPTIMIZERS), help="default: lrt")
    p.add_argument("--budget", metavar="SIZE", type=argtypes.checked(lambda text: parse_size(text), "size"), help="an SRAM budget (e.g. 24KiB, 32768, 64kB): pick the highest rank that fits")
    p.add_argument("--per-layer", action="store_true", help="with --budget: then raise single layers' ranks while it fits")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE", type=argtypes.output_file_or_stdout, help="write JSON to FILE (no FILE: stdout)")
    add_lga_arguments(p, with_training=False)
    p.set_defaults(func=main)


def parse_size(text: str, flag: str = "--budget") -> int:
    """'24KiB' -> 24576; bytes, KiB, MiB (powers of 2) or kB, MB (powers of 10); at most 4 GiB (a 32-bit
    address space). Read exactly (no float rounding), truncated to whole bytes."""
    m = re.fullmatch(r"\s*(\d{1,12}(?:\.\d{1,12})?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).lower() not in UNITS:
        raise ArgumentError(f"{flag} {text!r}: give a size such as 24576, 24KiB, 1.5MiB or 64kB")
    size = int(Fraction(m.group(1)) * UNITS[m.group(2).lower()])
    if not 1 <= size <= MAX_BUDGET:
        raise ArgumentError(f"{flag} {text!r} is {size} bytes; give 1 byte .. 4 GiB (an MCU's 32-bit address space)")
    return size


def lrt_train_config(rank: int, ranks: tuple = ()) -> TrainConfig:
    return TrainConfig(optimizer=OPT_LRT, lrt=replace(LrtConfig(), rank=rank), lrt_rank=ranks)


def describe(planner: CPlanner, config: TrainConfig) -> dict:
    """The plan of ``config``: aux_bytes (the arena), parts, and per trainable layer its LRT figures."""
    parts = planner.plan(config)
    out = {"model": planner.model.name, "optimizer": next(k for k, v in OPTIMIZERS.items() if v == config.optimizer),
           "aux_bytes": parts["total"], "parts": {k: v for k, v in parts.items() if k != "total"}}
    if config.optimizer == OPT_LRT:
        out["rank"] = config.lrt.rank
        out["layers"] = planner.lrt_layers(config)
    elif config.optimizer == OPT_LGA:
        out.update(rank=config.lga.rank, lga_optimizer=config.lga.optimizer, layers=planner.lga_layers(config),
                   **full_baselines(planner))
    else:
        out["layers"] = [{"name": l.name, "index": i, "kind": kind_name(l.kind), "n": l.n, "m": l.m}
                         for i, l in enumerate(planner.model.layers) if l.weights is not None]
    return out


def fit_budget(planner: CPlanner, budget: int, per_layer: bool = False) -> dict:
    """The highest global rank whose arena fits ``budget`` (then, per layer, single raises); or why nothing fits."""
    model = planner.model
    for rank in range(LRT_MAX_RANK, 0, -1):
        best = describe(planner, lrt_train_config(rank))
        if best["aux_bytes"] <= budget:
            break
    else:
        return {"model": model.name, "budget_bytes": budget, "fits": False, **shortfall(best, budget, planner)}
    result = {"fits": True, "budget_bytes": budget, "global_rank": rank}
    if per_layer:
        weight_layers = [i for i, l in enumerate(model.layers) if l.weights is not None]
        ranks = [0] * len(model.layers)
        for i in weight_layers:
            ranks[i] = rank
        total = best["aux_bytes"]
        while True:
            options = []
            for i in weight_layers:
                if ranks[i] < LRT_MAX_RANK:
                    trial = list(ranks)
                    trial[i] += 1
                    need = planner.plan(lrt_train_config(rank, tuple(trial)))["total"]
                    if need <= budget:
                        options.append((need - total, i, need))
            if not options:
                break
            _, i, total = min(options)
            ranks[i] += 1
        best = describe(planner, lrt_train_config(rank, tuple(ranks)))
        result["layer_ranks"] = ",".join(str(ranks[i]) for i in weight_layers)
    best.update(result)
    best["headroom_bytes"] = budget - best["aux_bytes"]
    return best


def shortfall(at_rank1: dict, budget: int, planner: CPlanner) -> dict:
    """Which part does not fit, and by how much, when even rank 1 is over budget; and what would fit."""
    parts = at_rank1["parts"]
    base = sum(v for k, v in parts.items() if k not in LRT_PARTS)
    over = at_rank1["aux_bytes"] - budget
    largest = max((k for k in parts if k not in LRT_PARTS), key=parts.get)
    if base > budget:
        why = (f"the parts other than the low-rank state need {base:,} B on their own, {base - budget:,} B over the "
               f"{budget:,} B budget; shrink the largest, {largest} ({parts[largest]:,} B)")
        part = largest
    else:
        lrt = parts["lrt_state"] + parts["lrt_scratch"]
        why = (f"at rank 1 the low-rank parts (lrt_state {parts['lrt_state']:,} B + lrt_scratch {parts['lrt_scratch']:,} B "
               f"= {lrt:,} B) do not fit the {budget - base:,} B the other parts leave: {over:,} B over")
        part = "lrt_state" if parts["lrt_state"] >= parts["lrt_scratch"] else "lrt_scratch"
    others = {name: planner.plan(TrainConfig(optimizer=OPTIMIZERS[name]))["total"] for name in ("sgd", "bias", "none")}
    fitting = [f"--optimizer {name} ({need:,} B)" for name, need in others.items() if need <= budget]
    would = (f"; within {budget:,} B fit: {', '.join(fitting)}" if fitting else
             f"; nothing fits {budget:,} B (inference only needs {others['none']:,} B)")
    return {"rank": None, "aux_bytes_at_rank_1": at_rank1["aux_bytes"], "over_bytes": over, "part": part,
            "parts_at_rank_1": parts, "other_optimizers_bytes": others, "message":
            f"no rank fits: {why}; rank 1 needs a budget of {at_rank1['aux_bytes']:,} B{would}"}


def text_report(r: dict) -> str:
    lines = []
    if "budget_bytes" in r and not r["fits"]:
        return f"{r['model']}: budget {r['budget_bytes']:,} B: {r['message']}"
    head = f"{r['model']}, optimizer {r['optimizer']}"
    if r["optimizer"] == "lga":
        head += f", rank {r['rank']} (full-matrix momentum {r['full_momentum_bytes']:,} B, Adam {r['full_adam_bytes']:,} B)"
    if r["optimizer"] == "lrt":
        head += f", rank {r['rank']}" if "layer_ranks" not in r else f", per-layer ranks {r['layer_ranks']}"
    head += f": arena {r['aux_bytes']:,} B ({r['aux_bytes'] / 1024:.1f} KiB)"
    if "budget_bytes" in r:
        head += f" within the {r['budget_bytes']:,} B budget ({r['headroom_bytes']:,} B spare)"
    lines.append(head)
    for k, v in r["parts"].items():
        lines.append(f"  {k:12s} {v:>10,}")
    if r["optimizer"] == "lrt":
        lines.append("trainable layers (persistent LRT state = 56 + 2 r (n + m) bytes; max-norm trackers in 'optimizer'):")
        lines.append(f"  {'name':8s} {'kind':5s} {'n':>6s} {'m':>6s} {'rank':>4s} {'lrt_bytes':>10s} {'scratch':>8s}")
        for l in r["layers"]:
            lines.append(f"  {l['name']:8s} {l['kind']:5s} {l['n']:>6} {l['m']:>6} {l['rank']:>4} {l['lrt_bytes']:>10,} "
                         f"{l['scratch_bytes']:>8,}")
    if "layer_ranks" in r:
        lines.append(f"use: edgetrain run --model ... --optimizer lrt --layer-ranks {r['layer_ranks']}")
    return "\n".join(lines)


def main(args) -> int:
    if args.per_layer and args.budget is None:
        raise ArgumentError("--per-layer picks ranks under a budget: give --budget SIZE too")
    if args.budget is not None and args.optimizer != "lrt":
        raise ArgumentError("--budget picks a low-rank rank: use it with --optimizer lrt (the default)")
    planner = CPlanner(load_model(args.model, 0))
    if args.budget is not None:
        report = fit_budget(planner, args.budget, args.per_layer)
    else:
        config = lrt_train_config(args.rank) if args.optimizer == "lrt" else TrainConfig(optimizer=OPTIMIZERS[args.optimizer])
        config = lga_train_config(args.rank, args.lga_optimizer) if args.optimizer == "lga" else config
        report = describe(planner, config)
        if report["aux_bytes"] > MAX_ARENA_DEFAULT:
            print(f"edgetrain plan: note: this arena ({report['aux_bytes']:,} bytes) exceeds "
                  f"{MAX_ARENA_DEFAULT // 2**20} MiB; edgetrain run refuses it unless given --max-arena", file=sys.stderr)
    if args.json:
        text = json.dumps(report, indent=2)
        if args.json == "-":
            print(text)
        else:
            write_report(args.json, text + "\n")
            print(text_report(report))
    else:
        print(text_report(report))
    return 0 if report.get("fits", True) else 1
