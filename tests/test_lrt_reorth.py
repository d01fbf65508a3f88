"""et_lrt_reorthonormalize (csrc/src/lrt.c) and its twin (reference/lrt.py reorthonormalize).

C == twin byte for byte on streams of every rank and mode with the bases re-orthonormalised every
few terms; the estimate is kept to rounding and the bases come out orthonormal; on the structured
stream of bench/lrt_accuracy.py the drift of max|Q^T Q - I| stays below 2e-3 over 10^4 terms
(without it: 8.7e-3 to 1.0e-2, docs/lrt.md); bad input changes nothing.
"""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT
from edgetrain import ArgumentError, NoMemoryError, RangeError
from edgetrain.config import LrtConfig
from edgetrain.core import call
from edgetrain.lrt import LrtLayer, reference_snapshot
from edgetrain.reference import lrt as ref
from edgetrain.reference.fixed import Prng

ET_OK, ET_ERR_ARG, ET_ERR_NOMEM = 0, -1, -2


def _stream(layer, tw, prng, rng, terms, every, kind="random"):
    """terms through the C layer and the twin state, re-orthonormalising both every `every` terms."""
    n, m = layer.n, layer.m
    base_d, base_x = rng.integers(-128, 128, n), rng.integers(0, 256, m)
    for t in range(terms):
        if kind == "repeated" and t % 3:  # nearly repeated terms: residuals tiny against the basis
            d = np.clip(base_d + rng.integers(-2, 3, n), -128, 127).astype(np.int8)
            x = np.clip(base_x + rng.integers(-2, 3, m), 0, 255).astype(np.uint8)
        else:
            d, x = rng.integers(-128, 128, n).astype(np.int8), rng.integers(0, 256, m).astype(np.uint8)
        layer.accumulate(d, -9, x, -7)
        ref.accumulate_u8(tw, layer.config, d, -9, x, -7, prng)
        if (t + 1) % every == 0:
            layer.reorthonormalize()
            assert ref.reorthonormalize(tw) == "ok"
            yield t


@pytest.mark.parametrize("rank", range(1, 9))
@pytest.mark.parametrize("unbiased,kappa", [(0, 0), (1, 100)])
def test_c_equals_twin_with_reorthonormalisation(rank, unbiased, kappa, twin):
    rng = np.random.default_rng(rank * 10 + unbiased)
    for n, m, kind in ((10, 64, "random"), (16, 72, "repeated"), (1, 7, "random")):
        cfg = LrtConfig(rank=rank, unbiased=unbiased, kappa_th=kappa)
        layer = LrtLayer(n, m, cfg, seed=rank + 3)
        tw, prng = ref.state_init(n, m, cfg), Prng(rank + 3)
        for _ in _stream(layer, tw, prng, rng, 60, 7, kind):
            twin.equal(layer.snapshot(), reference_snapshot(tw, prng, ref.norms_init()), f"{n}x{m} r={rank} after reorthonormalize")


@pytest.mark.parametrize("unbiased", [0, 1])
def test_config_reorth_terms_runs_it_inside_accumulate(unbiased, twin):
    """reorth_terms = K: after a term that leaves `terms` a multiple of K, the accumulate re-orthonormalises,
    exactly as an explicit call would; C == twin."""
    rng = np.random.default_rng(7 + unbiased)
    base = LrtConfig(rank=3, unbiased=unbiased, kappa_th=0)
    auto = LrtLayer(12, 50, LrtConfig(**{**base.__dict__, "reorth_terms": 6}), seed=4)
    manual = LrtLayer(12, 50, base, seed=4)
    tw, prng = ref.state_init(12, 50, auto.config), Prng(4)
    for t in range(40):
        d, x = rng.integers(-128, 128, 12).astype(np.int8), rng.integers(0, 256, 50).astype(np.uint8)
        auto.accumulate(d, -9, x, -7)
        manual.accumulate(d, -9, x, -7)
        ref.accumulate_u8(tw, auto.config, d, -9, x, -7, prng)
        if (t + 1) % 6 == 0:
            manual.reorthonormalize()
        assert auto.snapshot() == manual.snapshot(), t
        twin.equal(auto.snapshot(), reference_snapshot(tw, prng, ref.norms_init()), f"term {t}")
    plain = LrtLayer(12, 50, base, seed=4)
    rng = np.random.default_rng(7 + unbiased)
    for t in range(40):
        plain.accumulate(rng.integers(-128, 128, 12).astype(np.int8), -9, rng.integers(0, 256, 50).astype(np.uint8), -7)
    assert plain.snapshot()["ql"] != auto.snapshot()["ql"]  # it did change the bases' rounding


