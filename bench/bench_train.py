#!/usr/bin/env python3
"""Per-sample time of the training step on each backend (JSON out).

Streams MNIST training images (from --data-dir or $EDGETRAIN_DATA_DIR; synthetic
strokes if absent, recorded in the output) through `edgetrain`'s backends, the
same prequential loop `edgetrain run` drives, after a short warm-up, and reports
wall-clock milliseconds per sample (median of --repeat runs), the arena plan and
the machine. Example:

    python bench/bench_train.py --models mcu-cnn --json bench/out/train.json
    python bench/bench_train.py --models mcu-cnn --optimizers lrt   # low-rank training, paper defaults (r = 4)

The NumPy twin of lrt runs its integer SVD in Python (about 5 ms per rank-1 term, a conv layer
feeds one per output pixel): it is timed over --numpy-lrt-samples samples only.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgetrain import __version__  # noqa: E402
from edgetrain.backends import c_plan, make_backend  # noqa: E402
from edgetrain.config import OPTIMIZERS, TrainConfig  # noqa: E402
from edgetrain.data import mnist  # noqa: E402
from edgetrain.errors import EdgetrainError  # noqa: E402
from edgetrain.model.presets import preset  # noqa: E402


def data(data_dir, n):
    try:
        x, y = mnist.load("train", data_dir)
        return x[:n], y[:n], "mnist"
    except EdgetrainError:
        rng = np.random.default_rng(0)
        x = np.zeros((n, 28, 28), np.uint8)
        for i in range(n):
            for _ in range(3):
                y0, x0, y1, x1 = rng.integers(4, 24, 4)
                for t in np.linspace(0, 1, 30):
                    r, c = int(round(y0 + t * (y1 - y0))), int(round(x0 + t * (x1 - x0)))
                    x[i, max(0, r - 1) : r + 2, max(0, c - 1) : c + 2] = 255
        return x, rng.integers(0, 10, n).astype(np.uint8), "synthetic"


def config(optimizer, per_pixel):
    """The run's config: the C defaults (for lrt the paper's: r = 4, B = 10 conv / 100 dense, unbiased, kappa 100)."""
    return TrainConfig(optimizer=OPTIMIZERS[optimizer], conv_per_pixel=per_pixel)


def time_backend(name, model_name, optimizer, per_pixel, x, y, warmup, samples, repeat):
    runs = []
    for _ in range(repeat):
        backend = make_backend(name, preset(model_name, 0), config(optimizer, per_pixel))
        for i in range(warmup):
            backend.step(x[i], int(y[i]))
        start = time.perf_counter()
        for i in range(warmup, warmup + samples):
            backend.step(x[i], int(y[i]))
        runs.append(1e3 * (time.perf_counter() - start) / samples)
    return {"backend": name, "model": model_name, "optimizer": optimizer, "conv_per_pixel": per_pixel,
            "samples": samples, "warmup": warmup, "repeat": repeat, "ms_per_sample": statistics.median(runs),
            "ms_per_sample_runs": runs}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="mcu-cnn,mlp", help="comma-separated presets (default: mcu-cnn,mlp)")
    ap.add_argument("--optimizers", default="sgd,bias,none,lrt")
    ap.add_argument("--backends", default="c,numpy")
    ap.add_argument("--samples", type=int, default=300, help="timed samples per run on the C backend")
    ap.add_argument("--numpy-samples", type=int, default=100, help="timed samples per run on the NumPy backend")
    ap.add_argument("--numpy-lrt-samples", type=int, default=10, help="timed samples per run of lrt on the NumPy backend")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--per-pixel", action="store_true", help="also time sgd with per-pixel conv updates")
    ap.add_argument("--data-dir", default=os.environ.get(mnist.ENV))
    ap.add_argument("--json", default="bench/out/train.json", help="output file ('-' for stdout)")
    args = ap.parse_args(argv)
    n = args.warmup + max(args.samples, args.numpy_samples)
    x, y, source = data(args.data_dir, n)
    results = []
    for model_name in args.models.split(","):
        for optimizer in args.optimizers.split(","):
            for per_pixel in ([False, True] if args.per_pixel and optimizer == "sgd" else [False]):
                for backend in args.backends.split(","):
                    samples = args.samples if backend == "c" else args.numpy_samples
                    warmup = args.warmup
                    if backend == "numpy" and optimizer == "lrt":
                        samples, warmup = args.numpy_lrt_samples, min(args.warmup, 5)
                    r = time_backend(backend, model_name, optimizer, per_pixel, x, y, warmup, samples, args.repeat)
                    r["arena_bytes"] = c_plan(preset(model_name), config(optimizer, per_pixel))
                    results.append(r)
                    print(f"{model_name:10s} {optimizer:5s}{' per-pixel' if per_pixel else '':10s} {backend:6s} "
                          f"{r['ms_per_sample']:8.3f} ms/sample", file=sys.stderr)
    report = {"benchmark": "train_step", "data": source, "edgetrain_version": __version__,
              "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                          "python": platform.python_version(), "cpus": os.cpu_count()},
              "results": results}
    text = json.dumps(report, indent=2)
    if args.json == "-":
        print(text)
    else:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
