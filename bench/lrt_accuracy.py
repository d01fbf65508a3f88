#!/usr/bin/env python3
"""Accuracy of the low-rank accumulator on a structured (truly low-rank) stream of rank-1 terms.

The stream (``low_rank_stream``): a fixed rank-k ground truth. U (n x k) and V (m x k) have
independent N(0, 1) entries, the spectrum is s_i = decay^i (i = 0..k-1). Term t draws
z_t ~ N(0, I_k) and
    delta_t = clip(round(25 (U diag(s) z_t + noise e_t)))             int8,  worth 2^-9 each
    x_t     = clip(round(128 + 30 (V diag(s) z_t + noise f_t)))      uint8, worth 2^-7 each
(e, f standard normal), the formats et_lrt_accumulate_u8 takes. The sum of the first t terms,
G_sum = sum delta x^T, is exact in float64; without noise its rank is at most k (the offset 128
only adds to the right span); the noise of delta against the offset adds one small rank-1 part.
Defaults: k = 3, decay = 0.5, noise = 0.05, accumulator rank 4. Terms are drawn in blocks of 256,
so a longer stream extends a shorter one.

Part 1 (always): the stream through the C accumulator (edgetrain.lrt.LrtLayer, kappa off, no
flush), the float64 reference (edgetrain.reference.lrt_float, same algorithm, no rounding) and,
with --twin, the bit-exact twin (bases, exponents and c compared with the C's at every checkpoint); with
--batch K the C and the twin take K terms per call (et_lrt_accumulate_batch_u8: the bases rounded once per
batch). At each
checkpoint: ||G^ - G_sum|| / ||G_sum|| (Frobenius) for C and float64 and their ratio, the best
rank-r error (SVD of G_sum), max|Q^T Q - I| of both bases; and for the unbiased (OK) mode over S
PRNG seeds, how many standard errors the mean estimate lies from G_sum.

Part 2 (--study): a NumPy emulation, float64 throughout, of the same algorithm with candidate
storage and rounding of the bases (the only rounding that matters: the C's residuals, core and
c keep 25-31 bits), with terms taken one at a time or in batches (one rank-(r + k) update per k
terms, edgetrain.reference.lrt_float.accumulate_batch), and optionally with 16-bit residuals. It reports which scheme meets the targets (biased error <= 1.2x the unrounded
float64, max|Q^T Q - I| < 2e-3 after 10^4 terms, unbiased mean within 2 SE, bases within
1.05 x 2r(n+m) bytes) and its cost in bytes and in counted work per term. The emulation changes nothing in the C; it is a study.
The int-* schemes are not emulations: they run the integer algorithm of the recommended storage,
scheme (f'), per term (bench/lrt_fullrange.py), to measure the roundings of its integer form.

    python bench/lrt_accuracy.py --json lrt-accuracy.json
    python bench/lrt_accuracy.py --terms 10000 --shapes 128x1152          # optional long run
    python bench/lrt_accuracy.py --terms 10000 --seeds 8 --batch 16       # the C in batches of 16
    python bench/lrt_accuracy.py --terms 10000 --seeds 0 --reorth 1000    # with et_lrt_reorthonormalize
    python bench/lrt_accuracy.py --study --json lrt-study.json            # emulation only
Figures are measurements, nothing asserts on them (tests/test_lrt_accuracy.py runs a small size).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgetrain.config import LrtConfig  # noqa: E402
from edgetrain.lrt import LrtLayer  # noqa: E402
from edgetrain.reference import lrt as ref  # noqa: E402
from edgetrain.reference import lrt_float as flt  # noqa: E402
from edgetrain.reference.fixed import Prng  # noqa: E402

sys.path.append(str(Path(__file__).resolve().parent))  # lrt_fullrange beside this file
import lrt_fullrange  # noqa: E402

D_EXP, X_EXP = -9, -7
DEFAULT_SHAPES = "128x1152,512x2048"
DEFAULT_CHECKPOINTS = (100, 1000, 2000, 10000)


# ---- the stream ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamSpec:
    k: int = 3
    decay: float = 0.5
    noise: float = 0.05
    seed: int = 0


STREAM_BLOCK = 256  # terms drawn per generator, so that a longer stream extends a shorter one


def low_rank_stream(n: int, m: int, count: int, spec: StreamSpec = StreamSpec()):
    """(D int8 count x n, X uint8 count x m): the terms of the module docstring's stream.

    U and V come from the generator seeded [seed, 0]; terms [256 b, 256 (b + 1)) from [seed, b + 1],
    so the first t terms are the same whatever ``count`` is.
    """
    rng = np.random.default_rng([spec.seed, 0])
    u = rng.normal(size=(n, spec.k))
    v = rng.normal(size=(m, spec.k))
    s = spec.decay ** np.arange(spec.k)
    ds, xs = [], []
    for b in range((count + STREAM_BLOCK - 1) // STREAM_BLOCK):
        rb = np.random.default_rng([spec.seed, b + 1])
        z = rb.normal(size=(STREAM_BLOCK, spec.k)) * s
        e = rb.normal(size=(STREAM_BLOCK, n))
        f = rb.normal(size=(STREAM_BLOCK, m))
        ds.append(np.clip(np.round(25.0 * (z @ u.T + spec.noise * e)), -128, 127).astype(np.int8))
        xs.append(np.clip(np.round(128.0 + 30.0 * (z @ v.T + spec.noise * f)), 0, 255).astype(np.uint8))
    return np.concatenate(ds)[:count], np.concatenate(xs)[:count]


def exact_prefix_sum(d: np.ndarray, x: np.ndarray, t: int) -> np.ndarray:
    """sum_{s < t} delta_s x_s^T in float64 (exact: integer products below 2^53), in value units."""
    return (d[:t].astype(np.float64).T @ x[:t].astype(np.float64)) * 2.0 ** (D_EXP + X_EXP)


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def orth_error(q: np.ndarray) -> float:
    """max |Q^T Q - I| over the non-zero columns of a float basis."""
    keep = np.any(q != 0, axis=0)
    if not keep.any():
        return 0.0
    qk = q[:, keep]
    return float(np.max(np.abs(qk.T @ qk - np.eye(qk.shape[1]))))


def best_rank_error(g: np.ndarray, r: int) -> float:
    sv = np.linalg.svd(g, compute_uv=False)
    return float(np.sqrt(np.sum(sv[r:] ** 2)) / np.sqrt(np.sum(sv**2)))


def mc_deviation(estimates: list, g: np.ndarray) -> dict:
    """||mean - G|| in standard errors of the mean (Frobenius; as tests/test_lrt_math.py)."""
    e = np.array(estimates)
    mean = e.mean(axis=0)
    se = float(np.sqrt(np.sum((e - mean) ** 2, axis=(1, 2)).mean() / len(e)))
    dev = float(np.linalg.norm(mean - g))
    return {"dev_rel": dev / float(np.linalg.norm(g)), "se_rel": se / float(np.linalg.norm(g)),
            "dev_in_se": dev / se if se > 0 else float("inf")}


# ---- part 1: C, twin, float64 ------------------------------------------------------------------


def run_c(d, x, rank: int, unbiased: int, seed: int, checkpoints: list, twin: bool = False,
          reorth: int = LrtConfig().reorth_terms, batch: int = 1) -> dict:
    """Stream through the C accumulator; {t: (estimate, orth_l, orth_r, twin_equal or None)}.
    reorth: LrtConfig.reorth_terms, re-orthonormalise the bases every this many terms (0: never); batch: terms per
    et_lrt_accumulate_batch_u8 call (1: et_lrt_accumulate_u8 per term; a batch never spans a checkpoint)."""
    cfg = LrtConfig(rank=rank, unbiased=unbiased, kappa_th=0, reorth_terms=reorth)
    layer = LrtLayer(d.shape[1], x.shape[1], cfg, seed=seed)
    tw = ref.state_init(d.shape[1], x.shape[1], cfg) if twin else None
    tprng = Prng(seed) if twin else None
    out, done = {}, 0
    for t in checkpoints:
        for i in range(done, t, batch):
            j = min(i + batch, t)
            if batch == 1:
                layer.accumulate(d[i], D_EXP, x[i], X_EXP)
                if twin:
                    ref.accumulate_u8(tw, cfg, d[i], D_EXP, x[i], X_EXP, tprng)
            else:
                layer.accumulate_batch(d[i:j], [D_EXP] * (j - i), x[i:j], [X_EXP] * (j - i))
                if twin:
                    ref.accumulate_batch_u8(tw, cfg, d[i:j], [D_EXP] * (j - i), x[i:j], [X_EXP] * (j - i), tprng)
        done = t
        st = layer.to_state()
        same = None
        if twin:
            same = bool(np.array_equal(st.ql, tw.ql) and np.array_equal(st.qr, tw.qr) and st.exp_l == tw.exp_l
                        and st.exp_r == tw.exp_r and (st.f_l, st.f_r) == (tw.f_l, tw.f_r)
                        and np.array_equal(st.lo_l, tw.lo_l) and np.array_equal(st.lo_r, tw.lo_r)
                        and list(st.c_mant) == list(tw.c_mant) and st.c_exp == tw.c_exp)
        out[t] = (st.estimate(), ref.orthonormality_error(st.ql, st.lo_l, st.exp_l, st.f_l),
                  ref.orthonormality_error(st.qr, st.lo_r, st.exp_r, st.f_r), same)
    return out


def run_float(d, x, rank: int, unbiased: int, seed: int, checkpoints: list) -> dict:
    fs = flt.state_init(d.shape[1], x.shape[1], rank)
    prng = Prng(seed)
    out, done = {}, 0
    dv, xv = d.astype(np.float64) * 2.0**D_EXP, x.astype(np.float64) * 2.0**X_EXP
    for t in checkpoints:
        for i in range(done, t):
            flt.accumulate(fs, dv[i], xv[i], unbiased=bool(unbiased), kappa_th=0, prng=prng)
        done = t
        out[t] = (fs.estimate(), orth_error(fs.ql), orth_error(fs.qr), None)
    return out


def measure_shape(n: int, m: int, rank: int, terms: int, seeds: int, spec: StreamSpec, twin: bool, log,
                  reorth: int = LrtConfig().reorth_terms, batch: int = 1) -> dict:
    cps = sorted({t for t in DEFAULT_CHECKPOINTS if t <= terms} | {terms})
    d, x = low_rank_stream(n, m, terms, spec)
    sums = {t: exact_prefix_sum(d, x, t) for t in cps}
    t0 = time.perf_counter()
    c_b = run_c(d, x, rank, 0, 0, cps, twin, reorth, batch)
    f_b = run_float(d, x, rank, 0, 0, cps)
    log(f"  {n}x{m}: biased C + float64{' + twin' if twin else ''} {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    c_u = [run_c(d, x, rank, 1, s + 1, cps, reorth=reorth, batch=batch) for s in range(seeds)]
    f_u = [run_float(d, x, rank, 1, s + 1, cps) for s in range(seeds)]
    log(f"  {n}x{m}: unbiased C + float64 over {seeds} seeds {time.perf_counter() - t0:.1f} s")
    rows = []
    for t in cps:
        g = sums[t]
        ce, fe = rel(c_b[t][0], g), rel(f_b[t][0], g)
        row = {
            "terms": t,
            "best_rank_r_rel_err": best_rank_error(g, rank),
            "biased": {"c_rel_err": ce, "float_rel_err": fe, "ratio": ce / fe if fe > 0 else float("inf"),
                       "c_minus_float_rel": float(np.linalg.norm(c_b[t][0] - f_b[t][0]) / np.linalg.norm(g)),
                       "c_orth_l": c_b[t][1], "c_orth_r": c_b[t][2], "float_orth_l": f_b[t][1], "float_orth_r": f_b[t][2]},
        }
        if twin:
            row["biased"]["twin_equal"] = c_b[t][3]
        if seeds >= 2:
            row["unbiased"] = {
                "seeds": seeds,
                "c": mc_deviation([run[t][0] for run in c_u], g),
                "float": mc_deviation([run[t][0] for run in f_u], g),
                "c_orth_max": max(max(run[t][1], run[t][2]) for run in c_u),
                "c_rel_err_median": float(np.median([rel(run[t][0], g) for run in c_u])),
                "float_rel_err_median": float(np.median([rel(run[t][0], g) for run in f_u])),
            }
        rows.append(row)
    return {"n": n, "m": m, "rank": rank, "reorth": reorth, "batch": batch, "checkpoints": rows,
            "state_bytes": ref.state_get_size(n, m, rank), "bases_bytes": 2 * rank * (n + m)}


def print_measure(res: dict) -> None:
    print(f"\n{res['n']} x {res['m']}, r = {res['rank']}"
          f"{', re-orthonormalised every %d terms' % res['reorth'] if res.get('reorth') else ''}"
          f"{', C in batches of %d terms' % res['batch'] if res.get('batch', 1) > 1 else ''}: biased (kappa off)"
          f"{'' if 'unbiased' not in res['checkpoints'][0] else ' and unbiased over %d seeds' % res['checkpoints'][0]['unbiased']['seeds']}")
    print(f"{'terms':>6} {'best r':>9} {'C err':>9} {'f64 err':>9} {'C/f64':>7} {'C orth L':>9} {'C orth R':>9}"
          f" {'f64 orth':>9} {'C unb SE':>9} {'f64 unbSE':>9}")
    for row in res["checkpoints"]:
        b = row["biased"]
        u = row.get("unbiased")
        us = f"{u['c']['dev_in_se']:9.2f} {u['float']['dev_in_se']:9.2f}" if u else f"{'-':>9} {'-':>9}"
        tw = "" if "twin_equal" not in b else ("  twin ==" if b["twin_equal"] else "  TWIN DIFFERS")
        print(f"{row['terms']:6d} {row['best_rank_r_rel_err']:9.2e} {b['c_rel_err']:9.2e} {b['float_rel_err']:9.2e} "
              f"{b['ratio']:7.2f} {b['c_orth_l']:9.2e} {b['c_orth_r']:9.2e} {max(b['float_orth_l'], b['float_orth_r']):9.2e} {us}{tw}")


# ---- part 2: the numerics study (float64 emulation of storage and rounding schemes) ----------------


@dataclass(frozen=True)
class Scheme:
    """How a basis is stored between terms.

    bits: mantissa width (0 = float64, no rounding); per: "block" (one scale per basis, as the C)
    or "column" (one scale per column); scale: "pow2" (largest mantissa in [2^(bits-2), 2^(bits-1)),
    as the C) or "full" (scale = peak / (2^(bits-1) - 1), kept as a 16-bit mantissa rounded up and
    an exponent); rounding: "nearest" (half away from zero, as the C) or "stochastic";
    reorth: every this many terms, re-orthonormalise both bases (two Gram-Schmidt passes on the
    stored columns, the triangular factors folded into the core, an r x r SVD, a rotation);
    top_bits: mantissa width of the first column (the largest singular value's, which carries most
    of the estimate), stored with a scale of its own; 0 = as the others.
    top_shared: the first column's extra bits lie below the scale it has without them instead (the
    basis' one scale; per="column": its own), no scale of its own: its mantissa is the others' with
    top_bits - bits more fraction bits, a plane of low bits beside the int16 bases.
    batch: terms per update (edgetrain.reference.lrt_float.accumulate_batch: one rank-(r + batch)
    core, SVD, truncation and rotation, so the bases are rounded once per batch); 1 = per term.
    res_bits: mantissa width of the residual vectors during the projection (one 2^e per vector,
    round to nearest, after every column's update; batched: after every pass); 0 = unrounded (the C
    keeps int32 residuals of 28 bits, close enough to exact here).
    loops: not an emulation but the integer algorithm of scheme (f') per term, its loops run as these
    options say (bench/lrt_fullrange.py: the twin's steps with that storage); the other fields then
    only describe it (bytes, work). None: the emulation.
    """

    name: str
    label: str
    bits: int = 16
    per: str = "block"
    scale: str = "pow2"
    rounding: str = "nearest"
    reorth: int = 0
    top_bits: int = 0
    batch: int = 1
    res_bits: int = 0
    top_shared: bool = False
    loops: lrt_fullrange.Loops | None = None

    def bytes_per_layer(self, n: int, m: int, r: int) -> tuple[int, int]:
        """(bytes of the two bases, extra header bytes beyond today's 56) of one layer."""
        if self.bits == 0:
            return 8 * r * (n + m), 0
        wide = self.top_bits if self.top_bits and r > 1 else self.bits
        base = ((self.bits * (r - 1) + wide) * (n + m) + 7) // 8
        if self.per == "column":  # an int8 exponent per column (+ a 16-bit multiplier when full range)
            extra = 2 * r * (3 if self.scale == "full" else 1)
        else:  # today's block exponents are in the header; full range adds a 16-bit multiplier per basis
            extra = 4 if self.scale == "full" else 0
            if wide != self.bits and not self.top_shared:  # the first column's own exponent (and multiplier)
                extra += 2 * (3 if self.scale == "full" else 1)
        return base, extra

    def work(self, n: int, m: int, r: int) -> dict:
        """Extra work per term beyond today's, in multiply-adds and random draws (counted, not timed).
        Wider mantissas (bits > 16) keep the arithmetic and widen loads, stores and the int64 headroom."""
        q = r + 1
        base = (n + m) * (4 * r + 2 * q * r)
        k = self.batch
        # a batch of k: the same projection per term, two passes of Gram-Schmidt among the k
        # residuals (k (k - 1) / 2 dot + axpy pairs each), the two rotation passes once per batch
        extra_mac = (n + m) * (4 * r + 2 * (k - 1) + (2 * (r + k) * r + k - 1) // k) - base
        draws = 0
        if self.bits and self.scale == "full":
            extra_mac += (n + m) * r // k  # one multiply by the reciprocal scale per entry when rounding
        if self.bits and self.rounding == "stochastic":
            draws = (n + m) * r // k  # one random number per stored entry and rounding (16 bits: half a u32 draw)
        if self.reorth:
            extra_mac += (n + m) * (4 * r * r + r * r) // self.reorth  # 2 GS passes (dot + axpy) + rotation, amortised
        return {"base_mac": base, "extra_mac": extra_mac, "extra_mac_rel": extra_mac / base,
                "random_draws": draws, "random_u32_draws": (draws + 1) // 2}


def _int_fp(loops=lrt_fullrange.Loops()) -> dict:
    """The fields of an integer scheme (f'): its storage (for bytes and work) and its loops."""
    return {"scale": "full", "top_bits": 18, "top_shared": True, "loops": loops}


Loops = lrt_fullrange.Loops

SCHEMES = [
    Scheme("float64", "float64, no rounding (the target's yardstick)", bits=0),
    Scheme("block16", "int16, block 2^e exponent, nearest (today's C)"),
    Scheme("block16-full", "(a) int16, block scale to the full range", scale="full"),
    Scheme("col16-full", "(a) int16, per-column scale to the full range", per="column", scale="full"),
    Scheme("block16-sr", "(b) int16, block 2^e exponent, stochastic rounding", rounding="stochastic"),
    Scheme("col16-full-sr", "(a)+(b) int16, per-column full-range scale, stochastic", per="column", scale="full",
           rounding="stochastic"),
    Scheme("block16-reorth100", "(c) int16 block 2^e, re-orthonormalise every 100 terms", reorth=100),
    Scheme("block16-sr-reorth100", "(b)+(c) stochastic, re-orthonormalise every 100 terms", rounding="stochastic",
           reorth=100),
    Scheme("col16-full-sr-reorth100", "(a)+(b)+(c) per-column full range, stochastic, reorth 100", per="column",
           scale="full", rounding="stochastic", reorth=100),
    Scheme("block16-full-sr", "(a)+(b) int16, block full-range scale, stochastic", scale="full", rounding="stochastic"),
    Scheme("col16-full-sr-reorth1000", "(a)+(b)+(c) per-column full range, stochastic, reorth 1000", per="column",
           scale="full", rounding="stochastic", reorth=1000),
    Scheme("block18", "(e) 18-bit mantissas, block 2^e, nearest", bits=18),
    Scheme("col18-full-sr-reorth100", "(e)+(a)+(b)+(c) 18-bit, per-column full range, stochastic, reorth 100",
           bits=18, per="column", scale="full", rounding="stochastic", reorth=100),
    Scheme("block16-top18-reorth100", "(f)+(c) column 1 at 18 bits (own 2^e), the rest int16 block 2^e, reorth 100",
           top_bits=18, reorth=100),
    Scheme("col16-full-top17", "(f)+(a) column 1 at 17 bits, per-column full range, nearest", per="column",
           scale="full", top_bits=17),
    Scheme("col16-full-top17-reorth1000", "(f)+(a)+(c) column 1 at 17 bits, per-column full range, reorth 1000",
           per="column", scale="full", top_bits=17, reorth=1000),
    Scheme("col16-full-sr-top17-reorth1000", "(f)+(a)+(b)+(c) column 1 at 17 bits, per-column full range, stochastic, "
           "reorth 1000", per="column", scale="full", rounding="stochastic", top_bits=17, reorth=1000),
    Scheme("block16-full-top17-reorth1000", "(f)+(a)+(c) column 1 at 17 bits (own scale), block full range, "
           "reorth 1000", scale="full", top_bits=17, reorth=1000),
    Scheme("block16-full-top18s", "(f')+(a) column 1 at 18 bits on the block full-range scale, nearest", scale="full",
           top_bits=18, top_shared=True),
    Scheme("block16-full-top17s-reorth1000", "(f')+(a)+(c) column 1 at 17 bits on the block full-range scale, "
           "reorth 1000", scale="full", top_bits=17, top_shared=True, reorth=1000),
    Scheme("block16-full-top18s-reorth1000", "(f')+(a)+(c) column 1 at 18 bits on the block full-range scale, "
           "reorth 1000", scale="full", top_bits=18, top_shared=True, reorth=1000),
    Scheme("block16-full-top18s-reorth500", "(f')+(a)+(c) column 1 at 18 bits on the block full-range scale, "
           "reorth 500", scale="full", top_bits=18, top_shared=True, reorth=500),
    Scheme("block16-full-top18s-reorth250", "(f')+(a)+(c) column 1 at 18 bits on the block full-range scale, "
           "reorth 250", scale="full", top_bits=18, top_shared=True, reorth=250),
    Scheme("block16-top18s-reorth1000", "(f')+(c) column 1 at 18 bits on the block 2^e, reorth 1000", top_bits=18,
           top_shared=True, reorth=1000),
    Scheme("int-full-top18s", "(f') in integers (bench/lrt_fullrange.py), no re-orthonormalisation", **_int_fp()),
    Scheme("int-full-top18s-reorth500", "(f') in integers, re-orthonormalised every 500 terms", reorth=500,
           **_int_fp()),
    Scheme("int-full-top18s-reorth250", "(f') in integers, re-orthonormalised every 250 terms", reorth=250,
           **_int_fp()),
    Scheme("int-full-top18s-reorth500-res16", "(f')+(h) in integers, int16 residuals updated in place, reorth 500",
           reorth=500, **_int_fp(Loops(res16=True))),
    Scheme("int-full-top18s-reorth500-cgs16", "(f')+(h) in integers, a classical first pass from the input, then "
           "int16 residuals, reorth 500", reorth=500, **_int_fp(Loops(res16=True, cgs_first=True))),
    Scheme("int-full-top18s-reorth500-cgs16-1pass", "(f')+(h) in integers, classical first pass, int16 residuals, "
           "one rotation pass, reorth 500", reorth=500, **_int_fp(Loops(res16=True, cgs_first=True, one_pass=True))),
    Scheme("int-full-top18s-reorth500-cgs16-1pass-w20", "the same, the store pass's weights at 20 bits", reorth=500,
           **_int_fp(Loops(res16=True, cgs_first=True, one_pass=True, weight_bits=20))),
    Scheme("int-full-top18s-reorth500-cgs16-1pass-w16", "the same, the store pass's weights at 16 bits", reorth=500,
           **_int_fp(Loops(res16=True, cgs_first=True, one_pass=True, weight_bits=16))),
    Scheme("int-full-top18s-reorth500-cgs16-1pass-w20-c16", "the same with 20-bit weights, the projection's update "
           "scalars at 16 bits", reorth=500,
           **_int_fp(Loops(res16=True, cgs_first=True, one_pass=True, weight_bits=20, coef_bits=16))),
    Scheme("float64-b4", "float64, batches of 4 terms", bits=0, batch=4),
    Scheme("float64-b8", "float64, batches of 8 terms", bits=0, batch=8),
    Scheme("block16-b4", "(g) today's int16 block 2^e, batches of 4 terms", batch=4),
    Scheme("block16-b8", "(g) today's int16 block 2^e, batches of 8 terms", batch=8),
    Scheme("block16-b12", "(g) today's int16 block 2^e, batches of 12 terms", batch=12),
    Scheme("block16-b16", "(g) today's int16 block 2^e, batches of 16 terms", batch=16),
    Scheme("block16-full-b8", "(g)+(a) int16, block scale to the full range, batches of 8", scale="full", batch=8),
    Scheme("block16-sr-b8", "(g)+(b) int16 block 2^e, stochastic, batches of 8", rounding="stochastic", batch=8),
    Scheme("block16-b8-reorth1000", "(g)+(c) today's int16, batches of 8, reorth 1000", batch=8, reorth=1000),
    Scheme("col16-full-sr-top17-reorth1000-b8", "(f)+(a)+(b)+(c)+(g) the study's scheme, batches of 8", per="column",
           scale="full", rounding="stochastic", top_bits=17, reorth=1000, batch=8),
    Scheme("block16-res16", "(h) today's int16 bases, int16 residuals in the projection", res_bits=16),
    Scheme("block16-full-b8-res16", "(g)+(a)+(h) full-range block scale, batches of 8, int16 residuals", scale="full",
           batch=8, res_bits=16),
    Scheme("block16-b12-res16", "(g)+(h) today's int16 bases, batches of 12, int16 residuals", batch=12, res_bits=16),
    Scheme("block24", "(e) 24-bit mantissas, block 2^e, nearest", bits=24),
    Scheme("block32", "(e) 32-bit mantissas, block 2^e, nearest", bits=32),
]


def _round_up16(v: np.ndarray) -> np.ndarray:
    """v rounded up to a 16-bit mantissa (how a full-range scale would be stored)."""
    e = np.floor(np.log2(v)) - 15
    return np.ceil(v / 2.0**e) * 2.0**e


def _scale(q: np.ndarray, sch: Scheme) -> tuple[np.ndarray, np.ndarray]:
    """(scale, live): the scale of each column of q (per="block": one for all, shape (1, 1)) under
    sch's format, and whether that column (or the block) holds anything; the scale is 1.0 where not."""
    top = 2.0 ** (sch.bits - 1) - 1
    peak = np.max(np.abs(q), axis=0, keepdims=True) if sch.per == "column" else np.full((1, 1), np.max(np.abs(q)))
    live = peak > 0
    peak = np.where(live, peak, 1.0)
    if sch.scale == "pow2":
        return 2.0 ** (np.floor(np.log2(peak)) - (sch.bits - 2)), live
    return _round_up16(peak / top), live


def _round_mant(v: np.ndarray, sch: Scheme, rng: np.random.Generator, bits: int) -> np.ndarray:
    """v (in units of the scale) to an integer mantissa of `bits` bits, rounded as sch says."""
    top = 2.0 ** (bits - 1) - 1
    if sch.rounding == "nearest":
        mant = np.sign(v) * np.floor(np.abs(v) + 0.5)
    else:
        mant = np.floor(v + rng.random(v.shape))
    return np.clip(mant, -top - 1, top)


def quantize(q: np.ndarray, sch: Scheme, rng: np.random.Generator) -> np.ndarray:
    if sch.bits == 0:
        return q
    if sch.top_bits and sch.top_shared and q.shape[1] > 1:  # the block scale; column 1 on a finer grid of it
        rest = replace(sch, top_bits=0, top_shared=False)
        out = quantize(q, rest, rng)
        fine = _scale(q, rest)[0][:, :1] / 2.0 ** (sch.top_bits - sch.bits)
        out[:, :1] = _round_mant(q[:, :1] / fine, sch, rng, sch.top_bits) * fine
        return out
    if sch.top_bits and q.shape[1] > 1:  # the first column on its own scale and width, then the rest
        rest = replace(sch, top_bits=0)
        return np.column_stack([quantize(q[:, :1], replace(rest, bits=sch.top_bits), rng), quantize(q[:, 1:], rest, rng)])
    scale, live = _scale(q, sch)
    return np.where(live, _round_mant(q / scale, sch, rng, sch.bits) * scale, 0.0)


class EmuState:
    def __init__(self, n: int, m: int, r: int):
        self.ql, self.qr, self.c, self.r = np.zeros((n, r)), np.zeros((m, r)), np.zeros(r), r


def round_residual(res: np.ndarray, bits: int) -> np.ndarray:
    """Each column of res (a vector: 1-d, or len x k) to a bits-wide mantissa on its own power of two
    (largest mantissa in [2^(bits-2), 2^(bits-1)), as the bases' block exponent), half away from zero."""
    if bits == 0:
        return res
    peak = np.max(np.abs(res), axis=0)
    live = peak > 0
    scale = 2.0 ** (np.floor(np.log2(np.where(live, peak, 1.0))) - (bits - 2))
    v = res / scale
    return np.where(live, np.sign(v) * np.floor(np.abs(v) + 0.5) * scale, 0.0)


def _mgs(q: np.ndarray, vec: np.ndarray, res_bits: int = 0) -> tuple[np.ndarray, np.ndarray]:
    res = vec.copy()
    coef = np.zeros(q.shape[1])
    for _ in range(2):
        for j in range(q.shape[1]):
            a = q[:, j] @ res
            coef[j] += a
            res = round_residual(res - a * q[:, j], res_bits)
    return coef, res


def _svd_zeroed(core: np.ndarray):
    u, s, vt = np.linalg.svd(core)
    v = vt.T
    tiny = flt.ZERO_SIGMA_REL * s[0]
    zero = s <= tiny
    s = np.where(zero, 0.0, s)
    u[:, zero] = 0.0
    v[:, zero] = 0.0
    return s, u, v


def emu_accumulate(st: EmuState, d: np.ndarray, x: np.ndarray, unbiased: bool, sch: Scheme,
                   rng: np.random.Generator) -> None:
    if not d.any() or not x.any():
        return
    r = st.r
    a, res_l = _mgs(st.ql, d, sch.res_bits)
    b, res_r = _mgs(st.qr, x, sch.res_bits)
    rho_l, rho_r = float(np.linalg.norm(res_l)), float(np.linalg.norm(res_r))
    core = np.zeros((r + 1, r + 1))
    core[:r, :r] = np.diag(st.c)
    core += np.outer(np.append(a, rho_l), np.append(b, rho_r))
    s, u, v = _svd_zeroed(core)
    bits = int(rng.integers(0, 2**32)) if unbiased and s[-1] > 0 else 0
    _, c_new, t = flt.truncate(s, r, unbiased, bits)
    uh = res_l / rho_l if rho_l > 0 else np.zeros_like(res_l)
    wh = res_r / rho_r if rho_r > 0 else np.zeros_like(res_r)
    st.ql = quantize(np.column_stack([st.ql, uh]) @ (u @ t), sch, rng)
    st.qr = quantize(np.column_stack([st.qr, wh]) @ (v @ t), sch, rng)
    st.c = c_new


def emu_accumulate_batch(st: EmuState, d: np.ndarray, x: np.ndarray, unbiased: bool, sch: Scheme,
                         rng: np.random.Generator) -> None:
    """k terms (rows of d, x) at once, as lrt_float.accumulate_batch, the bases rounded after the rotation."""
    live = np.any(d != 0, axis=1) & np.any(x != 0, axis=1)
    if not live.any():
        return
    fs = flt.FloatState(st.ql.shape[0], st.qr.shape[0], st.r, st.ql, st.qr, st.c)
    core, u_l, u_r = flt.batch_core(fs, d[live], x[live],
                                    round_res=(lambda v: round_residual(v, sch.res_bits)) if sch.res_bits else None)
    s, u, v = _svd_zeroed(core)
    c_new, t = flt.truncate_many(s, st.r, unbiased, lambda: int(rng.integers(0, 2**32)))
    st.ql = quantize(np.column_stack([st.ql, u_l]) @ (u @ t), sch, rng)
    st.qr = quantize(np.column_stack([st.qr, u_r]) @ (v @ t), sch, rng)
    st.c = c_new


def emu_reorth(st: EmuState, sch: Scheme, rng: np.random.Generator) -> None:
    """Re-orthonormalise the stored bases: Q = Q' R (two MGS passes), core R_L diag(c) R_R^T, SVD."""
    keep = (st.c > 0) & np.any(st.ql != 0, axis=0) & np.any(st.qr != 0, axis=0)
    if not keep.any():
        return
    r = st.r
    ql, rl = np.linalg.qr(st.ql[:, keep])
    qr, rr = np.linalg.qr(st.qr[:, keep])
    u, s, vt = np.linalg.svd(rl @ np.diag(st.c[keep]) @ rr.T)
    kk = int(keep.sum())
    st.ql = np.zeros_like(st.ql)
    st.qr = np.zeros_like(st.qr)
    st.ql[:, :kk] = quantize(ql @ u, sch, rng)
    st.qr[:, :kk] = quantize(qr @ vt.T, sch, rng)
    st.c = np.concatenate([s, np.zeros(r - kk)])


def emu_run(d, x, rank: int, unbiased: bool, sch: Scheme, seed: int, checkpoints: list) -> dict:
    """{t: (estimate, orth_l, orth_r, drift)} at each checkpoint t. drift is the largest
    max|Q^T Q - I| of either basis just before a re-orthonormalisation so far (0 without one): the
    checkpoints fall on multiples of the re-orthonormalisation interval, where the bases have just
    been made orthonormal, so orth_l and orth_r alone would hide the drift in between."""
    if sch.loops is not None:
        return lrt_fullrange.run(d, x, D_EXP, X_EXP, rank, unbiased, seed, checkpoints, sch.reorth, sch.loops)
    rng = np.random.default_rng(1000 + seed)
    st = EmuState(d.shape[1], x.shape[1], rank)
    dv, xv = d.astype(np.float64) * 2.0**D_EXP, x.astype(np.float64) * 2.0**X_EXP
    out, done, drift = {}, 0, 0.0
    for t in checkpoints:
        for i in range(done, t, sch.batch):  # a batch never spans a checkpoint
            j = min(i + sch.batch, t)
            if sch.batch == 1:
                emu_accumulate(st, dv[i], xv[i], unbiased, sch, rng)
            else:
                emu_accumulate_batch(st, dv[i:j], xv[i:j], unbiased, sch, rng)
            if sch.reorth and j // sch.reorth > i // sch.reorth:
                drift = max(drift, orth_error(st.ql), orth_error(st.qr))
                emu_reorth(st, sch, rng)
        done = t
        out[t] = ((st.ql * st.c) @ st.qr.T, orth_error(st.ql), orth_error(st.qr), drift)
    return out


TARGET_RATIO, TARGET_ORTH, TARGET_SE, TARGET_BYTES = 1.2, 2e-3, 2.0, 1.05


def run_study(n: int, m: int, rank: int, terms: int, unb_terms: int, seeds: int, spec: StreamSpec, schemes, log,
              repeats: int = 1) -> dict:
    """Each scheme on one stream: biased (checkpoints up to ``terms``; a stochastic scheme ``repeats``
    times with different rounding draws, worst case judged), unbiased at ``unb_terms`` over ``seeds``."""
    cps = sorted({t for t in DEFAULT_CHECKPOINTS if t <= terms} | {terms})
    d, x = low_rank_stream(n, m, max(terms, unb_terms), spec)
    sums = {t: exact_prefix_sum(d, x, t) for t in cps}
    g_unb = exact_prefix_sum(d, x, unb_terms)
    budget = 2 * rank * (n + m)
    rows, float_err = [], {}
    for sch in schemes:
        t0 = time.perf_counter()
        reps = repeats if sch.rounding == "stochastic" else 1
        runs = [emu_run(d, x, rank, False, sch, 101 * i, cps) for i in range(reps)]
        errs = {t: [rel(b[t][0], sums[t]) for b in runs] for t in cps}
        if sch.bits == 0 and sch.batch == 1:  # the yardstick: the per-term algorithm unrounded
            float_err = {t: errs[t][0] for t in cps}
        unb = [emu_run(d, x, rank, True, sch, s + 1, [unb_terms])[unb_terms][0] for s in range(seeds)] if seeds >= 2 else []
        mc = mc_deviation(unb, g_unb) if unb else None
        nbytes, extra = sch.bytes_per_layer(n, m, rank)
        row = {
            "scheme": sch.name, "label": sch.label,
            "biased_runs": reps,
            "checkpoints": [{"terms": t, "rel_err": float(np.mean(errs[t])), "rel_err_max": max(errs[t]),
                             "ratio_to_float64": float(np.mean(errs[t])) / float_err[t] if float_err else None,
                             "ratio_max": max(errs[t]) / float_err[t] if float_err else None,
                             "orth_l": max(b[t][1] for b in runs), "orth_r": max(b[t][2] for b in runs),
                             "orth_drift": max(b[t][3] for b in runs)} for t in cps],
            "unbiased": None if mc is None else {"terms": unb_terms, "seeds": seeds, **mc},
            "bases_bytes": nbytes, "extra_header_bytes": extra, "bytes_vs_2r(n+m)": nbytes / budget, "work": sch.work(n, m, rank),
        }
        last = row["checkpoints"][-1]
        row["meets"] = {
            "error_le_1.2x_float64": bool(last["ratio_max"] is not None and last["ratio_max"] <= TARGET_RATIO),
            "orth_lt_2e-3": bool(max(last["orth_l"], last["orth_r"], last["orth_drift"]) < TARGET_ORTH),
            "unbiased_within_2se": bool(mc is not None and mc["dev_in_se"] <= TARGET_SE),
            "bytes_le_1.05x": bool(nbytes <= TARGET_BYTES * budget),
        }
        row["meets_all"] = all(row["meets"].values())
        rows.append(row)
        log(f"  study {sch.name}: {time.perf_counter() - t0:.1f} s")
    return {"n": n, "m": m, "rank": rank, "terms": terms, "unbiased_terms": unb_terms, "seeds": seeds, "repeats": repeats,
            "targets": {"ratio": TARGET_RATIO, "orth": TARGET_ORTH, "dev_in_se": TARGET_SE, "bytes": TARGET_BYTES},
            "schemes": rows}


def print_study(res: dict) -> None:
    print(f"\nStudy (float64 emulation; int-* in integers) {res['n']} x {res['m']}, r = {res['rank']}: biased at {res['terms']} terms "
          f"({res['repeats']} rounding draws of a stochastic scheme; 'max x' the worst), "
          f"unbiased at {res['unbiased_terms']} terms over {res['seeds']} seeds")
    print(f"{'scheme':26} {'err':>9} {'x f64':>6} {'max x':>6} {'orth L':>9} {'orth R':>9} {'drift':>9} {'unb SE':>7} {'bytes':>6} {'+work':>6} {'draws':>6} ok")
    for row in res["schemes"]:
        c = row["checkpoints"][-1]
        u = row["unbiased"]
        print(f"{row['scheme']:26} {c['rel_err']:9.2e} {c['ratio_to_float64']:6.2f} {c['ratio_max']:6.2f} {c['orth_l']:9.2e} {c['orth_r']:9.2e} "
              f"{c['orth_drift']:9.2e} {u['dev_in_se'] if u else float('nan'):7.2f} {row['bytes_vs_2r(n+m)']:6.3f} {row['work']['extra_mac_rel']:6.3f} "
              f"{row['work']['random_draws']:6d} {'yes' if row['meets_all'] else 'no'}")


# ---- command line -----------------------------------------------------------------------------------


def parse_shapes(text: str) -> list:
    out = []
    for part in text.split(","):
        try:
            n, m = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise SystemExit(f"--shapes: {part!r} is not NxM (e.g. 128x1152)") from None
        ref.check_dims(n, m, 1)
        out.append((n, m))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the results as JSON to this file")
    ap.add_argument("--terms", type=int, default=2000, help="terms per stream (default 2000; 10000 is the long run)")
    ap.add_argument("--shapes", default=None, help=f"comma-separated NxM (default {DEFAULT_SHAPES}; study: 128x1152)")
    ap.add_argument("--rank", type=int, default=4, help="accumulator rank r, 1..8 (default 4)")
    ap.add_argument("--seeds", type=int, default=16, help="PRNG seeds for the unbiased mean (0 or 1: skip)")
    ap.add_argument("--k", type=int, default=3, help="rank of the stream's ground truth")
    ap.add_argument("--noise", type=float, default=0.05, help="noise of the stream, relative (default 0.05)")
    ap.add_argument("--reorth", type=int, default=LrtConfig().reorth_terms, metavar="K",
                    help="re-orthonormalise the C's (and twin's) bases every K terms (LrtConfig.reorth_terms; "
                         f"0: never; default {LrtConfig().reorth_terms}, the accumulator's)")
    ap.add_argument("--batch", type=int, default=1, metavar="K",
                    help="feed the C (and twin) K terms per et_lrt_accumulate_batch_u8 call, 1..16 (default 1: per term)")
    ap.add_argument("--twin", action="store_true", help="also run the bit-exact twin (slow) and compare")
    ap.add_argument("--study", action="store_true", help="run the emulation study instead of part 1")
    ap.add_argument("--study-terms", type=int, default=10000, help="study: biased terms (default 10000)")
    ap.add_argument("--study-unbiased-terms", type=int, default=2000, help="study: unbiased terms (default 2000)")
    ap.add_argument("--study-repeats", type=int, default=1,
                    help="study: biased runs of a stochastic scheme, with different rounding draws (worst judged)")
    ap.add_argument("--schemes", default=None, help="study: comma-separated scheme names (default all)")
    args = ap.parse_args(argv)
    if args.reorth < 0:
        raise SystemExit(f"--reorth {args.reorth}: give 0 (never) or a number of terms")
    if args.terms < 1 or args.study_terms < 1 or args.study_unbiased_terms < 1:
        raise SystemExit("--terms, --study-terms and --study-unbiased-terms must be at least 1")
    if not 1 <= args.batch <= ref.BATCH_MAX:
        raise SystemExit(f"--batch {args.batch} is outside 1..{ref.BATCH_MAX}")
    if not 1 <= args.rank <= 8:
        raise SystemExit(f"--rank {args.rank} is outside 1..8")
    spec = StreamSpec(k=args.k, noise=args.noise)
    shapes = parse_shapes(args.shapes or ("128x1152" if args.study else DEFAULT_SHAPES))
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    report = {
        "benchmark": "lrt_accuracy",
        "command": "python bench/lrt_accuracy.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "stream": {"k": spec.k, "decay": spec.decay, "noise": spec.noise, "seed": spec.seed,
                   "delta": "int8 round(25 (U diag(s) z + noise e)) at 2^-9",
                   "x": "uint8 round(128 + 30 (V diag(s) z + noise f)) at 2^-7", "s_i": "decay^i"},
        "host": {"machine": platform.machine(), "python": platform.python_version(),
                 "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
    }
    if args.study:
        names = None if args.schemes is None else set(args.schemes.split(","))
        if names is not None and names - {s.name for s in SCHEMES}:
            raise SystemExit(f"--schemes: unknown {sorted(names - {s.name for s in SCHEMES})}; known: "
                             f"{', '.join(s.name for s in SCHEMES)}")
        schemes = [s for s in SCHEMES if names is None or s.name in names or s.name == "float64"]
        report["study"] = []
        for n, m in shapes:
            res = run_study(n, m, args.rank, args.study_terms, args.study_unbiased_terms, args.seeds, spec, schemes, log,
                            max(1, args.study_repeats))
            print_study(res)
            report["study"].append(res)
    else:
        report["results"] = []
        for n, m in shapes:
            res = measure_shape(n, m, args.rank, args.terms, args.seeds, spec, args.twin, log, args.reorth, args.batch)
            print_measure(res)
            report["results"].append(res)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
