#!/usr/bin/env python3
"""Measure low-rank gradient approximation (--optimizer lga) against lrt, sgd and full-matrix
momentum/Adam on an MNIST stream (docs/lga.md has the figures this script wrote).

Each run streams `--samples` MNIST training images once, in the seeded order of `edgetrain run`,
either from a fresh model (start "scratch": the mcu-cnn preset initialised from the seed) or from
the shipped mcu-cnn-pretrained on a shifted stream (start "pretrained": every image moved by
`--shift` pixels right and down, zero fill). Reported per run: prequential accuracy (all samples
and the last 500), max and total writes per weight cell, the SRAM arena (C planner) and host wall
time per sample.

Methods: none (predict only), sgd, lrt (the CLI defaults), lga-<sgd|momentum|adam>-r<R> (C core; suffixes
-redraw, -k<K>, -lr<rate> change the restart rule, K and the factor rate), and the reference-only
full-matrix baselines full-momentum and full-adam: the NumPy twin trains biases and BN (optimizer
"bias") while a float64 optimizer with a float64 master copy of every weight steps on the full
gradient summed from the step's rank-1 terms (the pair hook), and the rounded master is written to
the NVM image through the one write path every sample. Their arena is the planner baseline
(commands/lga_flags.full_baselines), which counts the states but not the master copy.

    python bench/lga_compare.py --out lga-runs.jsonl --methods lga-adam-r4,lrt,sgd --seeds 0,1,2
    python bench/lga_compare.py --out lga-runs.jsonl --summary      # the table of what is in the file

Runs already in the output file (same method, start, seed, samples) are skipped, so an
interrupted grid resumes. At most `--jobs` runs at a time, each at nice 10.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LAST = 500


def shifted(images: np.ndarray, shift: int) -> np.ndarray:
    out = np.zeros_like(images)
    out[:, shift:, shift:, :] = images[:, : 28 - shift, : 28 - shift, :]
    return out


def _config(method: str, model, seed: int):
    from edgetrain.commands.lga_flags import LGA_LR_DEFAULT
    from edgetrain.model.loader import has_bn_statistics
    from edgetrain.config import LGA_OPTIMIZERS, LGA_RESTART_REDRAW_B, LGA_RESTART_ZERO_A, LgaConfig, OPT_BIAS, OPT_LGA, OPT_LRT, OPT_NONE, OPT_SGD, TrainConfig, lga_lr_pair

    warm = has_bn_statistics(model)
    if method == "none":
        return TrainConfig(optimizer=OPT_NONE, seed=seed, bn_warm=warm)
    if method == "sgd":
        return TrainConfig(optimizer=OPT_SGD, seed=seed, bn_warm=warm)
    if method == "lrt":
        return TrainConfig(optimizer=OPT_LRT, seed=seed, bn_warm=warm)
    if method.startswith("full-"):
        return TrainConfig(optimizer=OPT_BIAS, seed=seed, bn_warm=warm)
    _, opt, rank, *rest = method.split("-")  # lga-adam-r4[-redraw][-k50][-lr0.001]
    rate = next((float(r[2:]) for r in rest if r.startswith("lr")), LGA_LR_DEFAULT[opt])
    lr, lr_exp = lga_lr_pair(rate)
    restart = LGA_RESTART_REDRAW_B if "redraw" in rest else LGA_RESTART_ZERO_A
    k = next((int(r[1:]) for r in rest if r.startswith("k")), 100)
    lga = LgaConfig(optimizer=LGA_OPTIMIZERS[opt], rank=int(rank[1:]), lr=lr, lr_exp=lr_exp, restart=restart,
                         merge_every=k)
    return TrainConfig(optimizer=OPT_LGA, seed=seed, bn_warm=warm, lga=lga)


class FullMatrix:
    """Reference-only full-matrix momentum / Adam on the NumPy twin (float64 states and master weights)."""

    def __init__(self, backend, kind: str, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.b, self.kind, self.lr, self.b1, self.b2, self.eps = backend, kind, lr, beta1, beta2, eps
        st = backend.state
        self.layers = [i for i, ls in enumerate(st.layers) if ls.weights is not None]
        self.master = {i: st.layers[i].weights.astype(np.float64) * 2.0**-7 for i in self.layers}
        self.m = {i: np.zeros_like(self.master[i]) for i in self.layers}
        self.v = {i: np.zeros_like(self.master[i]) for i in self.layers}
        self.g = {i: np.zeros_like(self.master[i]) for i in self.layers}
        self.t = 0
        st.hook = self._pair

    def _pair(self, layer: int, pair) -> None:
        scale = 2.0 ** (pair.delta_exp + pair.x_exp + 7)  # gradient w.r.t. the stored weight's value W * 2^-7
        self.g[layer] += np.outer(pair.delta.astype(np.float64), pair.x.astype(np.float64)) * scale

    def step(self, x, label) -> int:
        from edgetrain.reference import train as ref_train

        for i in self.layers:
            self.g[i][...] = 0
        pred = self.b.step(x, label)
        self.t += 1
        for i in self.layers:
            g = self.g[i]
            if self.kind == "adam":
                self.m[i] = self.b1 * self.m[i] + (1 - self.b1) * g
                self.v[i] = self.b2 * self.v[i] + (1 - self.b2) * g * g
                mhat = self.m[i] / (1 - self.b1**self.t)
                vhat = self.v[i] / (1 - self.b2**self.t)
                self.master[i] -= self.lr * mhat / (np.sqrt(vhat) + self.eps)
            else:  # momentum, max-normed like the core's SGD and lga-momentum
                self.m[i] = self.b1 * self.m[i] + (1 - self.b1) * g
                peak = np.abs(self.m[i]).max()
                if peak > 0:
                    self.master[i] -= self.lr * self.m[i] / peak
            np.clip(self.master[i], -1.0, 127 / 128, out=self.master[i])
            new = np.clip(np.rint(self.master[i] * 128), -128, 127).astype(np.int8)
            ref_train.write_rows(self.b.state, i, 0, new)
        return pred


def run_one(method: str, start: str, seed: int, samples: int, shift: int, data_dir: str | None) -> dict:
    os.nice(10)
    from edgetrain.backends import CPlanner, make_backend
    from edgetrain.commands.lga_flags import full_baselines
    from edgetrain.tasks import stream_order
    from edgetrain.data import mnist
    from edgetrain.model.loader import load_model

    images, labels = mnist.load("train", data_dir)
    model = load_model("mcu-cnn" if start == "scratch" else "mcu-cnn-pretrained", seed)
    if start == "pretrained":
        images = shifted(images.reshape(-1, 28, 28, 1), shift).reshape(images.shape)
    config = _config(method, model, seed)
    full = method.startswith("full-")
    backend = make_backend("numpy" if full else "c", model, config)
    stepper = FullMatrix(backend, method[5:], lr=0.001 if method == "full-adam" else 0.01) if full else backend
    planner = CPlanner(model)
    aux = full_baselines(planner)[f"full_{method[5:]}_bytes"] if full else planner.plan(config)["total"]
    order = stream_order(len(images), seed)[:samples]
    hits = np.zeros(samples, dtype=bool)
    t0 = time.perf_counter()
    for k, index in enumerate(order):
        label = int(labels[index])
        hits[k] = stepper.step(images[index], label) == label
    backend.checkpoint()
    elapsed = time.perf_counter() - t0
    weights = backend.weight_cells()
    writes = backend.cell_writes[weights]
    return {"method": method, "start": start, "seed": seed, "samples": samples, "shift": shift if start == "pretrained" else 0,
            "accuracy": float(hits.mean()), "accuracy_last_500": float(hits[-LAST:].mean()),
            "max_writes_per_cell": int(writes.max()), "total_writes": int(writes.sum()), "aux_bytes": int(aux),
            "ms_per_sample": 1e3 * elapsed / samples, "backend": backend.name,
            "weights_sha256": backend.weights_sha256()}


def summary(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["start"], r["method"]), []).append(r)
    out = [f"{'start':10s} {'method':22s} {'n':>2s} {'acc':>13s} {'last500':>13s} {'maxw':>6s} {'total_writes':>12s} "
           f"{'arena B':>9s} {'ms/s':>6s}"]
    for (start, method), rs in sorted(groups.items()):
        acc = np.array([r["accuracy"] for r in rs])
        last = np.array([r["accuracy_last_500"] for r in rs])
        out.append(f"{start:10s} {method:22s} {len(rs):>2d} {acc.mean():.4f}±{acc.std():.4f} {last.mean():.4f}±{last.std():.4f} "
                   f"{int(np.mean([r['max_writes_per_cell'] for r in rs])):>6d} {int(np.mean([r['total_writes'] for r in rs])):>12d} "
                   f"{rs[0]['aux_bytes']:>9d} {np.mean([r['ms_per_sample'] for r in rs]):>6.2f}")
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="JSON-lines file (appended; runs already there are skipped)")
    p.add_argument("--methods", default="lga-adam-r4,lga-momentum-r4,lga-sgd-r4,lrt,sgd")
    p.add_argument("--starts", default="scratch,pretrained")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--samples", type=int, default=10_000)
    p.add_argument("--shift", type=int, default=3, help="pixels the pretrained start's images move (default 3)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--summary", action="store_true", help="print the table of the runs in --out and stop")
    args = p.parse_args()
    out = Path(args.out)
    if args.summary:
        print(summary(out))
        return 0
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["method"], r["start"], r["seed"], r["samples"]))
    jobs = [(m, s, int(seed)) for s in args.starts.split(",") for m in args.methods.split(",")
            for seed in args.seeds.split(",") if (m, s, int(seed), args.samples) not in done]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run_one, m, s, seed, args.samples, args.shift, args.data_dir): (m, s, seed)
                   for m, s, seed in jobs}
        for f in as_completed(futures):
            r = f.result()
            with out.open("a") as fh:
                fh.write(json.dumps(r) + "\n")
            print(f"{r['start']:10s} {r['method']:22s} seed {r['seed']}: acc {r['accuracy']:.4f} last500 "
                  f"{r['accuracy_last_500']:.4f} maxw {r['max_writes_per_cell']} {r['ms_per_sample']:.2f} ms", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