@pytest.mark.parametrize("rank", [1, 3, 4, 8])
def test_estimate_is_kept_and_bases_come_out_orthonormal(rank):
    rng = np.random.default_rng(rank)
    cfg = LrtConfig(rank=rank, unbiased=1, kappa_th=0)
    for n, m in ((24, 40), (128, 300)):
        layer = LrtLayer(n, m, cfg, seed=9)
        for _ in range(400):
            layer.accumulate(rng.integers(-128, 128, n).astype(np.int8), -9, rng.integers(0, 256, m).astype(np.uint8), -7)
        before = layer.to_state()
        drift = max(ref.orthonormality_error(before.ql, before.lo_l, before.exp_l, before.f_l), ref.orthonormality_error(before.qr, before.lo_r, before.exp_r, before.f_r))
        layer.reorthonormalize()
        after = layer.to_state()
        g0, g1 = before.estimate(), after.estimate()
        # rounding only: each basis entry to half a unit of 2^exp (measured up to 5e-5 at these sizes)
        assert np.linalg.norm(g1 - g0) <= 2e-4 * np.linalg.norm(g0)
        orth = max(ref.orthonormality_error(after.ql, after.lo_l, after.exp_l, after.f_l), ref.orthonormality_error(after.qr, after.lo_r, after.exp_r, after.f_r))
        assert orth <= 1.5e-4 and orth <= drift, (orth, drift)
        assert list(after.c_mant) == sorted(after.c_mant, reverse=True) and after.c_mant[0] >= 1 << 30
        assert (after.terms, after.skipped, after.b_eff) == (before.terms, before.skipped, before.b_eff)


def test_empty_slots_and_empty_state():
    layer = LrtLayer(6, 9, LrtConfig(rank=4, unbiased=0, kappa_th=0))
    empty = layer.snapshot()
    layer.reorthonormalize()  # nothing held: nothing changes
    assert layer.snapshot() == empty
    rng = np.random.default_rng(4)
    for _ in range(2):  # two terms: columns 3 and 4 are empty slots (c = 0)
        layer.accumulate(rng.integers(-128, 128, 6).astype(np.int8), -9, rng.integers(0, 256, 9).astype(np.uint8), -7)
    before = layer.to_state()
    layer.reorthonormalize()
    after = layer.to_state()
    assert after.c_mant[2:] == [0, 0] and not after.ql[:, 2:].any() and not after.qr[:, 2:].any()
    assert np.linalg.norm(after.estimate() - before.estimate()) <= 1e-4 * np.linalg.norm(before.estimate())


