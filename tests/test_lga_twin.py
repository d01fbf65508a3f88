"""csrc/src/lga.c against edgetrain/reference/lga.py: exact equality.

Streams of samples (each a few rank-1 terms, as a conv layer's output pixels give) drive a C
state and its twin through forward corrections, gradient sums, optimizer steps, merges and
restarts, for every optimizer, both restart rules and ranks 1..8; hypothesis picks the shapes,
formats, hyper-parameters and data. After every sample the whole state (factors, moments,
bias-correction powers, trackers, PRNG) and every output must be identical.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgetrain.config import (
    LGA_ADAM, LGA_BETA_MAX, LGA_FIELDS, LGA_LR_EXP_MAX, LGA_LR_EXP_MIN, LGA_MAX_RANK, LGA_MOMENTUM,
    LGA_RESTART_REDRAW_B, LGA_RESTART_ZERO_A, LGA_SGD, LgaConfig, lga_config_check
)
from edgetrain.errors import ArgumentError
from edgetrain.lga import LgaLayer, reference_snapshot
from edgetrain.reference import lga as ref
from edgetrain.reference.fixed import Prng

X_FORMATS = {-8: (0, 256), -7: (0, 256), -6: (-128, 128), -12: (-(1 << 15), 1 << 15)}


def assert_same(c: dict, r: dict) -> None:
    assert c.keys() == r.keys()
    for k in c:
        if isinstance(c[k], np.ndarray):
            assert c[k].dtype == np.asarray(r[k]).dtype, k
            assert np.array_equal(c[k], r[k]), k
        else:
            assert c[k] == r[k], k


@st.composite
def configs(draw):
    opt = draw(st.sampled_from([LGA_SGD, LGA_MOMENTUM, LGA_ADAM]))
    return LgaConfig(optimizer=opt, rank=draw(st.integers(1, LGA_MAX_RANK)),
                      restart=draw(st.sampled_from([LGA_RESTART_ZERO_A, LGA_RESTART_REDRAW_B])),
                      merge_every=draw(st.integers(1, 6)), lr=draw(st.integers(1, (1 << 31) - 1)),
                      lr_exp=draw(st.integers(LGA_LR_EXP_MIN, LGA_LR_EXP_MAX)),
                      beta1_q30=draw(st.sampled_from([0, 966367642, LGA_BETA_MAX, draw(st.integers(0, LGA_BETA_MAX))])),
                      beta2_q30=draw(st.sampled_from([0, 1072668082, LGA_BETA_MAX, draw(st.integers(0, LGA_BETA_MAX))])),
                      eps=draw(st.sampled_from([1, 16, 65535])))


@settings(max_examples=200, deadline=None)
@given(cfg=configs(), n=st.integers(1, 24), m=st.integers(1, 40), x_exp=st.sampled_from(sorted(X_FORMATS)),
       terms=st.integers(1, 4), samples=st.integers(1, 14), alpha=st.integers(0, 15), seed=st.integers(0, 2**32 - 1),
       scale=st.sampled_from([1, 8, 127]))
def test_stream_matches_twin(cfg, n, m, x_exp, terms, samples, alpha, seed, scale):
    rng = np.random.default_rng(seed)
    c = LgaLayer(n, m, cfg, seed=seed)
    prng = Prng(seed)
    r = ref.state_init(n, m, cfg, prng)
    assert_same(c.snapshot(), reference_snapshot(r, prng))
    w = rng.integers(-128, 128, (n, m)).astype(np.int8)
    lo, hi = X_FORMATS[x_exp]
    for s in range(samples):
        x = rng.integers(lo, hi, (terms, m)).astype(np.int16)
        d = rng.integers(-scale, scale + 1, (terms, n)).astype(np.int8)
        z = rng.integers(-(1 << 15), 1 << 15, (terms, n)).astype(np.int16)
        ur = ref.project(r, x, x_exp)
        for t in range(terms):
            uc = c.project(x[t], x_exp)
            assert np.array_equal(uc, ur[t])
            assert np.array_equal(c.correct(uc, z[t]), ref.correct(r, ur[t], z[t]))
        c.grad_zero()
        ref.grad_zero(r)
        for t in range(terms):
            c.grad_add(d[t], x[t], x_exp)
        ref.grad_add(r, d, x, x_exp)
        c.step(x_exp)
        ref.step(r, cfg, x_exp)
        assert_same(c.snapshot(), reference_snapshot(r, prng))
        if (s + 1) % cfg.merge_every == 0:
            assert np.array_equal(c.merge(alpha, w), ref.merge(r, alpha, w))
            w = ref.merge(r, alpha, w)
            c.restart()
            ref.restart(r, cfg, prng)
            assert_same(c.snapshot(), reference_snapshot(r, prng))


def test_adam_moves_factors_against_gradient():
    """After a step from A = 0, the sign of each A update is minus the sign of its gradient."""
    cfg = LgaConfig(lr=1073742, lr_exp=-30)  # 0.001
    r = ref.state_init(6, 10, cfg, Prng(3))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (1, 10))
    d = rng.integers(-100, 101, (1, 6)).astype(np.int8)
    ref.grad_zero(r)
    ref.grad_add(r, d, x, -8)
    g = r.ga.copy()
    ref.step(r, cfg, -8)
    moved = g != 0
    assert moved.any()
    assert np.all(np.sign(r.a[moved]) == -np.sign(g[moved]))
    # Adam's first step is lr * g / (|g| + eps) (bias-corrected): 0.001 / 2^-15 = 32.8 LSB where
    # |g| (at 2^-24 after the rescale by 2^7) dwarfs eps
    big = np.abs(g) * 128 >= 1 << 20  # eps acts as eps / sqrt(1 - beta2) = 506 LSB on the first step
    assert big.any()
    assert np.all(np.abs(r.a[big]) == 33)
    assert np.all(np.abs(r.a) <= 33)


def test_isqrt_array_is_exact():
    rng = np.random.default_rng(1)
    from edgetrain.reference import fixed

    xs = np.concatenate([rng.integers(0, 1 << 62, 2000, dtype=np.int64), np.arange(0, 300),
                         [(1 << 62) - 1, (1 << 31) ** 2 - 1, (1 << 31) ** 2 - (1 << 32)]]).astype(np.uint64)
    got = ref.isqrt_u64_array(xs)
    assert [int(v) for v in got] == [fixed.isqrt_u64(int(v)) for v in xs]


BAD = [("optimizer", 3), ("rank", 0), ("rank", 9), ("restart", 2), ("reserved", 1), ("merge_every", 0),
       ("merge_every", 65536), ("lr", 0), ("lr", 1 << 31), ("lr_exp", LGA_LR_EXP_MIN - 1),
       ("lr_exp", LGA_LR_EXP_MAX + 1), ("beta1_q30", LGA_BETA_MAX + 1), ("beta2_q30", LGA_BETA_MAX + 1),
       ("eps", 0), ("eps", 65536)]


@pytest.mark.parametrize("field,value", BAD)
def test_bad_config_rejected_by_both(core, field, value):
    ffi, lib = core
    cfg = LgaConfig(**{field: value})
    with pytest.raises(ArgumentError, match=field.split("_q30")[0].replace("_", "[_ ]") if field != "reserved" else "reserved"):
        lga_config_check(cfg)
    from edgetrain.lga import c_config

    assert lib.et_lga_config_check(ffi.new("et_lga_config_t *", c_config(cfg))) == lib.ET_ERR_ARG
    good = ffi.new("et_lga_config_t *")
    assert lib.et_lga_config_default(good) == 0
    assert lib.et_lga_config_check(good) == 0
    assert {f: getattr(good, f) for f in LGA_FIELDS} == c_config(LgaConfig())


def test_state_size_matches_twin(core):
    ffi, lib = core
    out = ffi.new("uint32_t *")
    for n, m, r, opt in [(1, 1, 1, 0), (32, 288, 4, 2), (10, 1568, 8, 1), (7, 3, 3, 2)]:
        assert lib.et_lga_state_get_size(n, m, r, opt, out) == 0
        assert out[0] == ref.state_get_size(n, m, r, opt)
        assert lib.et_lga_grad_get_buffer_size(n, m, r, out) == 0
        assert out[0] == ref.grad_get_buffer_size(n, m, r)
    assert lib.et_lga_state_get_size(0, 5, 1, 0, out) == lib.ET_ERR_ARG
    assert lib.et_lga_state_get_size(5, 5, 9, 0, out) == lib.ET_ERR_ARG
    # Adam's states: 2 + 4 + 8 bytes per factor entry
    assert ref.state_get_size(32, 288, 4, LGA_ADAM) == 64 + 14 * 4 * (32 + 288)


def test_init_writes_nothing_on_error(core):
    ffi, lib = core
    cfg = ffi.new("et_lga_config_t *")
    lib.et_lga_config_default(cfg)
    mem = ffi.new("uint64_t[]", 64)
    prng = ffi.new("et_prng_t *")
    lib.et_prng_seed(prng, 1)
    pst = ffi.new("et_lga_state_t **")
    assert lib.et_lga_state_init(mem, 16, 4, 4, cfg, prng, pst) == lib.ET_ERR_NOMEM
    cfg.rank = 0
    assert lib.et_lga_state_init(mem, 512, 4, 4, cfg, prng, pst) == lib.ET_ERR_ARG
    assert all(v == 0 for v in mem) and pst[0] == ffi.NULL
