"""The input-gradient store on chosen sums: every value at and around the clamp limits of the int8
(2^-7) and int16 (2^-15) gradient formats, and the rounding ties next to them, for the 32-bit rule
(shifts of 1 or more) and the 64-bit one (the int16 format at alpha_shift 0 and 1). The C kernel
(tests/c/grad_store.c drives et_dense_backward_input_n) and the twin must give the same gradients
and the same clamp count, and the count must be what the chosen sums say. Random training data
rarely lands exactly on a limit, so the counters' boundaries are checked here."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from digest_builds import build_all, child_env
from edgetrain.model.description import Activation, Layer, LayerKind, Shape
from edgetrain.reference import layers as ref
from edgetrain.reference.fixed import FMT_ACT, FMT_BIAS

ROWS = 64  # output gradients of -128 whose weight rows carry the sum; one more row of 1 sets the rest


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    return build_all(tmp_path_factory, "grad_store.c", ("layers.c", "fixed.c", "model.c"), {"o2": ["-O2"]})["o2"]


def weights_for(sums: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Weights (ROWS + 1, len(sums)) and output gradients with sum_o dz[o] w[o][j] = sums[j]."""
    w = np.zeros((ROWS + 1, len(sums)), dtype=np.int64)
    for j, a in enumerate(sums):
        t = (a + 64) % 128 - 64  # the last row's weight: a - t is a multiple of 128
        s = -(a - t) // 128  # what the ROWS weights must add up to
        assert -128 * ROWS <= s <= 127 * ROWS, a
        q, r = divmod(s, ROWS)
        w[:ROWS, j] = q
        w[:r, j] += 1
        w[ROWS, j] = t
    assert np.all((w >= -128) & (w <= 127))
    dz = np.array([-128] * ROWS + [1], dtype=np.int64)
    assert (dz @ w).tolist() == sums
    return w.astype(np.int8), dz.astype(np.int8)


def edge_sums(shift: int, limit: int) -> list[int]:
    """Sums whose rescale lands on and beside the limits: r 2^shift plus 0, half and half minus one."""
    out = []
    for r in (limit - 1, limit, limit + 1, limit + 2, -limit - 2, -limit - 1, -limit, -limit + 1):
        if shift >= 1:
            half = 1 << (shift - 1)
            base = r << shift
            out += [base, base + half, base + half - 1, base - half, base - half + 1]
        else:
            out += [r >> -shift, (r >> -shift) + 1] if shift < 0 else [r]
    return out


CASES = [(0, a) for a in range(0, 4)] + [(1, a) for a in range(0, 6)]


@pytest.mark.parametrize("wide, alpha", CASES)
def test_store_at_the_limits_matches_the_twin(driver, wide, alpha):
    shift = alpha - 1 if wide else 7 + alpha
    limit = 32767 if wide else 127
    sums = edge_sums(shift, limit)
    w, dz = weights_for(sums)
    n, m = w.shape
    text = f"{n} {m} {alpha} {wide}\n" + " ".join(map(str, w.reshape(-1).tolist() + dz.tolist())) + "\n"
    out = subprocess.run([str(driver)], input=text, capture_output=True, text=True, check=True,
                         env=child_env()).stdout.split()
    c_dx, c_clips = [int(v) for v in out[:-2]], int(out[-1])
    layer = Layer(LayerKind.DENSE, Shape(1, 1, m, FMT_ACT), Shape(1, 1, n, FMT_BIAS), "d", Activation.NONE,
                  alpha_shift=alpha)
    clips = dict.fromkeys(ref.CLIP_FIELDS, 0)
    fn = ref.dense_backward_input_s16 if wide else ref.dense_backward_input
    twin_dx = fn(layer, w, dz, clips).reshape(-1).tolist()
    assert c_dx == twin_dx
    assert c_clips == clips["grad"]
    # independent of both: round half away from zero, then count what leaves [-limit - 1, limit]
    exact = [np.sign(a) * ((abs(a) * 2 ** -shift * 2 + 1) // 2) for a in sums] if shift >= 1 else \
        [a * 2 ** -shift for a in sums]
    want = sum(1 for r in exact if r > limit or r < -limit - 1)
    assert c_clips == want and 0 < want < len(sums)
    assert c_dx == [int(min(max(r, -limit - 1), limit)) for r in exact]
