#!/usr/bin/env python3
"""Soak benchmark: a long prequential stream through the C core, per training scheme.

Streams N samples (default 100,000) of the MNIST training images, cycling through them in
the order of `edgetrain run --seed S`, each elastically augmented (edgetrain.data.augment,
the paper's recipe; pass 60,000 the k-th sample is image order[k mod 60,000] distorted with
the draws of (seed, k)), through mcu-cnn (or --model) from its seeded initialisation, and reports per
window of W samples (default 5,000):

  * accuracy: prequential (predict, score, then train) over the window;
  * max_writes_per_cell: the most logical writes of any weight cell so far (a byte counts
    once each time its value changes, as in `edgetrain run`);
  * saturation, per layer, of the stored tensors at the window's end: the fraction of
    weight cells at the int8 limits (-1 or 1 - 2^-7), of biases at or above 2 (where a
    ReLU unit's output clips whatever its input) and the mean bias;
  * clips: the saturation counters of the core (et_train_get_clip_counts), per layer and
    per store, counted over the window (reset at its start): values clamped to their
    format's range in the int16 pre-activation (pre), the ReLU or BN output (act), the
    gradient passed down (grad), the int8 weight cells (weight), the bias / BN gamma-beta
    updates (param), the BN statistics (stats); only non-zero entries are listed, and the
    run record sums them in `clips_total` (docs/numerics.md, "Saturation counters");
  * lrt only: basis orthogonality of each layer's accumulator, max |Q^T Q - I| over the
    columns in use of Q_L and Q_R (the int16 bases read as unit vectors), sampled 5
    samples before the window's end (a window's end is a flush for every layer).

    nice -n 10 python bench/soak.py --schemes sgd,lrt --seeds 0,1,2 --json bench/out/soak.json

The schemes: sgd (conv gradient summed over the pixels), sgd-pp (per output pixel), bias,
lrt (the paper's defaults), lrt-biased, lrt-nonorm (max-norm of L and R off), lrt-biased-nonorm,
and Table 1's mixed rows: lrt-convbiased (conv layers biased, dense unbiased), lrt-densebiased
(the reverse) and their -nonorm variants. --rank, --batch-conv and --batch-dense change every lrt
scheme's rank and B. `--samples 10000 --window 500` gives the paper's Table 1 metric (the last
window: accuracy of the last 500 of 10,000) on the augmented stream.
Output: JSON, one record per (scheme, seed), plus `last_vs_best`: the last window's
accuracy minus the best window's.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgetrain.backends import PARAMS, CBackend  # noqa: E402
from edgetrain.reference import lrt as lrt_ref  # noqa: E402
from edgetrain.config import (  # noqa: E402
    OPT_BIAS, OPT_LRT, OPT_SGD, TRUNC_BIASED, TRUNC_UNBIASED, LrtConfig, TrainConfig, kind_truncation,
    lrt_config_check)
from edgetrain.data import augment, mnist  # noqa: E402
from edgetrain.errors import ArgumentError  # noqa: E402
from edgetrain.model.presets import PRESETS, preset  # noqa: E402
from edgetrain.tasks import stream_order  # noqa: E402

SCHEMES = {
    "sgd": dict(optimizer=OPT_SGD),
    "sgd-pp": dict(optimizer=OPT_SGD, conv_per_pixel=True),
    "bias": dict(optimizer=OPT_BIAS),
    "lrt": dict(optimizer=OPT_LRT),
    "lrt-biased": dict(optimizer=OPT_LRT, lrt=LrtConfig(unbiased=0)),
    "lrt-nonorm": dict(optimizer=OPT_LRT, lrt=LrtConfig(maxnorm=0)),
    "lrt-biased-nonorm": dict(optimizer=OPT_LRT, lrt=LrtConfig(unbiased=0, maxnorm=0)),
    # Table 1's mixed rows: one layer kind biased, the other unbiased (TrainConfig.lrt_truncation per layer)
    "lrt-convbiased": dict(optimizer=OPT_LRT, truncation={"conv": TRUNC_BIASED, "dense": TRUNC_UNBIASED}),
    "lrt-densebiased": dict(optimizer=OPT_LRT, truncation={"conv": TRUNC_UNBIASED, "dense": TRUNC_BIASED}),
    "lrt-convbiased-nonorm": dict(optimizer=OPT_LRT, lrt=LrtConfig(maxnorm=0),
                                  truncation={"conv": TRUNC_BIASED, "dense": TRUNC_UNBIASED}),
    "lrt-densebiased-nonorm": dict(optimizer=OPT_LRT, lrt=LrtConfig(maxnorm=0),
                                   truncation={"conv": TRUNC_UNBIASED, "dense": TRUNC_BIASED}),
}
ORTHO_LEAD = 5  # samples before a window's end at which the accumulators are read (mid-batch for B = 10 and 100)
BIAS_ONE = 4096  # 1.0 in the bias format (LSB 2^-12)
ACT_CLIP = 2 * BIAS_ONE  # the activation format's upper limit, 2.0


def saturation(backend: CBackend) -> dict:
    """Per weight layer: stored weights at the int8 limits, biases at or above the ReLU clip."""
    backend.checkpoint()  # biases live in SRAM copies; the checkpoint makes them readable (no effect on training)
    out = {}
    for i, layer in enumerate(backend.model.layers):
        if layer.weights is None:
            continue
        w = np.frombuffer(backend.active(i), np.int8).astype(np.int16)
        b = np.frombuffer(backend.active(PARAMS | i), np.int16)
        out[layer.name] = {
            "weights_at_limit": round(float(np.mean((w == -128) | (w == 127))), 4),
            "biases_at_or_above_2": round(float(np.mean(b >= ACT_CLIP)), 4),
            "bias_mean": round(float(b.mean()) / BIAS_ONE, 4),
        }
    return out


def window_clips(backend: CBackend) -> dict:
    """The clip counters since the last reset, per layer, non-zero entries only; then reset them."""
    out = {}
    for name, counts in backend.clip_counts().items():
        nz = {k: v for k, v in counts.items() if v}
        if nz:
            out[name] = nz
    backend.reset_clip_counts()
    return out


def clips_line(clips: dict) -> str:
    """A compact console form: 'conv1 act 9.5k, fc1 weight 12' (k: thousands)."""
    def fmt(v: int) -> str:
        return f"{v / 1000:.1f}k" if v >= 10_000 else str(v)
    parts = [f"{name} " + " ".join(f"{k} {fmt(v)}" for k, v in c.items()) for name, c in clips.items()]
    return "; ".join(parts) or "none"


def orthogonality(backend: CBackend) -> dict:
    """Per weight layer: max |Q^T Q - I| of Q_L and Q_R over the columns in use (None when empty)."""
    ffi, lib = backend._ffi, backend._lib
    out = {}
    for i, layer in enumerate(backend.model.layers):
        if layer.weights is None:
            continue
        ptr = ffi.new("const et_lrt_state_t **")
        backend._call("et_train_lrt", backend.ctx, i, ptr, ffi.NULL)
        st = ptr[0]
        n, m, r = st.n, st.m, st.rank
        used = [k for k in range(r) if st.c_mant[k] != 0]
        if not used:
            out[layer.name] = None
            continue
        base = ffi.cast("const char *", st) + ffi.sizeof("et_lrt_state_t")
        q = np.frombuffer(ffi.buffer(base, 2 * r * (n + m)), np.int16)
        lo_l, lo_r = lrt_ref.planes_unpack(ffi.buffer(base + 2 * r * (n + m), lrt_ref.plane_bytes(n, r)
                                                      + lrt_ref.plane_bytes(m, r))[:], n, m, r)
        devs = []
        for mat, lo, e, f in ((q[: n * r].reshape(n, r), lo_l, st.exp_l, st.f_l),
                              (q[n * r:].reshape(m, r), lo_r, st.exp_r, st.f_r)):
            cols = lrt_ref.basis_values(mat, lo, e, f)[:, used]
            devs.append(float(np.abs(cols.T @ cols - np.eye(len(used))).max()))
        out[layer.name] = round(max(devs), 6)
    return out


def scheme_config(scheme: str, model, seed: int, lrt_overrides: dict) -> TrainConfig:
    """The TrainConfig of ``scheme`` for ``model``; for lrt schemes, ``lrt_overrides`` (rank, batch_conv, ...)
    replace its defaults."""
    kw = dict(SCHEMES[scheme])
    if kw["optimizer"] == OPT_LRT and lrt_overrides:
        kw["lrt"] = replace(kw.get("lrt", LrtConfig()), **lrt_overrides)
    kinds = kw.pop("truncation", None)
    if kinds:
        kw["lrt_truncation"] = kind_truncation(model, kinds["conv"], kinds["dense"])
    return TrainConfig(seed=seed, **kw)


def soak(scheme: str, seed: int, samples: int, window: int, images, labels, progress,
         lrt_overrides: dict | None = None, model_name: str = "mcu-cnn") -> dict:
    model = preset(model_name, seed)
    config = scheme_config(scheme, model, seed, lrt_overrides or {})
    config.check()
    backend = CBackend(model, config)
    weights = backend.weight_cells()
    order = stream_order(len(images), seed)
    windows = []
    total: dict = {}
    backend.reset_clip_counts()
    t0 = time.perf_counter()
    for start in range(0, samples, window):
        stop = min(start + window, samples)
        idx = order[np.arange(start, stop) % len(images)]
        batch = augment.elastic(images[idx], seed, start)
        hits = 0
        ortho = None
        for k in range(stop - start):
            hits += backend.step(batch[k], int(labels[idx[k]])) == labels[idx[k]]
            if scheme.startswith("lrt") and start + k + 1 == stop - ORTHO_LEAD:
                ortho = orthogonality(backend)
        rec = {"end": stop, "accuracy": round(hits / (stop - start), 4),
               "max_writes_per_cell": int(backend.cell_writes[weights].max(initial=0)),
               "saturation": saturation(backend), "clips": window_clips(backend)}
        for name, c in rec["clips"].items():
            for k, v in c.items():
                total.setdefault(name, {}).setdefault(k, 0)
                total[name][k] += v
        if ortho is not None:
            rec["orthogonality"] = ortho
        windows.append(rec)
        if progress:
            print(f"{scheme} seed {seed}: {stop} samples, window accuracy {rec['accuracy']:.3f}, max writes "
                  f"{rec['max_writes_per_cell']}, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
            print(f"  clips: {clips_line(rec['clips'])}", file=sys.stderr, flush=True)
    acc = [w["accuracy"] for w in windows]
    rec = {"scheme": scheme, "seed": seed, "samples": samples, "window": window}
    if config.optimizer == OPT_LRT:
        rec["lrt"] = {k: int(getattr(config.lrt, k)) for k in ("rank", "unbiased", "maxnorm", "batch_conv", "batch_dense")}
        rec["lrt"]["layer_unbiased"] = {layer.name: config.lrt_layer_config(i).unbiased
                                        for i, layer in enumerate(model.layers) if layer.weights is not None}
    return {**rec,
            "best_window": max(acc), "last_window": acc[-1], "last_vs_best": round(acc[-1] - max(acc), 4),
            "elapsed_s": round(time.perf_counter() - t0, 1), "clips_total": total, "windows": windows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--schemes", default="sgd,lrt", help=f"comma-separated, of {', '.join(SCHEMES)} (default: sgd,lrt)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
    ap.add_argument("--samples", type=int, default=100_000, help="samples per run (default: 100000)")
    ap.add_argument("--window", type=int, default=5000, help="window of the accuracy and counters (default: 5000)")
    ap.add_argument("--data-dir", default=None, help=f"MNIST folder (default: ${mnist.ENV})")
    ap.add_argument("--json", default="-", help="output file ('-': stdout)")
    ap.add_argument("--rank", type=int, default=None, help="lrt schemes: accumulator rank (default: the paper's 4)")
    ap.add_argument("--batch-conv", type=int, default=None, help="lrt schemes: B of conv layers, samples (default: 10)")
    ap.add_argument("--batch-dense", type=int, default=None, help="lrt schemes: B of dense layers, samples (default: 100)")
    ap.add_argument("--model", default="mcu-cnn", choices=sorted(PRESETS),
                    help="the preset streamed from its seeded initialisation (default: mcu-cnn)")
    ap.add_argument("--quiet", action="store_true", help="no per-window line on stderr")
    args = ap.parse_args(argv)
    schemes = args.schemes.split(",")
    unknown = [s for s in schemes if s not in SCHEMES]
    if unknown:
        ap.error(f"unknown scheme {unknown[0]!r}: choose from {', '.join(SCHEMES)}")
    if args.samples < 1 or args.window < 2 * ORTHO_LEAD:
        ap.error(f"--samples must be positive and --window at least {2 * ORTHO_LEAD}")
    lrt_overrides = {k: v for k, v in (("rank", args.rank), ("batch_conv", args.batch_conv),
                                       ("batch_dense", args.batch_dense)) if v is not None}
    try:
        lrt_config_check(replace(LrtConfig(), **lrt_overrides))
    except ArgumentError as e:
        ap.error(str(e))
    images, labels = mnist.load("train", args.data_dir)
    out = {"model": args.model, "data": "MNIST train, cycling, elastic augmentation (edgetrain.data.augment)",
           "backend": "c", "machine": platform.machine(), "python": platform.python_version(), "runs": []}
    for s in schemes:
        for seed in args.seeds.split(","):
            out["runs"].append(soak(s, int(seed), args.samples, args.window, images, labels, not args.quiet,
                                    lrt_overrides, args.model))
            if args.json != "-":  # rewritten after every run: a long soak keeps what it finished
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    if args.json == "-":
        print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
