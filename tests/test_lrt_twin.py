"""csrc/src/lrt.c against edgetrain/reference/lrt.py: exact equality.

The pieces (core SVD, truncation) are driven by hypothesis; the whole accumulator by long
streams of rank-1 terms with flushes, for every rank 1..8, biased and unbiased, dense-like and
conv-like shapes, signed and unsigned inputs. After every term the complete state (bases,
exponents, singular values, counters, PRNG) must be identical.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from edgetrain.config import LrtConfig
from edgetrain.lrt import LrtLayer, reference_snapshot
from edgetrain.reference import lrt as ref
from edgetrain.reference.fixed import Prng
from lrt_streams import random_terms, structured_terms

Q30 = 1 << 30
CORE = 1 << 25
SANITIZED = os.environ.get("EDGETRAIN_EXPECT_SANITIZED") == "1"


def c_svd(core, c):
    ffi, lib = core
    q = len(c)
    cin = ffi.new("int32_t[]", [int(v) for row in c for v in row])
    sigma = ffi.new("uint32_t[]", q)
    u = ffi.new("int32_t[]", q * q)
    v = ffi.new("int32_t[]", q * q)
    assert lib.et_lrt_svd(cin, q, sigma, u, v) == 0
    return list(sigma), [[u[i * q + k] for k in range(q)] for i in range(q)], [[v[i * q + k] for k in range(q)] for i in range(q)]


def c_truncate(core, sigma, rank, unbiased, bits):
    ffi, lib = core
    q = rank + 1
    c_out = ffi.new("uint32_t[]", rank)
    t_out = ffi.new("int32_t[]", q * rank)
    p = ffi.new("int *")
    assert lib.et_lrt_truncate(ffi.new("uint32_t[]", list(sigma)), rank, unbiased, bits, c_out, t_out, p) == 0
    return p[0], list(c_out), [[t_out[i * rank + k] for k in range(rank)] for i in range(q)]


# ---- core SVD ---------------------------------------------------------------------


@st.composite
def cores(draw):
    q = draw(st.integers(2, 9))
    kind = draw(st.sampled_from(["random", "diag_rank1", "rank_deficient", "small", "extreme"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "random":
        c = rng.integers(-CORE, CORE + 1, (q, q))
    elif kind == "diag_rank1":  # what the accumulator builds: diag(c, 0) + l r^T
        d = np.sort(rng.integers(0, CORE // 2, q))[::-1]
        d[-1] = 0
        c = np.diag(d) + np.outer(rng.integers(-4096, 4097, q), rng.integers(-4096, 4097, q))
    elif kind == "rank_deficient":
        k = draw(st.integers(1, q - 1))
        c = rng.integers(-3000, 3001, (q, k)) @ rng.integers(-3000, 3001, (k, q))
    elif kind == "small":
        c = rng.integers(-3, 4, (q, q))
    else:
        c = rng.choice([-CORE, 0, CORE], (q, q))
    return np.clip(c, -CORE, CORE).astype(np.int64).tolist()


def reconstruction_error(c, sigma, u, v) -> float:
    um = np.array(u, dtype=np.float64) / Q30
    vm = np.array(v, dtype=np.float64) / Q30
    return float(np.max(np.abs(um @ np.diag(sigma) @ vm.T - np.array(c, dtype=np.float64))))


@given(cores())
@example([[0, 0], [0, 0]])
@example([[CORE, CORE], [CORE, CORE]])
@example([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
@example([[5, 0, 0], [0, 0, 0], [0, 0, 7]])
def test_svd_matches_twin_and_decomposes(core, twin, c):
    got = c_svd(core, c)
    twin.equal(got, ref.svd(c), "et_lrt_svd")
    sigma, u, v = got
    q = len(c)
    assert sigma == sorted(sigma, reverse=True)
    # Spec-level properties: C = U diag(sigma) V^T within the integer rounding (entries of
    # C are integers up to 2^25; U, V are Q30), and orthonormal U, V on the non-zero part.
    assert reconstruction_error(c, sigma, u, v) <= 64 + 4e-7 * max(1, max(abs(x) for row in c for x in row))
    keep = np.array(sigma) > 0
    for mat in (u, v):
        m = np.array(mat, dtype=np.float64)[:, keep] / Q30
        assert np.max(np.abs(m.T @ m - np.eye(int(keep.sum()))), initial=0.0) < 1e-6
        assert not np.any(np.array(mat)[:, ~keep])  # zero singular value -> zero column


def test_svd_singular_values_match_numpy_on_full_rank_cores(core):
    rng = np.random.default_rng(3)
    for q in range(2, 10):
        for _ in range(20):
            c = rng.integers(-CORE, CORE + 1, (q, q))
            sigma, _, _ = c_svd(core, c.tolist())
            want = np.linalg.svd(c.astype(np.float64), compute_uv=False)
            # One-sided Jacobi with 8 sweeps at most: absolute accuracy a few units of the
            # 2^25 entry scale (docs/lrt.md).
            assert np.max(np.abs(np.array(sigma) - want)) <= 1e-6 * want[0] + 8


# ---- truncation --------------------------------------------------------------------


@st.composite
def sigmas(draw):
    rank = draw(st.integers(1, 8))
    vals = draw(st.lists(st.integers(0, 2**28), min_size=rank + 1, max_size=rank + 1))
    if draw(st.booleans()):
        vals = [draw(st.sampled_from([0, 1, 2**20, 2**28]))] * (rank + 1)
    return rank, sorted(vals, reverse=True)


@given(sigmas(), st.integers(0, 1), st.integers(0, 2**32 - 1))
def test_truncate_matches_twin(core, twin, rs, unbiased, bits):
    rank, sigma = rs
    got = c_truncate(core, sigma, rank, unbiased, bits)
    twin.equal(got, ref.truncate(sigma, rank, unbiased, bits), "et_lrt_truncate")
    p, c_new, t = got
    tm = np.array(t, dtype=np.float64) / Q30
    # orthonormal columns up to Q30 rounding: x0 is rounded to 2^-30 and H divides by
    # v_1 in [-1, -0.29], so about 10 units of 2^-30 at worst (measured over 60k draws): bound 2^-25
    assert np.max(np.abs(tm.T @ tm - np.eye(rank))) < 2.0**-25
    if p < rank + 1:  # mixing happened: the expectation of T diag(c) T^T is diag(sigma)
        k = rank + 1 - p
        assert c_new[p - 1 :] == [c_new[p - 1]] * k


# ---- whole streams -------------------------------------------------------------------


def run_stream(twin, *, n, m, rank, unbiased, kind, steps, terms_per_sample, x_signed, seed, rho_min_ppm=10000,
               kappa_th=100, stream="structured"):
    """Feed identical terms to the C and the twin; compare the whole state after every term and
    every flush (info, rows, trackers), apply accepted updates to a weight matrix, reset."""
    cfg = LrtConfig(rank=rank, unbiased=unbiased, batch_conv=2, batch_dense=100, rho_min_ppm=rho_min_ppm,
                     kappa_th=kappa_th)
    c = LrtLayer(n, m, cfg, kind=kind, seed=seed)
    st_ = ref.state_init(n, m, cfg, kind)
    prng, norms = Prng(seed), ref.norms_init()
    rng = np.random.default_rng(seed)
    w_c = rng.integers(-128, 128, (n, m)).astype(np.int8)
    w_t = w_c.copy()
    batch = cfg.batch_conv if kind == ref.KIND_CONV else cfg.batch_dense
    gen = structured_terms if stream == "structured" else random_terms
    d_exp, x_exp = (-11, -6) if x_signed else (-10, -7)
    flushes = applied = 0
    for t, (d, x) in enumerate(gen(rng, n, m, steps, x_signed=x_signed)):
        c.accumulate(d, d_exp, x, x_exp)
        (ref.accumulate_s8 if x_signed else ref.accumulate_u8)(st_, cfg, d, d_exp, x, x_exp, prng)
        twin.equal(c.snapshot(), reference_snapshot(st_, prng, norms), f"state after term {t}")
        if (t + 1) % (terms_per_sample * batch) == 0:
            info = c.flush_begin()
            fl = ref.flush_begin(st_, cfg, norms)
            twin.equal(info, {"g": fl.g, "shift": fl.shift, "nonzero": fl.nonzero, "apply": fl.apply,
                              "eta": fl.eta, "div_l": fl.div_l, "div_r": fl.div_r}, f"flush after term {t}")
            flushes += 1
            if fl.apply:
                applied += 1
                rows = c.delta_matrix()
                twin.equal(rows.tolist(), ref.delta_matrix(st_, fl).tolist(), f"dW after term {t}")
                assert int(np.count_nonzero(rows)) == fl.nonzero
                w_c = np.clip(w_c.astype(np.int16) - rows, -128, 127).astype(np.int8)
                w_t = np.clip(w_t.astype(np.int16) - ref.delta_matrix(st_, fl), -128, 127).astype(np.int8)
                c.reset()
                ref.reset(st_)
            twin.equal(c.snapshot(), reference_snapshot(st_, prng, norms), f"state after flush {flushes}")
    assert np.array_equal(w_c, w_t)
    return flushes, applied, st_


DENSE = dict(n=10, m=64, kind=ref.KIND_DENSE, terms_per_sample=1)
CONV = dict(n=16, m=72, kind=ref.KIND_CONV, terms_per_sample=120)


@pytest.mark.slow
@pytest.mark.parametrize("rank", range(1, 9))
@pytest.mark.parametrize("unbiased", [0, 1])
@pytest.mark.parametrize("shape", ["dense", "conv"])
def test_stream_1200_terms_every_rank(twin, rank, unbiased, shape):
    """>= 1000 terms with several flushes (dense: every 100 terms; conv: 120 terms per sample,
    B = 2 samples) for every rank, both truncations, both shapes; half the configurations use
    a high rho_min so that flush attempts also fail and the effective batch grows."""
    params = DENSE if shape == "dense" else CONV
    flushes, applied, _ = run_stream(twin, rank=rank, unbiased=unbiased, steps=1200, x_signed=(rank % 3 == 0),
                                     seed=100 * rank + 10 * unbiased + (shape == "conv"),
                                     rho_min_ppm=10000 if rank % 2 else 400000, **params)
    assert flushes >= 5
    assert applied >= 1


@pytest.mark.parametrize("rank", [1, 2, 5, 8])
def test_stream_quick_all_features(twin, rank):
    """A short version of the long stream test (it also runs in the sanitizer pass)."""
    steps = 90 if SANITIZED else 240
    flushes, applied, _ = run_stream(twin, n=6, m=20, rank=rank, unbiased=rank % 2, kind=ref.KIND_CONV,
                                     terms_per_sample=15, steps=steps, x_signed=rank > 4, seed=rank)
    assert flushes >= 3 and applied >= 1


@pytest.mark.parametrize("rank", [1, 4, 8])
def test_stream_random_terms_and_no_kappa(twin, rank):
    """Unstructured terms with the kappa rule off: every term enters the core and rotates."""
    steps = 40 if SANITIZED else 150
    _, _, st_ = run_stream(twin, n=9, m=13, rank=rank, unbiased=1, kind=ref.KIND_DENSE, terms_per_sample=1,
                           steps=steps, x_signed=False, seed=7 + rank, kappa_th=0, stream="random")
    assert st_.skipped == 0


@pytest.mark.parametrize("n,m", [(1, 1), (1, 7), (7, 1), (2, 3)])
@pytest.mark.parametrize("unbiased", [0, 1])
def test_degenerate_shapes(twin, n, m, unbiased):
    """Layers thinner than the rank: most basis slots stay empty, the core is rank deficient."""
    run_stream(twin, n=n, m=m, rank=4, unbiased=unbiased, kind=ref.KIND_DENSE, terms_per_sample=1, steps=60,
               x_signed=bool(unbiased), seed=n * 10 + m, kappa_th=0)


def test_edge_terms_one_by_one(core, twin):
    """Zero, tiny, saturated and repeated terms, with and without the kappa rule."""
    for kappa in (0, 100):
        cfg = LrtConfig(rank=3, kappa_th=kappa)
        c = LrtLayer(5, 6, cfg, seed=11)
        st_, prng = ref.state_init(5, 6, cfg), Prng(11)
        one = np.array([0, 0, 1, 0, 0], np.int8)
        terms = [
            (np.zeros(5, np.int8), np.full(6, 255, np.uint8)),  # zero delta
            (np.full(5, -128, np.int8), np.zeros(6, np.uint8)),  # zero x
            (one, np.array([0, 0, 0, 0, 0, 1], np.uint8)),  # the smallest term
            (np.full(5, 127, np.int8), np.full(6, 255, np.uint8)),  # saturated
            (np.full(5, 127, np.int8), np.full(6, 255, np.uint8)),  # repeated: zero residuals
            (np.full(5, -128, np.int8), np.full(6, 255, np.uint8)),  # anti-parallel
            (one, np.array([0, 0, 0, 0, 0, 1], np.uint8)),  # tiny after a large one
        ] + [(np.full(5, 127, np.int8), np.full(6, 255, np.uint8))] * 5
        for i, (d, x) in enumerate(terms):
            c.accumulate(d, -7, x, -8)
            ref.accumulate_u8(st_, cfg, d, -7, x, -8, prng)
            twin.equal(c.snapshot(), reference_snapshot(st_, prng, ref.norms_init()), f"edge term {i} (kappa {kappa})")
        assert st_.terms + st_.skipped == len(terms)
        if kappa:
            assert st_.skipped >= 1  # repeats have zero residual: c_1 > kappa * 0
        else:
            assert st_.skipped == 0


def test_extreme_exponents(twin):
    """The accepted exponent range ends behave the same in C and twin."""
    for d_exp, x_exp in ((-128, -128), (127, 127), (-128, 127)):
        cfg = LrtConfig(rank=2, kappa_th=0)
        c = LrtLayer(4, 5, cfg, seed=3)
        st_, prng = ref.state_init(4, 5, cfg), Prng(3)
        rng = np.random.default_rng(0)
        for d, x in random_terms(rng, 4, 5, 6):
            c.accumulate(d, d_exp, x, x_exp)
            ref.accumulate_u8(st_, cfg, d, d_exp, x, x_exp, prng)
            twin.equal(c.snapshot(), reference_snapshot(st_, prng, ref.norms_init()))
