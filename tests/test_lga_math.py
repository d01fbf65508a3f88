"""The integer low-rank gradient approximation (reference/lga.py, equal to the C by
test_lga_twin.py) against its float64 statement (reference/lga_float.py): each operation's
error stays within the bound docs/lga.md derives from its one rounding, and Adam's moments and
steps track float64 Adam fed the same quantised gradients."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edgetrain.config import LGA_ADAM, LgaConfig, lga_lr_pair
from edgetrain.reference import lga as ref

from edgetrain.reference import lga_float as flt
from edgetrain.reference.fixed import Prng

FA = 2.0**ref.FACTOR_EXP


def state(n, m, rank, seed, opt=LGA_ADAM, **cfg):
    c = LgaConfig(optimizer=opt, rank=rank, **cfg)
    s = ref.state_init(n, m, c, Prng(seed))
    rng = np.random.default_rng(seed)
    s.a = rng.integers(-(1 << 14), 1 << 14, (n, rank)).astype(np.int16)
    return s, c, rng


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 16), m=st.integers(1, 64), rank=st.integers(1, 8), seed=st.integers(0, 2**32 - 1),
       x_exp=st.sampled_from([-8, -7, -6]))
def test_forward_correction_within_half_an_lsb_per_rounding(n, m, rank, seed, x_exp):
    s, _, rng = state(n, m, rank, seed)
    lo = -128 if x_exp == -6 else 0
    x = rng.integers(lo, lo + 256, m)
    u = ref.project(s, x, x_exp)
    exact_u = flt.project(s.b * FA, x * 2.0**x_exp)
    sat = np.abs(exact_u) >= 32
    assert np.all(np.abs(u * 2.0**ref.U_EXP - exact_u)[~sat] <= 2.0 ** (ref.U_EXP - 1))
    z = np.zeros(n, dtype=np.int16)
    got = ref.correct(s, u, z) * 2.0**-12
    want = flt.correct(s.a * FA, u * 2.0**ref.U_EXP, np.zeros(n))
    assert np.all(np.abs(got - want)[np.abs(want) < 7.9] <= 2.0**-13)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 16), m=st.integers(1, 40), rank=st.integers(1, 8), seed=st.integers(0, 2**32 - 1),
       alpha=st.integers(0, 15))
def test_merge_is_the_rounded_product(n, m, rank, seed, alpha):
    s, _, rng = state(n, m, rank, seed)
    w = rng.integers(-128, 128, (n, m)).astype(np.int8)
    got = ref.merge(s, alpha, w).astype(np.float64)
    # in weight LSBs: w + A B / 2^-(7 + alpha), rounded once, saturated
    want = w + (flt.merged(np.zeros((n, m)), s.a * FA, s.b * FA)) / 2.0 ** (-7 - alpha)
    inside = (want > -128.5) & (want < 127.5)
    assert np.all(np.abs(got - want)[inside] <= 0.5)
    assert np.all(got[want >= 127.5] == 127) and np.all(got[want <= -128.5] == -128)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 8), m=st.integers(1, 30), rank=st.integers(1, 8), seed=st.integers(0, 2**32 - 1),
       terms=st.integers(1, 6))
def test_factor_gradients_are_exact_sums(n, m, rank, seed, terms):
    s, _, rng = state(n, m, rank, seed)
    d = rng.integers(-128, 128, (terms, n)).astype(np.int8)
    x = rng.integers(0, 256, (terms, m))
    ref.grad_zero(s)
    ref.grad_add(s, d, x, -8)
    u = ref.project(s, x, -8).astype(np.float64)  # the forward's u, rounded to its LSB
    ga, gb = flt.grads(s.a * FA, s.b * FA, d * 2.0**-7, x * 2.0**-8)
    ga_from_u = (d * 2.0**-7).T @ (u * 2.0**ref.U_EXP)
    assert np.array_equal(s.ga * 2.0**-17, ga_from_u)  # exact: sums of products of the stored values
    assert np.allclose(s.gb * 2.0 ** (-22 - 8), gb, rtol=0, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([2.0**-10, 2.0**-4, 1.0, 16.0]),
       beta1=st.sampled_from([0.0, 0.5, 0.9]), beta2=st.sampled_from([0.9, 0.99, 0.999]))
def test_adam_tracks_float64_adam(seed, scale, beta1, beta2):
    """Over 300 steps on drifting gradients: the first moment within 1/(1 - beta1) gradient LSBs, the
    second within a relative 1e-6 plus LSBs, and each step within half a factor LSB plus 1e-6 relative
    of the float64 step taken from the integer state's own moments."""
    n = 12
    lr, lr_exp = lga_lr_pair(0.003)
    b1, b2 = int(round(beta1 * 2**30)), int(round(beta2 * 2**30))
    c = LgaConfig(rank=1, lr=lr, lr_exp=lr_exp, beta1_q30=b1, beta2_q30=b2)
    s = ref.state_init(n, 1, c, Prng(seed))
    f = flt.Adam((n, 1), lr * 2.0**lr_exp, b1 / 2**30, b2 / 2**30, c.eps * 2.0**ref.G_EXP)
    rng = np.random.default_rng(seed)
    drift = rng.normal(0, 1, (n, 1))
    for t in range(300):
        g_real = scale * (drift + rng.normal(0, 0.5, (n, 1)) + np.sin(t / 20))
        s.ga = np.rint(g_real * 2.0**17).astype(np.int64)  # the sums, at their LSB 2^-17
        s.gb = np.zeros((1, 1), dtype=np.int64)
        g = np.clip(s.ga * 2.0**7, -(2**31 - 1), 2**31 - 1) * 2.0**ref.G_EXP  # what the step sees
        before = s.a.astype(np.float64)
        ref.step(s, c, -8)
        f.moments(g)
        assert np.all(np.abs(s.mu_a * 2.0**ref.G_EXP - f.m) <= (1 + 1 / (1 - beta1 + 1e-9)) * 2.0**ref.G_EXP)
        assert np.all(np.abs(s.nu_a * 2.0**-48 - f.v) <= 1e-6 * f.v + 2.0**-40)
        # the float step from the integer moments (so the comparison isolates the step's own rounding)
        f_one = flt.Adam((n, 1), f.lr, f.b1, f.b2, f.eps)
        f_one.t, f_one.m, f_one.v = t + 1, s.mu_a * 2.0**ref.G_EXP, s.nu_a * 2.0**-48
        want = f_one.update() / FA
        got = before - s.a
        unsat = np.abs(before - want) < 32767
        tol = 0.5 + 1e-6 * np.abs(want) + np.abs(want) * 2.0**-29 + 1e-9
        # isqrt floors: sqrt(v) is short by < 1 LSB of 2^-24, i.e. a relative (1 / (sqrt(v)+eps)) change
        tol = tol + np.abs(want) / (np.sqrt(s.nu_a.astype(np.float64)) + c.eps)
        assert np.all(np.abs(got - want)[unsat] <= tol[unsat])
