"""The LRT API contract: defaults, sizes, and bad input -> status + typed exception, nothing written."""
from __future__ import annotations

import numpy as np
import pytest

from edgetrain import ArgumentError, NoMemoryError, RangeError, StateError
from edgetrain.config import LrtConfig, lrt_config_check, lrt_config_default
from edgetrain.lrt import LrtLayer, accumulate_get_buffer_size, c_config, config_default, state_get_size
from edgetrain.reference import lrt as ref
from edgetrain.reference.fixed import Prng

ET_OK, ET_ERR_ARG, ET_ERR_NOMEM, ET_ERR_STATE = 0, -1, -2, -8
POISON = 0xA5


def test_defaults_are_the_papers(core):
    ffi, lib = core
    cfg = ffi.new("et_lrt_config_t *")
    assert lib.et_lrt_config_default(cfg) == ET_OK
    want = dict(rank=4, unbiased=1, maxnorm=1, gs_passes=2, batch_conv=10, batch_dense=100, rho_min_ppm=10000, kappa_th=100)
    for key, value in want.items():
        assert getattr(cfg, key) == value, key
    assert abs(cfg.eta0_q24 / 2**24 - 0.01) < 1e-7  # eta0 = 0.01
    assert config_default() == lrt_config_default() == LrtConfig()
    assert lib.et_lrt_config_check(cfg) == ET_OK
    assert lib.et_lrt_config_default(ffi.NULL) == ET_ERR_ARG


BAD_FIELDS = [
    ("rank", 0), ("rank", 9), ("unbiased", 2), ("maxnorm", 2), ("gs_passes", 0), ("gs_passes", 3),
    ("batch_conv", 0), ("batch_dense", 0), ("eta0_q24", 0), ("eta0_q24", (1 << 24) + 1),
    ("rho_min_ppm", 1000001), ("kappa_th", 1 << 31),
]


@pytest.mark.parametrize("field,value", BAD_FIELDS)
def test_bad_config_is_rejected_everywhere(core, field, value):
    ffi, lib = core
    cfg = ffi.new("et_lrt_config_t *")
    lib.et_lrt_config_default(cfg)
    setattr(cfg, field, value)
    assert lib.et_lrt_config_check(cfg) == ET_ERR_ARG
    # state init refuses it and writes nothing
    mem = ffi.new("uint8_t[]", [POISON] * 512)
    out = ffi.new("et_lrt_state_t **")
    assert lib.et_lrt_state_init(mem, 512, 4, 4, 0, cfg, out) == ET_ERR_ARG
    assert all(b == POISON for b in mem)
    assert out[0] == ffi.NULL
    bad = LrtConfig(**{field: value})
    with pytest.raises(ArgumentError, match=field):
        lrt_config_check(bad)
    with pytest.raises(ArgumentError, match=field):
        LrtLayer(4, 4, bad)


def test_state_and_scratch_sizes_are_exact(core):
    ffi, lib = core
    assert ffi.sizeof("et_lrt_state_t") == 60 == lib.ET_LRT_STATE_HEADER == ref.STATE_HEADER_BYTES
    assert ffi.sizeof("et_lrt_norms_t") == 32
    for rank in range(1, 9):
        for n, m in ((1, 1), (10, 64), (128, 1152), (512, 2048), (65535, 65535)):
            size = state_get_size(n, m, rank)
            b = 2 if rank >= 3 else rank - 1  # column 1's low bits per row
            planes = (n * b + 7) // 8 + (m * b + 7) // 8
            assert size == 60 + 2 * rank * (n + m) + planes == ref.state_get_size(n, m, rank)
            assert size <= 1.05 * 2 * rank * (n + m) + 64  # the budget: within 1.05x of the bases
            q = rank + 1
            assert accumulate_get_buffer_size(n, m, rank) == 4 * (2 * (n + m) + 2 * q * q + 3 * q * rank)
            assert accumulate_get_buffer_size(n, m, rank) == ref.accumulate_get_buffer_size(n, m, rank)
    out = ffi.new("size_t *", 7)
    for args in ((0, 4, 4), (4, 0, 4), (4, 4, 0), (4, 4, 9), (65536, 4, 4)):
        assert lib.et_lrt_state_get_size(*args, out) == ET_ERR_ARG
        assert lib.et_lrt_accumulate_get_buffer_size(*args, out) == ET_ERR_ARG
        with pytest.raises(ArgumentError):
            ref.state_get_size(*args)
    assert out[0] == 7


