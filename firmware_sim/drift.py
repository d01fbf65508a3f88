"""Weight drift on an emulated NVM region: the physics (edgetrain.physics) applied to the
active tensors of a TrainingArea, honouring the region's stuck bits.

Drift changes NVM contents directly, bypassing the HAL, so it never counts as a
programmed write, a bit flip in the write figures, energy or wear.
"""
from __future__ import annotations

import numpy as np

from edgetrain.core import lib
from edgetrain.errors import ArgumentError, raise_for_status
from edgetrain.physics import DRIFT_KINDS, EVERY, P0, SIGMA0, analog_drift, digital_drift

__all__ = ["EVERY", "P0", "SIGMA0", "analog_drift", "digital_drift", "active_weight_views", "drift_active_weights"]


def active_weight_views(area) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Writable views (weights, stuck mask) of every active tensor of a TrainingArea, in NVM."""
    region = area.region
    base = region.mem.__array_interface__["data"][0]
    out = {}
    for layer in area.layers:
        active = area.active(layer)
        offset = active.__array_interface__["data"][0] - base
        if not 0 <= offset <= region.size - active.size:
            raise ArgumentError(f"layer {layer}: active weights lie outside NVM region {region.name!r}")
        n = active.size
        out[layer] = (region.mem[offset:offset + n].view(np.int8).reshape(active.shape),
                      region.stuck[offset:offset + n].reshape(active.shape))
    return out


def drift_active_weights(area, kind: str, rng: np.random.Generator, **kw) -> int:
    """Apply one drift step ("analog" or "digital") to every active tensor; returns weights changed."""
    fn = DRIFT_KINDS.get(kind)
    if fn is None:
        raise ArgumentError(f"drift kind must be 'analog' or 'digital', got {kind!r}")
    views = active_weight_views(area)
    changed = sum(fn(w, rng, stuck=s, **kw) for w, s in views.values())
    for layer in views:  # the cells changed behind the commit: it re-reads them before the next commit
        raise_for_status(lib.et_commit_refresh(area.c, layer), f"et_commit_refresh({layer})")
    return changed
