#!/usr/bin/env python3
"""Benchmark of the C low-rank accumulator (csrc/src/lrt.c), driven from Python through cffi.

Measures, per layer shape and rank:
  * accumulate: wall time per rank-1 term (uniform random int8 delta / uint8 x, kappa rule
    off, so that every term is projected, decomposed and rotated: the worst case), biased and
    unbiased; the first `warmup` terms (bases still filling) are not timed;
  * flush: et_lrt_flush_begin (one counting pass over all n rows) and et_lrt_delta_row per row;
  * memory: persistent state bytes per layer and the shared scratch.

The cffi call costs about a microsecond, negligible next to the terms measured here. Timings
are host wall time (time.perf_counter), median of `repeats` blocks; they are measurements,
nothing asserts on them. Output: a table, and JSON with --json FILE.

    python bench/bench_lrt.py --json bench-lrt.json
    python bench/bench_lrt.py --quick          # small shapes, a few seconds
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

from edgetrain.config import LrtConfig  # noqa: E402
from edgetrain.core import ffi, lib  # noqa: E402
from edgetrain.lrt import LrtLayer  # noqa: E402
from edgetrain.reference import lrt as ref  # noqa: E402

DEFAULT_SHAPES = [(128, 1152), (512, 2048)]


def bench_shape(n: int, m: int, rank: int, unbiased: int, terms: int, repeats: int, warmup: int, seed: int) -> dict:
    cfg = LrtConfig(rank=rank, unbiased=unbiased, kappa_th=0)
    layer = LrtLayer(n, m, cfg, seed=seed)
    rng = np.random.default_rng(seed)
    pool = [(rng.integers(-128, 128, n).astype(np.int8), rng.integers(0, 256, m).astype(np.uint8)) for _ in range(64)]
    d_ptrs = [ffi.cast("int8_t *", ffi.from_buffer(d)) for d, _ in pool]
    x_ptrs = [ffi.cast("uint8_t *", ffi.from_buffer(x)) for _, x in pool]
    fn = lib.et_lrt_accumulate_u8
    st, c, scr, size, prng = layer.state, layer.cfg, layer.scratch, layer.scratch_size, layer.prng

    def run(count: int, offset: int) -> float:
        t0 = time.perf_counter()
        for i in range(count):
            k = (i + offset) % len(pool)
            if fn(st, c, d_ptrs[k], -9, x_ptrs[k], -7, scr, size, prng) != 0:
                raise RuntimeError("accumulate failed")
        return time.perf_counter() - t0

    run(warmup, 0)
    per_term = [run(terms, r * terms) / terms for r in range(repeats)]
    # flush: one counting pass (flush_begin), then the row stream
    flush_begin = []
    rows = []
    out = ffi.new("int8_t[]", m)
    for _ in range(repeats):
        t0 = time.perf_counter()
        if lib.et_lrt_flush_begin(st, c, layer.norms, layer.flush) != 0:
            raise RuntimeError("flush_begin failed")
        flush_begin.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(n):
            lib.et_lrt_delta_row(st, layer.flush, i, out, ffi.NULL)
        rows.append((time.perf_counter() - t0) / n)
    return {
        "n": n, "m": m, "rank": rank, "unbiased": unbiased, "terms_timed": terms * repeats,
        "accumulate_us_per_term": statistics.median(per_term) * 1e6,
        "accumulate_us_per_term_min": min(per_term) * 1e6,
        "flush_begin_ms": statistics.median(flush_begin) * 1e3,
        "delta_row_us_per_row": statistics.median(rows) * 1e6,
        "state_bytes": ref.state_get_size(n, m, rank),
        "scratch_bytes": ref.accumulate_get_buffer_size(n, m, rank),
        "nonzero_update_entries": int(layer.flush.nonzero),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the results as JSON to this file")
    ap.add_argument("--quick", action="store_true", help="small shapes and few terms")
    ap.add_argument("--ranks", default="4", help="comma-separated ranks (default 4)")
    ap.add_argument("--terms", type=int, default=200, help="terms per timed block")
    ap.add_argument("--repeats", type=int, default=5, help="timed blocks (median reported)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    shapes = [(16, 72), (64, 96)] if args.quick else DEFAULT_SHAPES
    terms = 50 if args.quick else args.terms
    repeats = 3 if args.quick else args.repeats
    results = []
    for n, m in shapes:
        for rank in (int(r) for r in args.ranks.split(",")):
            for unbiased in (0, 1):
                res = bench_shape(n, m, rank, unbiased, terms, repeats, warmup=4 * rank, seed=args.seed)
                results.append(res)
                print(f"n={n:5d} m={m:5d} r={rank} {'unbiased' if unbiased else 'biased  '}: "
                      f"accumulate {res['accumulate_us_per_term']:9.1f} us/term   "
                      f"flush_begin {res['flush_begin_ms']:8.2f} ms   delta_row {res['delta_row_us_per_row']:7.1f} us/row   "
                      f"state {res['state_bytes']} B  scratch {res['scratch_bytes']} B")
    report = {
        "benchmark": "lrt",
        "what": "C et_lrt_accumulate_u8 per rank-1 term (kappa off, uniform random terms), "
                "et_lrt_flush_begin per flush, et_lrt_delta_row per row; host wall time, median",
        "host": {"machine": platform.machine(), "system": platform.system(), "python": platform.python_version(),
                 "cpus": os.cpu_count(), "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
        "jacobi_sweeps_max": ref.JACOBI_SWEEPS,
        "results": results,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
