"""The C low-rank accumulator (csrc/src/lrt.c) for one layer, from Python.

``LrtLayer`` owns the C memory of one layer (state + bases, its max-norm trackers, a PRNG and
a scratch buffer) and calls the C entry points; bad arguments raise the typed exceptions of
``edgetrain.errors`` with a message that says what to fix. The bit-exact twin is
``edgetrain.reference.lrt`` (``LrtLayer.snapshot`` and ``reference_snapshot`` give comparable
dictionaries); the float64 yardstick is ``edgetrain.reference.lrt_float``.
"""
from __future__ import annotations

import numpy as np

from .config import LRT_FIELDS, LRT_MAX_RANK, LrtConfig, lrt_config_check
from .core import call, ffi
from .errors import ArgumentError, NoMemoryError
from .reference import lrt as ref
from .reference.maxnorm import UFloat

Config = LrtConfig
KIND_DENSE, KIND_CONV = ref.KIND_DENSE, ref.KIND_CONV

def c_config(cfg: Config):
    """An et_lrt_config_t for ``cfg`` (checked by lrt_config_check first, for a clear message)."""
    lrt_config_check(cfg)
    return ffi.new("et_lrt_config_t *", {f: int(getattr(cfg, f)) for f in LRT_FIELDS})


def config_default() -> Config:
    """The C's defaults (et_lrt_config_default), as a Config."""
    out = ffi.new("et_lrt_config_t *")
    call("et_lrt_config_default", out)
    return Config(**{f: int(getattr(out, f)) for f in LRT_FIELDS})


def state_get_size(n: int, m: int, rank: int) -> int:
    out = ffi.new("size_t *")
    ref.check_dims(n, m, rank)
    call("et_lrt_state_get_size", n, m, rank, out)
    return int(out[0])


def accumulate_get_buffer_size(n_max: int, m_max: int, rank: int) -> int:
    out = ffi.new("size_t *")
    ref.check_dims(n_max, m_max, rank)
    call("et_lrt_accumulate_get_buffer_size", n_max, m_max, rank, out)
    return int(out[0])


def accumulate_batch_get_buffer_size(n_max: int, m_max: int, rank: int, count_max: int) -> int:
    out = ffi.new("size_t *")
    ref.accumulate_batch_get_buffer_size(n_max, m_max, rank, count_max)  # checks the ranges, with a message
    call("et_lrt_accumulate_batch_get_buffer_size", n_max, m_max, rank, count_max, out)
    return int(out[0])


def _ufloat(u) -> UFloat:
    return UFloat(int(u.mant), int(u.exp))


def _scratch_bytes(scratch, need: int) -> int:
    """The size of a caller's scratch buffer, checked against ``need`` bytes."""
    if not isinstance(scratch, ffi.CData) or ffi.typeof(scratch).kind != "array":
        raise ArgumentError(f"scratch must be a cffi array (ffi.new('uint32_t[]', {(need + 3) // 4})) so that its size "
                            f"is known, got {type(scratch).__name__} {scratch!r}")
    size = ffi.sizeof(scratch)
    if size < need:
        raise NoMemoryError(f"scratch holds {size} bytes but this layer's accumulate needs {need} "
                            f"(accumulate_get_buffer_size); give ffi.new('uint32_t[]', {(need + 3) // 4})", need)
    return size


