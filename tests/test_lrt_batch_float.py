"""The batched form of the low-rank update in float64 (edgetrain.reference.lrt_float.accumulate_batch):
k terms enter one rank-(r + k) core, one SVD and one truncation. Its properties are the ones the
per-term update has (tests/test_lrt_math.py): with k = 1 it is that update; biased, the result is the
best rank-r approximation of the old estimate plus the terms; unbiased, its expectation over the
random signs is exactly the old estimate plus the terms; the bases stay orthonormal."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgetrain.errors import ArgumentError
from edgetrain.reference import lrt_float as flt
from edgetrain.reference.fixed import Prng


def stream(seed: int, count: int, n: int, m: int):
    rng = np.random.default_rng(seed)
    return (rng.integers(-40, 41, (count, n)).astype(np.float64) * 2.0**-9,
            rng.integers(0, 256, (count, m)).astype(np.float64) * 2.0**-7)


@pytest.mark.parametrize("unbiased", [False, True])
def test_one_term_batches_are_the_per_term_update(unbiased):
    d, x = stream(1, 40, 14, 11)
    seq, bat = flt.state_init(14, 11, 3), flt.state_init(14, 11, 3)
    p_seq, p_bat = Prng(5), Prng(5)
    for t in range(len(d)):
        flt.accumulate(seq, d[t], x[t], unbiased=unbiased, kappa_th=0, prng=p_seq)
        flt.accumulate_batch(bat, d[t:t + 1], x[t:t + 1], unbiased=unbiased, prng=p_bat)
    assert p_seq.state == p_bat.state  # the same draws, one per mixing term
    scale = np.abs(seq.estimate()).max()
    assert np.abs(seq.estimate() - bat.estimate()).max() < 1e-12 * scale
    assert np.allclose(seq.c, bat.c, rtol=1e-12, atol=0)


@pytest.mark.parametrize("rank,k", [(1, 3), (2, 4), (4, 8)])
def test_biased_batch_is_the_best_rank_r_approximation(rank, k):
    n, m = 17, 13
    d, x = stream(2, 3 * k + 2, n, m)
    st = flt.state_init(n, m, rank)
    flt.accumulate_batch(st, d[:2], x[:2], unbiased=False)
    for start in range(2, len(d), k):
        before = st.estimate()
        flt.accumulate_batch(st, d[start:start + k], x[start:start + k], unbiased=False)
        target = before + d[start:start + k].T @ x[start:start + k]
        u, s, vt = np.linalg.svd(target)
        best = (u[:, :rank] * s[:rank]) @ vt[:rank]
        assert np.abs(st.estimate() - best).max() < 1e-10 * s[0]
        assert np.allclose(st.c, s[:rank], rtol=1e-10, atol=1e-12 * s[0])


def test_unbiased_batch_is_exactly_unbiased_over_all_sign_patterns():
    """r = 1, k = 2: two OK steps (3 -> 2 -> 1), with at most 3 and 2 signs. The mean over every
    pattern of both draws is the expectation, which must be the old estimate plus the terms."""
    n, m = 9, 7
    d, x = stream(3, 3, n, m)
    base = flt.state_init(n, m, 1)
    flt.accumulate_batch(base, d[:1], x[:1], unbiased=False)
    target = base.estimate() + d[1:].T @ x[1:]
    total = np.zeros((n, m))
    used = set()
    for b1, b2 in itertools.product(range(8), range(4)):
        draws = [b1, b2]
        st = flt.FloatState(n, m, 1, base.ql.copy(), base.qr.copy(), base.c.copy())

        class Draws:
            def next_u32(self):
                return draws.pop(0)

        flt.accumulate_batch(st, d[1:], x[1:], unbiased=True, prng=Draws())
        used.add(2 - len(draws))
        total += st.estimate()
    assert used == {2}  # both steps mixed: the test covers the composition
    mean = total / 32
    assert np.abs(mean - target).max() < 1e-12 * np.abs(target).max()
    # one draw alone is not the target: the mixing is there
    assert np.abs(st.estimate() - target).max() > 1e-3 * np.abs(target).max()


@pytest.mark.parametrize("unbiased", [False, True])
def test_bases_stay_orthonormal_over_many_batches(unbiased):
    n, m, r, k = 40, 30, 4, 6
    d, x = stream(4, 600, n, m)
    st = flt.state_init(n, m, r)
    prng = Prng(9)
    for start in range(0, len(d), k):
        flt.accumulate_batch(st, d[start:start + k], x[start:start + k], unbiased=unbiased, prng=prng)
    for q in (st.ql, st.qr):
        assert np.abs(q.T @ q - np.eye(r)).max() < 1e-10
    assert np.all(np.diff(st.c) <= 0) and np.all(st.c >= 0)


def test_zero_terms_are_dropped_and_counted():
    n, m = 8, 6
    d, x = stream(5, 4, n, m)
    d[1] = 0
    x[3] = 0
    st = flt.state_init(n, m, 2)
    assert flt.accumulate_batch(st, d, x, unbiased=False) == 2
    assert st.terms == 4
    ref = flt.state_init(n, m, 2)
    flt.accumulate_batch(ref, d[[0, 2]], x[[0, 2]], unbiased=False)
    assert np.allclose(st.estimate(), ref.estimate(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("deltas,xs,unbiased,match", [
    (np.zeros((2, 8)), np.zeros((3, 6)), False, "k x 8"),
    (np.zeros((2, 7)), np.zeros((2, 6)), False, "k x 8"),
    (np.ones((2, 8)), np.ones((2, 6)), True, "PRNG"),
])
def test_bad_input_raises_and_changes_nothing(deltas, xs, unbiased, match):
    st = flt.state_init(8, 6, 2)
    with pytest.raises(ArgumentError, match=match):
        flt.accumulate_batch(st, deltas, xs, unbiased=unbiased)
    assert st.terms == 0 and not st.c.any() and not st.ql.any()