def test_state_init_too_small_is_nomem_and_untouched(core):
    ffi, lib = core
    cfg = c_config(LrtConfig())
    need = state_get_size(10, 20, 4)
    mem = ffi.new("uint32_t[]", 200)
    raw = ffi.cast("uint8_t *", mem)
    for i in range(800):
        raw[i] = POISON
    out = ffi.new("et_lrt_state_t **")
    assert lib.et_lrt_state_init(mem, need - 1, 10, 20, 0, cfg, out) == ET_ERR_NOMEM
    assert all(raw[i] == POISON for i in range(800))
    assert lib.et_lrt_state_init(mem, need, 10, 20, 0, cfg, out) == ET_OK
    assert all(raw[i] == 0 for i in range(60, need)) and raw[need] == POISON  # exactly the planned bytes
    assert (out[0].n, out[0].m, out[0].rank, out[0].kind, out[0].b_eff) == (10, 20, 4, 0, 0)
    with pytest.raises(NoMemoryError) as info:
        ref.state_init(10, 20, LrtConfig(), size=need - 1)
    assert info.value.required_bytes == need
    # misaligned memory, a bad kind, NULL
    assert lib.et_lrt_state_init(raw + 1, need, 10, 20, 0, cfg, out) == ET_ERR_ARG
    assert lib.et_lrt_state_init(mem, need, 10, 20, 2, cfg, out) == ET_ERR_ARG
    assert lib.et_lrt_state_init(ffi.NULL, need, 10, 20, 0, cfg, out) == ET_ERR_ARG
    with pytest.raises(ArgumentError, match="kind"):
        ref.state_init(10, 20, LrtConfig(), kind=2)


def _layer_with_history(unbiased=1):
    layer = LrtLayer(6, 9, LrtConfig(rank=3, unbiased=unbiased), seed=5)
    rng = np.random.default_rng(0)
    for _ in range(12):
        layer.accumulate(rng.integers(-128, 128, 6).astype(np.int8), -9, rng.integers(0, 256, 9).astype(np.uint8), -7)
    return layer


def _state_bytes(core, layer):
    ffi, _ = core
    return bytes(ffi.buffer(layer._mem)), layer.prng.state


def test_accumulate_bad_arguments_write_nothing(core):
    ffi, lib = core
    layer = _layer_with_history()
    d = ffi.new("int8_t[]", [1] * 6)
    x = ffi.new("uint8_t[]", [1] * 9)
    before = _state_bytes(core, layer)
    st, cfg, scr, size, prng = layer.state, layer.cfg, layer.scratch, layer.scratch_size, layer.prng
    cases = [
        (ffi.NULL, cfg, d, -9, x, -7, scr, size, prng),
        (st, ffi.NULL, d, -9, x, -7, scr, size, prng),
        (st, cfg, ffi.NULL, -9, x, -7, scr, size, prng),
        (st, cfg, d, -9, ffi.NULL, -7, scr, size, prng),
        (st, cfg, d, -129, x, -7, scr, size, prng),
        (st, cfg, d, -9, x, 128, scr, size, prng),
        (st, cfg, d, -9, x, -7, ffi.NULL, size, prng),
        (st, cfg, d, -9, x, -7, ffi.cast("uint8_t *", scr) + 2, size, prng),  # misaligned scratch
        (st, cfg, d, -9, x, -7, scr, size, ffi.NULL),  # unbiased without a PRNG
    ]
    for args in cases:
        assert lib.et_lrt_accumulate_u8(*args) == ET_ERR_ARG
    assert lib.et_lrt_accumulate_u8(st, cfg, d, -9, x, -7, scr, size - 1, prng) == ET_ERR_NOMEM
    other = c_config(LrtConfig(rank=2))
    assert lib.et_lrt_accumulate_u8(st, other, d, -9, x, -7, scr, size, prng) == ET_ERR_ARG  # rank mismatch
    assert _state_bytes(core, layer) == before
    # the Python layer says what is wrong
    with pytest.raises(ArgumentError, match="n = 6"):
        layer.accumulate(np.zeros(5, np.int8), -9, np.zeros(9, np.uint8), -7)
    with pytest.raises(ArgumentError, match="int8 or uint8"):
        layer.accumulate(np.zeros(6, np.int8), -9, np.zeros(9, np.int16), -7)
    with pytest.raises(ArgumentError, match="x_exp"):
        layer.accumulate(np.zeros(6, np.int8), -9, np.zeros(9, np.uint8), 200)
    assert _state_bytes(core, layer) == before
    # the twin raises the same class for the same mistakes
    st_ = ref.state_init(6, 9, LrtConfig(rank=3))
    with pytest.raises(ArgumentError):
        ref.accumulate_u8(st_, LrtConfig(rank=3), np.zeros(6, np.int8), -9, np.zeros(9, np.uint8), -7, None)
    with pytest.raises(ArgumentError):
        ref.accumulate_u8(st_, LrtConfig(rank=2), np.zeros(6, np.int8), -9, np.zeros(9, np.uint8), -7, Prng(1))
    with pytest.raises(ArgumentError):
        ref.accumulate_u8(st_, LrtConfig(rank=3), np.zeros(6, np.int8), -200, np.zeros(9, np.uint8), -7, Prng(1))