@pytest.fixture(scope="module")
def acc():
    spec = importlib.util.spec_from_file_location("lrt_accuracy", ROOT / "bench" / "lrt_accuracy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["lrt_accuracy"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("n,m", [(128, 1152), (512, 2048)])
def test_structured_stream_stays_orthonormal_over_ten_thousand_terms(acc, n, m):
    """The orthogonality target on the long structured stream (r = 4, biased, kappa off): the bases'
    storage (a full-range scale, column 1's low bits) keeps max|Q^T Q - I| below 2e-3 after 10^4 terms
    without any re-orthonormalisation (measured 1.5e-3 and 5.9e-4; the power-of-two exponent alone let
    it pass 5e-3: 1.0e-2 and 8.7e-3).
    The stream does drift (above 2e-4), and re-orthonormalising every 100 terms keeps it below 1e-3 at
    every 500th term up to 10^4, each checkpoint just before a re-orthonormalisation, where the drift
    is largest, with the error against the exact sum as it was (within 10 %)."""
    terms = 9999
    d, x = acc.low_rank_stream(n, m, terms)
    cps = list(range(499, terms + 1, 500))
    with_re = acc.run_c(d, x, 4, 0, 0, cps, reorth=100)
    without = acc.run_c(d, x, 4, 0, 0, [terms], reorth=0)
    for t in cps:
        assert max(with_re[t][1], with_re[t][2]) < 1e-3, (t, with_re[t][1:3])
    g = acc.exact_prefix_sum(d, x, terms)
    assert acc.rel(with_re[terms][0], g) <= 1.1 * acc.rel(without[terms][0], g)
    assert 2e-4 < max(without[terms][1], without[terms][2]) < 2e-3


def test_bad_input_changes_nothing(core):
    ffi, lib = core
    layer = LrtLayer(6, 9, LrtConfig(rank=3), seed=5)
    rng = np.random.default_rng(0)
    for _ in range(12):
        layer.accumulate(rng.integers(-128, 128, 6).astype(np.int8), -9, rng.integers(0, 256, 9).astype(np.uint8), -7)
    before = bytes(ffi.buffer(layer._mem))
    assert lib.et_lrt_reorthonormalize(ffi.NULL, layer.scratch, layer.scratch_size) == ET_ERR_ARG
    assert lib.et_lrt_reorthonormalize(layer.state, ffi.NULL, layer.scratch_size) == ET_ERR_ARG
    assert lib.et_lrt_reorthonormalize(layer.state, ffi.cast("uint8_t *", layer.scratch) + 2, layer.scratch_size) == ET_ERR_ARG
    assert lib.et_lrt_reorthonormalize(layer.state, layer.scratch, layer.scratch_size - 1) == ET_ERR_NOMEM
    with pytest.raises(NoMemoryError):
        call("et_lrt_reorthonormalize", layer.state, layer.scratch, layer.scratch_size - 1)
    saved = layer.state.exp_l
    layer.state.exp_l = 3  # a corrupted header
    assert lib.et_lrt_reorthonormalize(layer.state, layer.scratch, layer.scratch_size) == ET_ERR_ARG
    layer.state.exp_l = saved
    assert bytes(ffi.buffer(layer._mem)) == before
    # bases far from orthonormal (column 0 of Q_L scaled by 1.5): refused by C and twin alike
    tw = layer.to_state()
    for i in range(6):
        layer._ql[i * 3] = int(np.clip(int(layer._ql[i * 3]) * 3 // 2, -32768, 32767))
    bent = bytes(ffi.buffer(layer._mem))
    with pytest.raises(RangeError, match="orthonormal"):
        layer.reorthonormalize()
    assert bytes(ffi.buffer(layer._mem)) == bent
    tw.ql = layer.to_state().ql
    with pytest.raises(RangeError, match="orthonormal"):
        ref.reorthonormalize(tw)
    tw.c_mant = [1, 5, 0]
    with pytest.raises(ArgumentError):
        ref.reorthonormalize(tw)



@st.composite
def near_orthonormal_states(draw):
    """(n, m, rank, bases as floats, c, c_exp, tilt): random orthonormal columns tilted by up to `tilt`
    (some past the 1/(4p) refusal limit), a random descending c, empty slots at the end."""
    rank = draw(st.integers(1, 8))
    n, m = draw(st.integers(rank, 40)), draw(st.integers(rank, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    live = draw(st.integers(1, rank))
    tilt = draw(st.sampled_from([0.0, 1e-3, 1e-2, 0.05, 0.2]))
    c = np.sort(rng.integers(1, 2**31, live))[::-1].tolist() + [0] * (rank - live)
    return n, m, rank, rng, c, draw(st.integers(-60, 20)), tilt


def _load(layer, rng, c, c_exp, tilt):
    """Write a state into the C layer: each basis Q (1 + tilt E) as int16 mantissas on a block exponent
    with a random multiplier f in [2^15, 2^16)."""
    for ptr, rows, side in ((layer._ql, layer.n, "l"), (layer._qr, layer.m, "r")):
        q = np.linalg.qr(rng.normal(size=(rows, layer.rank)))[0] @ (np.eye(layer.rank) + tilt * rng.normal(size=(layer.rank,) * 2))
        live = sum(1 for v in c if v)
        q[:, live:] = 0.0
        top = float(np.max(np.abs(q)))
        e = int(np.floor(np.log2(top))) - 14  # top / 2^e in [2^14, 2^15)
        f = int(rng.integers(min(65535, int(np.ceil(top * 2.0 ** (16 - e) / 32767))), 1 << 16))  # mantissas fit
        mant = np.clip(np.round(q / (f * 2.0 ** (e - 16))), -32768, 32767).astype(np.int16).reshape(-1)
        for i, v in enumerate(mant):
            ptr[i] = int(v)
        setattr(layer.state, "exp_" + side, e)
        setattr(layer.state, "f_" + side, f)
    for k, v in enumerate(c):
        layer.state.c_mant[k] = int(v)
    layer.state.c_exp = c_exp


@settings(max_examples=150, deadline=None)
@given(near_orthonormal_states())
def test_random_states_c_equals_twin_or_both_refuse(case):
    """Random valid states, near and far from orthonormal: C and twin give the same bytes, or both refuse
    with the state unchanged; when they do not refuse, the estimate is kept and the bases are orthonormal."""
    from edgetrain import RangeError as Range

    n, m, rank, rng, c, c_exp, tilt = case
    layer = LrtLayer(n, m, LrtConfig(rank=rank))
    _load(layer, rng, c, c_exp, tilt)
    tw = layer.to_state()
    before = layer.snapshot()
    try:
        ref.reorthonormalize(tw)
        twin_refused = False
    except Range:
        twin_refused = True
    try:
        layer.reorthonormalize()
        c_refused = False
    except Range:
        c_refused = True
    assert c_refused == twin_refused
    if c_refused:
        assert layer.snapshot() == before
        return
    assert layer.snapshot() == reference_snapshot(tw, None, ref.norms_init()) | {"prng": layer.snapshot()["prng"]}
    g0 = ref.State(n, m, rank, 0, np.array(before["ql"], np.int16), np.array(before["qr"], np.int16), before["exp_l"],
                   before["exp_r"], before["c_mant"], before["c_exp"], f_l=before["f_l"], f_r=before["f_r"]).estimate()
    g1 = layer.estimate()
    assert np.linalg.norm(g1 - g0) <= 1e-3 * np.linalg.norm(g0)
    after = layer.to_state()
    assert max(ref.orthonormality_error(after.ql, after.lo_l, after.exp_l, after.f_l), ref.orthonormality_error(after.qr, after.lo_r, after.exp_r, after.f_r)) < 1e-3
