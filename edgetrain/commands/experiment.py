"""edgetrain experiment: run a grid of schemes x seeds on a task (or a TOML grid) on dask.distributed.

TASK is one of control, shifts, drift-analog, drift-digital, or a TOML file
describing a grid (docs/experiments.md). Runs go to a local cluster of
processes (--workers, default one per core) or to a running dask scheduler
(--scheduler tcp://HOST:PORT). A run whose JSON is already in OUT/runs is
skipped; a failed run is reported and the rest go on (exit status 1).
"""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import ArgumentError
from . import argtypes
from ..experiment import DEFAULT_SCHEMES, SCHEMES, Grid, run_grid
from ..tasks import TASKS


def register(sub) -> None:
    p = sub.add_parser("experiment", help="run a grid of schemes and seeds on a task, in parallel (dask)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("grid", metavar="TASK|GRID.toml", help=f"a task ({', '.join(TASKS)}) or a TOML grid file")
    p.add_argument("--schemes", help=f"comma-separated schemes (default: {','.join(DEFAULT_SCHEMES)}; known: "
                   f"{', '.join(SCHEMES)}, or an optimizer name)")
    p.add_argument("--seeds", help="comma-separated seeds (default: 0)")
    p.add_argument("--samples", type=int, help="samples per run (default: 2000)")
    p.add_argument("--model", help="model name or .etm file (default: mcu-cnn-pretrained)")
    p.add_argument("--memory-map", metavar="PRESET_OR_TOML", help="train over an emulated memory map (adds wear maps)")
    p.add_argument("--data-dir", metavar="DIR", help="MNIST folder (default: $EDGETRAIN_DATA_DIR, else the packaged subset)")
    p.add_argument("--out", default="experiment-out", metavar="DIR", type=argtypes.output_dir, help="output folder (default: experiment-out)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help=f"local worker processes (default: {os.cpu_count() or 1}, one per core)")
    where.add_argument("--scheduler", metavar="ADDRESS", help="a running dask scheduler, e.g. tcp://127.0.0.1:8786")
    p.add_argument("--no-plots", dest="plots", action="store_false", help="write no PNG plots")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_const", const=True, help="always show a progress bar")
    bar.add_argument("--no-progress", dest="progress", action="store_const", const=False, help="never show a progress bar")
    p.set_defaults(func=main, progress=None)


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise ArgumentError(f"{flag} {text!r}: give comma-separated integers") from None


def grid_from_args(args) -> Grid:
    grid = Grid(tasks=[args.grid]) if args.grid in TASKS else Grid.from_toml(args.grid)
    if args.schemes:
        grid.schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    if args.seeds:
        grid.seeds = _ints(args.seeds, "--seeds")
    for name in ("samples", "model", "memory_map", "data_dir"):
        if getattr(args, name) is not None:
            setattr(grid, name, getattr(args, name))
    return grid.check()


def main(args) -> int:
    if args.workers is not None and args.workers < 1:
        raise ArgumentError(f"--workers {args.workers}: give at least 1")
    grid = grid_from_args(args)
    n = len(grid.tasks) * len(grid.schemes) * len(grid.seeds)
    where = f"scheduler {args.scheduler}" if args.scheduler else f"{args.workers or os.cpu_count() or 1} local workers"
    print(f"edgetrain experiment: {n} runs of {grid.model}, {grid.samples:,} samples each, on {where}", file=sys.stderr)
    result = run_grid(grid, args.out, workers=args.workers, scheduler=args.scheduler, progress=args.progress,
                      plots=args.plots, log=lambda line: print(f"edgetrain {line}", file=sys.stderr))
    print(f"{len(result['ran'])} runs done, {len(result['skipped'])} skipped (already there), "
          f"{len(result['failed'])} failed; summary: {result['summary']}")
    return 1 if result["failed"] else 0