def test_biased_mode_needs_no_prng(core):
    ffi, lib = core
    layer = LrtLayer(4, 5, LrtConfig(rank=2, unbiased=0))
    d = ffi.new("int8_t[]", [3, -2, 1, 0])
    x = ffi.new("int8_t[]", [1, 2, 3, 4, 5])
    assert lib.et_lrt_accumulate_s8(layer.state, layer.cfg, d, -7, x, -7, layer.scratch, layer.scratch_size, ffi.NULL) == ET_OK
    assert layer.state.terms == 1


def test_corrupted_state_is_rejected(core):
    ffi, lib = core
    layer = _layer_with_history()
    d = ffi.new("int8_t[]", [1] * 6)
    x = ffi.new("uint8_t[]", [1] * 9)
    for field, value in (("exp_l", 3), ("exp_r", -50), ("rank", 9), ("kind", 2), ("n", 0)):
        saved = getattr(layer.state, field)
        setattr(layer.state, field, value)
        assert lib.et_lrt_accumulate_u8(layer.state, layer.cfg, d, -9, x, -7, layer.scratch, layer.scratch_size, layer.prng) == ET_ERR_ARG
        assert lib.et_lrt_reset(layer.state) == ET_ERR_ARG
        setattr(layer.state, field, saved)


@pytest.mark.parametrize("c_mant", [(5, 1 << 20, 0), ((1 << 31) + 1, 0, 0), (9, 8, 9)])
def test_state_whose_c_is_not_descending_is_rejected(core, c_mant):
    # The core's exponent comes from c_mant[0]: a larger later entry overflowed the core, the SVD
    # refused it and the accumulate went on with unset singular values.
    ffi, lib = core
    layer = _layer_with_history()
    saved = list(layer.state.c_mant)
    for k, v in enumerate(c_mant):
        layer.state.c_mant[k] = v
    before = _state_bytes(core, layer)
    d = ffi.new("int8_t[]", [3, -1, 4, -1, 5, -9])
    x = ffi.new("uint8_t[]", [2, 6, 5, 3, 5, 8, 9, 7, 9])
    assert lib.et_lrt_accumulate_u8(layer.state, layer.cfg, d, -9, x, -7, layer.scratch, layer.scratch_size, layer.prng) == ET_ERR_ARG
    flush = ffi.new("et_lrt_flush_t *")
    assert lib.et_lrt_flush_begin(layer.state, layer.cfg, layer.norms, flush) == ET_ERR_ARG
    assert _state_bytes(core, layer) == before
    with pytest.raises(ArgumentError, match="not descending"):
        layer.accumulate(np.ones(6, np.int8), -9, np.ones(9, np.uint8), -7)
    for k, v in enumerate(saved):
        layer.state.c_mant[k] = v
    assert lib.et_lrt_accumulate_u8(layer.state, layer.cfg, d, -9, x, -7, layer.scratch, layer.scratch_size, layer.prng) == ET_OK
    # the twin refuses the same states
    cfg = LrtConfig(rank=3)
    st = ref.state_init(6, 9, cfg)
    st.c_mant = list(c_mant)
    with pytest.raises(ArgumentError, match="not descending"):
        ref.accumulate_u8(st, cfg, np.ones(6, np.int8), -9, np.ones(9, np.uint8), -7, Prng(1))
    with pytest.raises(ArgumentError, match="not descending"):
        ref.flush_begin(st, cfg, ref.norms_init())


