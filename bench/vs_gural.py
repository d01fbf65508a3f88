#!/usr/bin/env python3
"""edgetrain's C core side by side with the low-rank training authors' reference code.

The user supplies a checkout of the authors' repository (agural/low-rank-training; it needs numba,
scipy, matplotlib and profilehooks installed beside NumPy); nothing of it is part of edgetrain. Two
comparisons, each interleaved block by block in this one process so that both see the same machine
load:

* ``acc``: the accumulator per rank-1 term on identical streams (uniform random int8 deltas and
  uint8 inputs, given to the authors' float32 kernel as the same values): their batched numba
  kernel ``lr.sks.apply_updates`` over a block of terms, then ``et_lrt_accumulate_u8`` over the same
  block, alternating, after ``--settle`` untimed terms each; the time per term is the mean over the
  timed terms (the median block's is in the JSON). Modes: biased with the kappa rule off
  (their ``zerovar=1``), and unbiased with kappa 100, reported with the share of the timed terms each
  side's kappa rule discarded (a discarded term costs both sides a fraction of a kept one, and the
  share climbs from none to nearly all over the first few hundred terms: the default window, terms
  100 to 600, is that climb; ``--settle 2000`` times the steady state).
* ``net``: one online training sample of the paper's CNN: their ``lr.net.Net`` (configuration
  ``lrt-base``: forward, backward, low-rank update) against edgetrain's ``paper-cnn`` preset with
  ``--optimizer lrt`` on the C backend, alternating sample by sample on the same images.

Ratios are the authors' time over edgetrain's (above 1: edgetrain is faster). Example:

    python bench/vs_gural.py --gural /path/to/low-rank-training --json bench/out/vs_gural.json

Both sides run on one thread: the BLAS and numba thread counts default to 1 (set
OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, MKL_NUM_THREADS or NUMBA_NUM_THREADS to override); a
multi-threaded BLAS on a shared machine measures the other jobs more than the code.

Their code uses ``np.float``, which NumPy 1.24 removed: this script defines it as ``float`` (the
alias it was) before importing their modules.
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

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before NumPy and numba start their thread pools

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgetrain.commands.bench import LrtRun, images, parse_shapes  # noqa: E402
from edgetrain.errors import ArgumentError  # noqa: E402

MODES = {"biased": (1, np.float32(1e30)), "unbiased-k100": (0, np.float32(100))}  # mode -> (zerovar, kappa_th)


def import_gural(path: Path):
    if not (path / "lr" / "sks.py").is_file():
        sys.exit(f"--gural {path}: no lr/sks.py there; give the root of a low-rank-training checkout")
    if not hasattr(np, "float"):
        np.float = float  # the alias their code uses (removed in NumPy 1.24)
    sys.path.insert(0, str(path))
    try:
        from lr import sks  # noqa: PLC0415
    except ImportError as exc:
        what = exc.name if getattr(exc, "name", None) else "what is missing"
        sys.exit(f"importing their code failed ({exc}): install {what} (their code needs numba, scipy, "
                 "matplotlib and profilehooks)")
    return sks


def compare_acc(sks, n: int, m: int, rank: int, mode: str, block: int, repeat: int, settle: int) -> dict:
    """Time both accumulators on the same terms, block by block, after `settle` untimed terms each.

    The kappa rule makes a discarded term far cheaper than a kept one on both sides, and the share
    of discards climbs from 0 to nearly 1 over the first few hundred terms of this stream (as the
    kept singular values grow against the terms' residual norms), so the unbiased rows are reported
    with each side's discarded share of the timed terms. Their kernel reports no count: each timed
    block is run again, untimed and term by term, from a copy of the state it started from, and a
    term counts as discarded where it left Cx unchanged (their kernel assigns Cx only after the
    kappa test). The replay must end in the state the timed call left, or the count is refused.
    """
    ours = LrtRun(n, m, rank, mode)
    pool = ours.pool
    zerovar, kappa = MODES[mode]
    rng = np.random.default_rng(2)
    state = {"U": np.zeros((rank + 1, n), np.float32), "V": np.zeros((rank + 1, m), np.float32),
             "Mult": np.ones(2, np.float32), "Cx": np.zeros(rank, np.float32)}
    keys = ("U", "V", "Mult", "Cx")

    def call(st: dict, us, vs, rbits) -> None:
        out = sks.apply_updates(st["U"], st["V"], st["Mult"], st["Cx"], us, vs, zerovar=zerovar, kappa_th=kappa,
                                qb=np.float32(16), rbits=rbits)
        st.update(zip(keys, out))

    def terms(start: int, count: int):
        idx = [(start + i) % len(pool) for i in range(count)]
        us = np.stack([pool[k][0].astype(np.float32) for k in idx])
        vs = np.stack([pool[k][1].astype(np.float32) for k in idx])
        return us, vs, np.sign(rng.random((rank + 1, count)).astype(np.float32) - np.float32(0.5))

    def theirs(start: int) -> tuple[float, int]:
        """(seconds per term, terms discarded) for one block."""
        us, vs, rbits = terms(start, block)
        before = {k: np.array(v, copy=True) for k, v in state.items()}
        t0 = time.perf_counter()
        call(state, us, vs, rbits)
        seconds = (time.perf_counter() - t0) / block
        discarded = 0
        for i in range(block):
            cx = np.array(before["Cx"], copy=True)
            call(before, us[i:i + 1], vs[i:i + 1], np.ascontiguousarray(rbits[:, i:i + 1]))
            discarded += bool(np.array_equal(cx, before["Cx"]))
        if not all(np.array_equal(before[k], state[k]) for k in keys):
            sys.exit(f"acc {n}x{m} {mode}: their kernel run term by term did not reproduce the block's state, "
                     "so its discarded terms cannot be counted this way")
        return seconds, discarded

    def mine() -> tuple[float, int]:
        skipped = int(ours.layer.state.skipped)
        t0 = time.perf_counter()
        ours.run(block)
        return (time.perf_counter() - t0) / block, int(ours.layer.state.skipped) - skipped

    scratch = {k: np.array(v, copy=True) for k, v in state.items()}
    call(scratch, *(a.astype(np.float32)[None] for a in pool[0]), np.ones((rank + 1, 1), np.float32))  # numba compiles
    if settle:  # both fill their bases
        us, vs, rbits = terms(0, settle)
        call(state, us, vs, rbits)
        ours.run(settle)
    t_theirs, t_ours, d_theirs, d_ours = [], [], 0, 0
    for r in range(repeat):
        t, d = theirs(settle + r * block)
        t_theirs.append(t)
        d_theirs += d
        t, d = mine()
        t_ours.append(t)
        d_ours += d
    timed = block * repeat
    # The mean over the timed terms: where the kappa rule's share of discards changes from block to block
    # (the default window), the median block of one side can be all kept terms and the other's mostly
    # discarded ones. The median block is kept in the JSON.
    row = {"n": n, "m": m, "rank": rank, "mode": mode, "settle": settle, "block": block, "repeat": repeat,
           "gural_us_per_term": 1e6 * statistics.fmean(t_theirs), "edgetrain_us_per_term": 1e6 * statistics.fmean(t_ours),
           "gural_us_per_term_median_block": 1e6 * statistics.median(t_theirs),
           "edgetrain_us_per_term_median_block": 1e6 * statistics.median(t_ours),
           "gural_skipped_fraction": d_theirs / timed, "edgetrain_skipped_fraction": d_ours / timed}
    row["ratio"] = row["gural_us_per_term"] / row["edgetrain_us_per_term"]
    return row


def compare_net(samples: int, warmup: int, data_dir) -> dict:
    from lr.experiments import configs  # noqa: PLC0415
    from lr.net import Net  # noqa: PLC0415

    from edgetrain.commands.bench import StepRun

    x, y, source = images(data_dir, warmup + samples)
    conf = configs["lrt-base"]
    net = Net(conf, {"input_shape": (28, 28, 1), "output_shape": (10,), "input_range": [0.0, 1.0]})
    net.set_mode(train=True)
    ours = StepRun("paper-cnn", "lrt", x, y)

    def theirs(i: int) -> float:
        X = (x[i].astype(np.float32) / np.float32(255)).reshape(1, 28, 28, 1)
        Yt = np.zeros((1, 10))
        Yt[0, int(y[i])] = 1
        t0 = time.perf_counter()
        net.loss_fn(net(X), Yt)
        net.backward()
        net.update(conf.lr)
        return time.perf_counter() - t0

    def mine() -> float:
        t0 = time.perf_counter()
        ours.run(1)
        return time.perf_counter() - t0

    for i in range(warmup):  # their first flushes compile the numba kernel
        theirs(i)
        mine()
    t_theirs, t_ours = [], []
    for i in range(warmup, warmup + samples):
        t_theirs.append(theirs(i))
        t_ours.append(mine())
    row = {"model": "paper-cnn", "optimizer": "lrt", "data": source, "samples": samples, "warmup": warmup,
           "gural_ms_per_sample": 1e3 * statistics.median(t_theirs), "edgetrain_ms_per_sample": 1e3 * statistics.median(t_ours)}
    row["ratio"] = row["gural_ms_per_sample"] / row["edgetrain_ms_per_sample"]
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gural", type=Path, required=True, help="root of a checkout of agural/low-rank-training")
    ap.add_argument("--parts", default="acc,net", help="acc, net or both (default acc,net)")
    ap.add_argument("--shapes", default="128x1152,512x2048", help="accumulator shapes NxM (default 128x1152,512x2048)")
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--settle", type=int, default=100,
                    help="untimed terms each side runs first (default 100). The kappa rule's discards climb from "
                         "none to nearly all terms over the first few hundred terms of this stream; 2000 times the "
                         "steady state")
    ap.add_argument("--block", type=int, default=100, help="terms per timed block (default 100)")
    ap.add_argument("--repeat", type=int, default=5, help="timed blocks per side (default 5)")
    ap.add_argument("--samples", type=int, default=20, help="timed network samples per side (default 20)")
    ap.add_argument("--warmup", type=int, default=12, help="untimed network samples (default 12: past their first flush)")
    ap.add_argument("--data-dir", default=os.environ.get("EDGETRAIN_DATA_DIR"), help="MNIST folder (default $EDGETRAIN_DATA_DIR)")
    ap.add_argument("--json", type=Path, help="write the results as JSON to this file")
    args = ap.parse_args(argv)
    for name, low in (("block", 1), ("repeat", 1), ("samples", 1), ("rank", 1), ("settle", 0), ("warmup", 0)):
        if getattr(args, name) < low:
            ap.error(f"--{name} must be {'at least 1' if low else '0 or more'} (got {getattr(args, name)})")
    if args.rank > 8:
        ap.error(f"--rank must be 8 or less (got {args.rank})")
    unknown = sorted(set(args.parts.split(",")) - {"acc", "net"})
    if unknown or not args.parts:
        ap.error(f"--parts {args.parts!r}: give acc, net or acc,net")
    try:
        shapes = parse_shapes(args.shapes)
    except ArgumentError as exc:
        ap.error(str(exc))
    if not args.gural.is_dir():
        ap.error(f"--gural {args.gural}: no such folder")
    sks = import_gural(args.gural.resolve())
    parts = set(args.parts.split(","))
    report = {"benchmark": "vs_gural", "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
              "loadavg": list(os.getloadavg())}, "acc": [], "net": None}
    if "acc" in parts:
        for n, m in shapes:
            for mode in MODES:
                row = compare_acc(sks, n, m, args.rank, mode, args.block, args.repeat, args.settle)
                report["acc"].append(row)
                print(f"acc {n}x{m} {mode:14s} authors {row['gural_us_per_term']:8.1f} us/term  edgetrain "
                      f"{row['edgetrain_us_per_term']:8.1f} us/term  ratio {row['ratio']:.2f}  discarded "
                      f"{row['gural_skipped_fraction']:.0%} / {row['edgetrain_skipped_fraction']:.0%}")
    if "net" in parts:
        row = compare_net(args.samples, args.warmup, args.data_dir)
        report["net"] = row
        print(f"net paper-cnn lrt  authors {row['gural_ms_per_sample']:8.1f} ms/sample  edgetrain "
              f"{row['edgetrain_ms_per_sample']:8.1f} ms/sample  ratio {row['ratio']:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
