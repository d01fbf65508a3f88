#!/usr/bin/env python3
"""Sizes and instruction counts of the Cortex-M training firmware (JSON out).

Flash (text+data) and RAM (data+bss+stack+arena) per CPU; on one CPU (default cortex-m4) the
instructions per training sample and per forward MAC of each phase (forward, backward, accumulate,
update), for each model and optimizer, counted in the Unicorn emulator (firmware_sim.bench); and
the emulator's training samples per second without counting. Example:

    nice -n 10 python bench/bench_firmware.py --json bench/out/firmware.json
    python bench/bench_firmware.py --models mlp --samples 5
    python bench/bench_firmware.py --cpus cortex-m4 --models mcu-cnn --optimizers lrt --profile 12

--profile N adds, per model and optimizer, each phase's N costliest firmware functions (instructions
per counted sample and share of the phase), summed from the emulator's blocks by the ELF's symbols.

LRT uses the paper's settings except B = --batch for conv and dense layers, so that the counting
window (--samples, after one warm-up sample) holds flushes; the update phase is amortized over B.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from firmware_sim import firmware  # noqa: E402
from firmware_sim.bench import firmware_figures  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cpus", nargs="+", default=list(firmware.CPUS), choices=firmware.CPUS)
    p.add_argument("--count-cpu", default="cortex-m4", choices=firmware.CPUS)
    p.add_argument("--models", nargs="+", default=["mcu-cnn", "mlp"])
    p.add_argument("--optimizers", nargs="+", default=["sgd", "lrt"], choices=["sgd", "lrt"])
    p.add_argument("--samples", type=int, default=10, help="counted samples per model and optimizer (default: 10)")
    p.add_argument("--batch", type=int, default=10, help="LRT B for conv and dense layers (default: 10)")
    p.add_argument("--throughput-samples", type=int, default=20, help="samples timed without counting (default: 20)")
    p.add_argument("--build-dir", default="build/firmware-bench")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="also list each phase's N costliest firmware functions per counted sample (default: 0, off)")
    p.add_argument("--json", metavar="FILE", help="write the figures to FILE ('-' for stdout, the default)")
    args = p.parse_args(argv)
    if args.profile < 0:
        p.error(f"--profile {args.profile}: give a number of functions, 0 for none")
    figures = firmware_figures(args.build_dir, args.cpus, args.models, args.optimizers, args.count_cpu, args.samples,
                               args.batch, args.throughput_samples, args.profile)
    text = json.dumps(figures, indent=1)
    if args.json and args.json != "-":
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
