"""edgetrain demo: the point of the project in one command (no download, no TensorFlow, no flags).

The shipped pretrained mcu-cnn on an emulated rram-mcu device, streaming the
packaged MNIST subset while its weights drift (analog drift, the paper's
magnitude): inference only, SGD (summed, and per output pixel as in the
paper's baseline) and low-rank training (LRT). It prints a table (accuracy,
max writes per cell, NVM energy, SRAM arena, projected lifetime) and writes a
plot of accuracy and worst-cell writes against samples.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import LrtConfig
from ..errors import ArgumentError
from ..outputs import write_figure, write_report
from . import argtypes
from ..experiment import pyplot, scheme_options
from ..session import Session

MODEL, MEMORY_MAP, TASK = "mcu-cnn-pretrained", "rram-mcu", "drift-analog"
SCHEMES = ("none", "sgd", "sgd-pixel", "lrt")
LABELS = {"none": "inference only", "sgd": "SGD (summed)", "sgd-pixel": "SGD (per pixel)", "lrt": "LRT"}


def register(sub) -> None:
    p = sub.add_parser("demo", help="pretrained model under weight drift: inference only vs SGD vs LRT (table + plot)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=argtypes.int_range(1), default=3000, help="samples per scheme (default: 3000)")
    p.add_argument("--task", default=TASK, choices=("control", "shifts", "drift-analog", "drift-digital"),
                   help=f"scenario (default: {TASK})")
    p.add_argument("--data-dir", metavar="DIR", help="MNIST folder (default: the subset shipped in the package)")
    p.add_argument("--plot", default="edgetrain-demo.png", metavar="PNG", type=argtypes.output_file, help="plot file (default: edgetrain-demo.png)")
    p.add_argument("--json", metavar="FILE", type=argtypes.output_file, help="write the run JSON keys per scheme (none, sgd, sgd-pixel, lrt) to FILE")
    p.add_argument("--seed", type=argtypes.int_range(0, 2**32 - 1), default=0, help="seed of the stream and the drift (default: 0)")
    p.set_defaults(func=main)


def run_demo(samples: int, task: str = TASK, seed: int = 0, data_dir: str | None = None, log=None) -> dict:
    """{scheme: run report with curves} for the demo's schemes."""
    out = {}
    for scheme in SCHEMES:
        options = scheme_options(scheme)
        lrt = options.pop("lrt", None)
        session = Session(MODEL, task=task, seed=seed, memory_map=MEMORY_MAP, data_dir=data_dir,
                          lrt=LrtConfig(**lrt) if lrt else None, **options)
        announce = (lambda line: log(f"data: {line}")) if log and not out else None
        if log:
            log(f"running {LABELS[scheme]} ({samples:,} samples)")
        out[scheme] = session.run(samples, progress=False, announce=announce).to_dict()
    return out


def table(reports: dict) -> str:
    head = ("scheme", "accuracy", "last 500", "max writes/cell", "NVM energy", "SRAM arena", "lifetime")
    rows = [head]
    for scheme, r in reports.items():
        life = r["projected_lifetime_days"]
        rows.append((LABELS[scheme], f"{r['accuracy']:.3f}",
                     f"{r['accuracy_last_500']:.3f}" if r["samples"] > 500 else "-",
                     f"{r['max_writes_per_cell']:,}", f"{r['nvm_energy_j'] * 1e3:,.3f} mJ", f"{r['aux_bytes']:,} B",
                     "no wear" if life is None else f"{life:,.0f} days"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def plot(reports: dict, path: str | Path, task: str) -> Path:
    plt = pyplot()
    fig, (acc, wr) = plt.subplots(1, 2, figsize=(10, 3.6))
    for scheme, r in reports.items():
        c = r["curves"]
        acc.plot(c["samples"], c["accuracy_ema"], label=LABELS[scheme])
        wr.plot(c["samples"], [v + 1 for v in c["max_writes_per_cell"]], label=LABELS[scheme])
    acc.set_xlabel("samples")
    acc.set_ylabel("prequential accuracy (EMA)")
    acc.set_title(f"{MODEL} on {MEMORY_MAP}, {task}")
    wr.set_yscale("log")
    wr.set_xlabel("samples")
    wr.set_ylabel("max writes per weight cell + 1")
    wr.set_title("worst-cell NVM writes")
    acc.legend(fontsize="small")
    fig.tight_layout()
    return write_figure(fig, path, dpi=80)


def main(args) -> int:
    if args.samples < 1:
        raise ArgumentError(f"--samples {args.samples}: give at least 1")
    pyplot()  # before any work
    reports = run_demo(args.samples, args.task, args.seed, args.data_dir,
                       log=lambda line: print(f"edgetrain demo: {line}", file=sys.stderr))
    if args.json:
        write_report(args.json, json.dumps(reports, indent=2, sort_keys=True) + "\n")
    print(f"{MODEL} on {MEMORY_MAP} under {args.task}, {args.samples:,} samples per scheme, seed {args.seed}:")
    print(table(reports))
    print(f"plot: {plot(reports, args.plot, args.task).resolve()}")
    return 0