def test_flush_arguments_and_stale_rows(core):
    ffi, lib = core
    layer = _layer_with_history()
    fl = ffi.new("et_lrt_flush_t *")
    before = _state_bytes(core, layer)
    assert lib.et_lrt_flush_begin(layer.state, layer.cfg, ffi.NULL, fl) == ET_ERR_ARG  # max-norm needs trackers
    assert lib.et_lrt_flush_begin(layer.state, layer.cfg, layer.norms, ffi.NULL) == ET_ERR_ARG
    assert lib.et_lrt_flush_begin(ffi.NULL, layer.cfg, layer.norms, fl) == ET_ERR_ARG
    assert _state_bytes(core, layer) == before
    no_norm = c_config(LrtConfig(rank=3, maxnorm=0))
    assert lib.et_lrt_flush_begin(layer.state, no_norm, ffi.NULL, fl) == ET_OK  # allowed without max-norm
    layer.flush_begin()
    row = layer.delta_row(0)
    assert row.dtype == np.int8 and row.shape == (9,)
    out = ffi.new("int8_t[]", 9)
    assert lib.et_lrt_delta_row(layer.state, layer.flush, 6, out, ffi.NULL) == ET_ERR_ARG
    with pytest.raises(ArgumentError, match="row 6"):
        layer.delta_row(6)
    layer.accumulate(np.ones(6, np.int8) * 50, -9, np.arange(9, dtype=np.uint8) * 20, -7)
    assert lib.et_lrt_delta_row(layer.state, layer.flush, 0, out, ffi.NULL) == ET_ERR_STATE
    with pytest.raises(StateError):
        layer.delta_row(0)
    layer.flush_begin()
    layer.reset()
    with pytest.raises(StateError):
        layer.delta_row(0)
    # the twin refuses a stale flush as well
    st_ = layer.to_state()
    fl_t = ref.flush_begin(st_, LrtConfig(rank=3), ref.norms_init())
    ref.accumulate_u8(st_, LrtConfig(rank=3), np.ones(6, np.int8), -9, np.ones(9, np.uint8), -7, Prng(1))
    with pytest.raises(StateError):
        ref.delta_row(st_, fl_t, 0)


def test_svd_and_truncate_reject_bad_input(core):
    ffi, lib = core
    sigma = ffi.new("uint32_t[]", 10)
    u = ffi.new("int32_t[]", 100)
    v = ffi.new("int32_t[]", 100)
    for q in (1, 10):
        assert lib.et_lrt_svd(ffi.new("int32_t[]", 100), q, sigma, u, v) == ET_ERR_ARG
    big = ffi.new("int32_t[]", [0, (1 << 25) + 1, 0, 0])
    assert lib.et_lrt_svd(big, 2, sigma, u, v) == ET_ERR_ARG
    assert list(sigma)[:2] == [0, 0]  # untouched
    with pytest.raises(ArgumentError):
        ref.svd([[0, (1 << 25) + 1], [0, 0]])
    c_out = ffi.new("uint32_t[]", 8)
    t_out = ffi.new("int32_t[]", 72)
    p = ffi.new("int *", -1)
    for sig, rank in (([1, 2, 0], 2), ([2**31, 2**31, 0], 2), ([1, 1], 0), ([1] * 10, 9)):
        assert lib.et_lrt_truncate(ffi.new("uint32_t[]", sig), rank, 1, 0, c_out, t_out, p) == ET_ERR_ARG
        with pytest.raises(ArgumentError):
            ref.truncate(sig, rank, 1, 0)
    assert p[0] == -1


def test_python_errors_carry_the_c_status_and_a_hint():
    layer = LrtLayer(3, 4, LrtConfig(rank=1))
    layer.flush_begin()
    layer.reset()
    with pytest.raises(StateError, match="ET_ERR_STATE.*documented order"):
        layer.delta_row(0)
    assert issubclass(RangeError, ValueError)  # the class extreme exponents would raise


def test_a_callers_scratch_is_checked_against_its_own_size(core):
    ffi, _ = core
    need = accumulate_get_buffer_size(64, 64, 4)
    # Before the check the C was told the computed size and wrote past a 4-byte buffer (heap overflow).
    with pytest.raises(NoMemoryError, match=rf"scratch holds 4 bytes but .* needs {need}") as info:
        LrtLayer(64, 64, scratch=ffi.new("uint8_t[]", 4))
    assert info.value.required_bytes == need
    with pytest.raises(ArgumentError, match="must be a cffi array"):
        LrtLayer(64, 64, scratch=ffi.cast("uint8_t *", ffi.new("uint32_t[]", need)))
    shared = ffi.new("uint32_t[]", need // 4 + 16)
    layer = LrtLayer(64, 64, scratch=shared)
    assert layer.scratch_size == ffi.sizeof(shared)
    layer.accumulate(np.ones(64, np.int8), -7, np.ones(64, np.int8), -7)
    assert layer.snapshot()["terms"] == 1