class LrtLayer:
    """One n x m layer's accumulator in the C core.

    ``seed`` seeds the layer's own et_prng_t (the training step shares one generator; tests
    give each layer its own). ``scratch`` may be shared between layers: a cffi array (``ffi.new``)
    of at least accumulate_get_buffer_size(n, m, rank) bytes; a smaller one raises NoMemoryError,
    and the C is always told the size of the buffer it was given.
    """

    def __init__(self, n: int, m: int, config: Config | None = None, kind: int = KIND_DENSE, seed: int = 0,
                 scratch=None):
        self.config = config or Config()
        self.cfg = c_config(self.config)
        self.n, self.m, self.rank = int(n), int(m), int(self.config.rank)
        size = state_get_size(self.n, self.m, self.rank)
        self._mem = ffi.new("uint32_t[]", (size + 3) // 4)
        pst = ffi.new("et_lrt_state_t **")
        if kind not in (KIND_DENSE, KIND_CONV):
            raise ArgumentError(f"layer kind {kind} is neither KIND_DENSE (0) nor KIND_CONV (1)")
        call("et_lrt_state_init", self._mem, size, self.n, self.m, kind, self.cfg, pst, required_bytes=size)
        self.state = pst[0]
        ql, qr = ffi.new("int16_t **"), ffi.new("int16_t **")
        call("et_lrt_bases", self.state, ql, qr)
        self._ql = ffi.cast("int16_t *", ql[0])
        self._qr = ffi.cast("int16_t *", qr[0])
        self.norms = ffi.new("et_lrt_norms_t *")
        call("et_lrt_norms_init", self.norms)
        self.prng = ffi.new("et_prng_t *")
        call("et_prng_seed", self.prng, int(seed) & 0xFFFFFFFF)
        need = accumulate_get_buffer_size(self.n, self.m, self.rank)
        if scratch is None:
            scratch = ffi.new("uint32_t[]", (need + 3) // 4)
        self.scratch, self.scratch_size = scratch, _scratch_bytes(scratch, need)
        self.flush = ffi.new("et_lrt_flush_t *")

    # -- per term ---------------------------------------------------------------
    def accumulate(self, delta, delta_exp: int, x, x_exp: int) -> None:
        """Add delta x^T: delta int8 (n), x int8 or uint8 (m), values worth v * 2^exp."""
        d = np.ascontiguousarray(delta)
        xv = np.ascontiguousarray(x)
        if d.dtype != np.int8 or d.shape != (self.n,):
            raise ArgumentError(f"delta must be an int8 vector of the layer's n = {self.n} outputs, got {d.dtype} {d.shape}")
        if xv.dtype not in (np.int8, np.uint8) or xv.shape != (self.m,):
            raise ArgumentError(f"x must be an int8 or uint8 vector of the layer's m = {self.m} inputs, got {xv.dtype} {xv.shape}")
        for name, e in (("delta_exp", delta_exp), ("x_exp", x_exp)):
            if not ref.EXP_MIN <= int(e) <= ref.EXP_MAX:
                raise ArgumentError(f"{name} = {e} is outside {ref.EXP_MIN}..{ref.EXP_MAX}")
        ref.check_c_values(self.state)
        fn = "et_lrt_accumulate_s8" if xv.dtype == np.int8 else "et_lrt_accumulate_u8"
        ctype = "int8_t *" if xv.dtype == np.int8 else "uint8_t *"
        call(fn, self.state, self.cfg, ffi.cast("int8_t *", ffi.from_buffer(d)), int(delta_exp),
             ffi.cast(ctype, ffi.from_buffer(xv)), int(x_exp), self.scratch, self.scratch_size, self.prng)

    def accumulate_batch(self, deltas, delta_exps, xs, x_exps) -> None:
        """Add the k terms deltas[t] xs[t]^T at once (et_lrt_accumulate_batch_*: the bases rounded once):
        deltas int8 (k, n), xs int8 or uint8 (k, m), one exponent per term, k = 1..BATCH_MAX. The scratch
        must hold accumulate_batch_get_buffer_size(n, m, rank, k) bytes (a larger one is made if the
        layer's own is too small)."""
        d = np.ascontiguousarray(deltas)
        xv = np.ascontiguousarray(xs)
        de = np.ascontiguousarray(np.atleast_1d(delta_exps), dtype=np.int64)
        xe = np.ascontiguousarray(np.atleast_1d(x_exps), dtype=np.int64)
        k = de.shape[0]
        if not 1 <= k <= ref.BATCH_MAX or de.shape != (k,) or xe.shape != (k,):
            raise ArgumentError(f"a batch has 1..{ref.BATCH_MAX} terms with one delta_exp and one x_exp each, "
                                f"got delta_exps of shape {de.shape} and x_exps of shape {xe.shape}")
        if d.dtype != np.int8 or d.shape != (k, self.n):
            raise ArgumentError(f"deltas must be int8 of shape ({k}, {self.n}) (terms x the layer's outputs), "
                                f"got {d.dtype} {d.shape}")
        if xv.dtype not in (np.int8, np.uint8) or xv.shape != (k, self.m):
            raise ArgumentError(f"xs must be int8 or uint8 of shape ({k}, {self.m}) (terms x the layer's inputs), "
                                f"got {xv.dtype} {xv.shape}")
        for name, es in (("delta_exps", de), ("x_exps", xe)):
            if np.any(es < ref.EXP_MIN) or np.any(es > ref.EXP_MAX):
                raise ArgumentError(f"{name} {es.tolist()} has values outside {ref.EXP_MIN}..{ref.EXP_MAX}")
        ref.check_c_values(self.state)
        need = accumulate_batch_get_buffer_size(self.n, self.m, self.rank, k)
        if self.scratch_size < need:
            self.scratch = ffi.new("uint32_t[]", (need + 3) // 4)
            self.scratch_size = ffi.sizeof(self.scratch)
        fn = "et_lrt_accumulate_batch_s8" if xv.dtype == np.int8 else "et_lrt_accumulate_batch_u8"
        ctype = "int8_t *" if xv.dtype == np.int8 else "uint8_t *"
        call(fn, self.state, self.cfg, k, ffi.cast("int8_t *", ffi.from_buffer(d)),
             ffi.new("int32_t[]", de.tolist()), ffi.cast(ctype, ffi.from_buffer(xv)), ffi.new("int32_t[]", xe.tolist()),
             self.scratch, self.scratch_size, self.prng)

    def reorthonormalize(self) -> None:
        """The same estimate on orthonormal bases (et_lrt_reorthonormalize; docs/lrt.md). Every 100 terms
        without a reset (or LrtConfig.reorth_terms = 100) keeps the int16 bases' drift below 2e-3."""
        ref.check_c_values(self.state)
        call("et_lrt_reorthonormalize", self.state, self.scratch, self.scratch_size)

    # -- per flush ----------------------------------------------------------------
    def flush_begin(self) -> dict:
        """One flush attempt; returns what et_lrt_flush_t holds."""
        ref.check_c_values(self.state)
        call("et_lrt_flush_begin", self.state, self.cfg, self.norms, self.flush)
        f = self.flush
        return {
            "g": [int(f.g[k]) for k in range(self.rank)],
            "shift": int(f.shift),
            "nonzero": int(f.nonzero),
            "apply": int(f.apply),
            "eta": _ufloat(f.eta),
            "div_l": _ufloat(f.div_l),
            "div_r": _ufloat(f.div_r),
        }

    def delta_row(self, i: int) -> np.ndarray:
        out = np.zeros(self.m, dtype=np.int8)
        nz = ffi.new("uint32_t *")
        if not 0 <= int(i) < self.n:
            raise ArgumentError(f"row {i} is outside 0..{self.n - 1}")
        call("et_lrt_delta_row", self.state, self.flush, int(i), ffi.cast("int8_t *", ffi.from_buffer(out)), nz)
        return out

    def delta_matrix(self) -> np.ndarray:
        """Every row of dW (host convenience; the device streams rows)."""
        return np.stack([self.delta_row(i) for i in range(self.n)])

    def reset(self) -> None:
        call("et_lrt_reset", self.state)

    # -- inspection -------------------------------------------------------------------
    def snapshot(self) -> dict:
        """The whole C state as plain values (compare with reference_snapshot)."""
        st, r = self.state, self.rank
        ql = np.frombuffer(ffi.buffer(self._ql, 2 * self.n * r), dtype=np.int16).reshape(self.n, r).copy()
        qr = np.frombuffer(ffi.buffer(self._qr, 2 * self.m * r), dtype=np.int16).reshape(self.m, r).copy()
        planes = ffi.buffer(ffi.cast("uint8_t *", self._qr) + 2 * self.m * r,
                            ref.plane_bytes(self.n, r) + ref.plane_bytes(self.m, r))[:]
        lo_l, lo_r = ref.planes_unpack(planes, self.n, self.m, r)
        return {
            "ql": ql.tolist(), "qr": qr.tolist(), "lo_l": lo_l.tolist(), "lo_r": lo_r.tolist(),
            "exp_l": st.exp_l, "exp_r": st.exp_r, "f_l": st.f_l, "f_r": st.f_r,
            "c_mant": [int(st.c_mant[k]) for k in range(r)], "c_exp": st.c_exp,
            "b_eff": st.b_eff, "terms": st.terms, "skipped": st.skipped,
            "c_mant_unused": [int(st.c_mant[k]) for k in range(r, LRT_MAX_RANK)],
            "prng": int(self.prng.state),
            "norms": [(int(t.count), int(t.beta_pow), int(t.moving.mant), int(t.moving.exp)) for t in (self.norms.l, self.norms.r)],
        }

    def to_state(self) -> ref.State:
        """The C state as a twin State (e.g. to continue in the twin)."""
        s = self.snapshot()
        return ref.State(self.n, self.m, self.rank, int(self.state.kind), np.array(s["ql"], np.int16).reshape(self.n, self.rank),
                         np.array(s["qr"], np.int16).reshape(self.m, self.rank), s["exp_l"], s["exp_r"], s["c_mant"],
                         s["c_exp"], s["b_eff"], s["terms"], s["skipped"], s["f_l"], s["f_r"],
                         np.array(s["lo_l"], np.int64), np.array(s["lo_r"], np.int64))

    def estimate(self) -> np.ndarray:
        return self.to_state().estimate()


def reference_snapshot(st: ref.State, prng=None, norms: ref.Norms | None = None) -> dict:
    """The twin's state in LrtLayer.snapshot's layout."""
    out = {
        "ql": st.ql.tolist(), "qr": st.qr.tolist(), "lo_l": [int(v) for v in st.lo_l], "lo_r": [int(v) for v in st.lo_r],
        "exp_l": st.exp_l, "exp_r": st.exp_r, "f_l": st.f_l, "f_r": st.f_r, "c_mant": list(st.c_mant), "c_exp": st.c_exp, "b_eff": st.b_eff, "terms": st.terms, "skipped": st.skipped,
        "c_mant_unused": [0] * (LRT_MAX_RANK - st.rank),
    }
    if prng is not None:
        out["prng"] = prng.state
    if norms is not None:
        out["norms"] = [(t.count, t.beta_pow, t.moving.mant, t.moving.exp) for t in (norms.l, norms.r)]
    return out
