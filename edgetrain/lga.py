"""Python handle on one C low-rank gradient approximation state (et_lga.h).

``LgaLayer`` owns the state and its gradient scratch and offers the twin's
operations (``edgetrain.reference.lga``) on the C core, so that tests and
tools can drive both the same way and compare ``snapshot()`` with ``==``.
"""
from __future__ import annotations

import numpy as np

from .config import LGA_ADAM, LGA_FIELDS, LGA_SGD, LgaConfig
from .core import call, ffi
from .reference import lga as ref


def c_config(config: LgaConfig):
    """An et_lga_config_t for ``config`` (no checks here: the C checks)."""
    return {f: int(getattr(config, f)) for f in LGA_FIELDS}


class LgaLayer:
    """One n x m layer's factors and optimizer states in C memory."""

    def __init__(self, n: int, m: int, config: LgaConfig, seed: int = 0):
        self.n, self.m, self.config = n, m, config
        self.cfg = ffi.new("et_lga_config_t *", c_config(config))
        size = ffi.new("uint32_t *")
        call("et_lga_state_get_size", n, m, config.rank, config.optimizer, size)
        self.bytes = size[0]
        self.mem = ffi.new("uint64_t[]", (self.bytes + 7) // 8)
        call("et_lga_grad_get_buffer_size", n, m, config.rank, size)
        self.scratch_bytes = size[0]
        self.scratch = ffi.new("uint64_t[]", (self.scratch_bytes + 7) // 8)
        self.prng = ffi.new("et_prng_t *")
        call("et_prng_seed", self.prng, seed)
        pst = ffi.new("et_lga_state_t **")
        call("et_lga_state_init", self.mem, self.bytes, n, m, self.cfg, self.prng, pst)
        self.state = pst[0]

    def project(self, x, x_exp: int) -> np.ndarray:
        xv = np.ascontiguousarray(x, dtype=np.int16)
        u = np.zeros(self.config.rank, dtype=np.int16)
        call("et_lga_project", self.state, ffi.from_buffer("int16_t[]", xv), x_exp, ffi.from_buffer("int16_t[]", u))
        return u

    def correct(self, u, z) -> np.ndarray:
        out = np.array(z, dtype=np.int16)
        uv = np.ascontiguousarray(u, dtype=np.int16)
        call("et_lga_correct", self.state, ffi.from_buffer("int16_t[]", uv), ffi.from_buffer("int16_t[]", out))
        return out

    def grad_zero(self) -> None:
        call("et_lga_grad_zero", self.state, self.scratch, self.scratch_bytes)

    def grad_add(self, delta, x, x_exp: int) -> None:
        d = np.ascontiguousarray(delta, dtype=np.int8)
        xv = np.ascontiguousarray(x, dtype=np.int16)
        call("et_lga_grad_add", self.state, self.scratch, self.scratch_bytes, ffi.from_buffer("int8_t[]", d),
             ffi.from_buffer("int16_t[]", xv), x_exp)

    def step(self, x_exp: int) -> None:
        call("et_lga_step", self.state, self.cfg, self.scratch, self.scratch_bytes, x_exp)

    def merge(self, alpha_shift: int, w) -> np.ndarray:
        w = np.ascontiguousarray(w, dtype=np.int8).reshape(self.n, self.m)
        out = np.zeros_like(w)
        for o in range(self.n):
            call("et_lga_merge_row", self.state, o, alpha_shift, ffi.from_buffer("int8_t[]", w[o]),
                 ffi.from_buffer("int8_t[]", out[o]), ffi.NULL)
        return out

    def restart(self) -> None:
        call("et_lga_restart", self.state, self.cfg, self.prng)

    def _array(self, offset: int, dtype, count: int) -> np.ndarray:
        raw = ffi.buffer(self.mem, self.bytes)
        return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).copy()

    def snapshot(self) -> dict:
        """Every field of the state, as reference_snapshot gives for the twin."""
        n, m, r, opt = self.n, self.m, self.config.rank, self.config.optimizer
        st = self.state
        a8 = lambda v: (v + 7) & ~7  # noqa: E731
        off = ref.HEADER_BYTES
        out = {"a": self._array(off, np.int16, n * r).reshape(n, r)}
        off += a8(2 * n * r)
        out["b"] = self._array(off, np.int16, r * m).reshape(r, m)
        off += a8(2 * r * m)
        if opt != LGA_SGD:
            out["mu_a"] = self._array(off, np.int32, n * r).reshape(n, r)
            off += a8(4 * n * r)
            out["mu_b"] = self._array(off, np.int32, r * m).reshape(r, m)
            off += a8(4 * r * m)
        if opt == LGA_ADAM:
            out["nu_a"] = self._array(off, np.uint64, n * r).reshape(n, r)
            off += a8(8 * n * r)
            out["nu_b"] = self._array(off, np.uint64, r * m).reshape(r, m)
        out.update(steps=st.steps, samples=st.samples, beta1_pow=st.beta1_pow, beta2_pow=st.beta2_pow,
                   merges=st.merges, norm_a=(st.norm_a.count, st.norm_a.beta_pow, st.norm_a.moving.mant,
                                             st.norm_a.moving.exp),
                   norm_b=(st.norm_b.count, st.norm_b.beta_pow, st.norm_b.moving.mant, st.norm_b.moving.exp),
                   prng=self.prng.state)
        return out


def reference_snapshot(st: ref.State, prng) -> dict:
    """The twin state's fields in LgaLayer.snapshot's form."""
    out = {"a": st.a, "b": st.b}
    if st.optimizer != LGA_SGD:
        out.update(mu_a=st.mu_a, mu_b=st.mu_b)
    if st.optimizer == LGA_ADAM:
        out.update(nu_a=st.nu_a, nu_b=st.nu_b)
    out.update(steps=st.steps, samples=st.samples, beta1_pow=int(st.beta1_pow), beta2_pow=int(st.beta2_pow),
               merges=st.merges, norm_a=_mn(st.norm_a), norm_b=_mn(st.norm_b), prng=prng.state)
    return out


def _mn(mn) -> tuple:
    return (mn.count, mn.beta_pow, mn.moving.mant, mn.moving.exp)
