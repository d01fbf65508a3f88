"""Power-loss verification of a weight-commit protocol (``edgetrain verify-commit``).

For each of several commits (synthetic weight updates, layer after layer; or
the commits real SGD training steps make, ``sgd_updates``) the
harness counts the device operations the commit makes, then for each
injection point j restores the NVM to its state before the commit, makes
power fail at the j-th operation, reboots, recovers from NVM alone and
classifies every tensor: the committed one must hold exactly its old or its
new weights, all others their last committed weights; anything else is
``corrupt``. It then repeats the commit on the recovered state and checks the
new weights land (``retry_failed`` counts when they do not). Linear schedule:
injection points 1, 1+s, 1+2s, ... and the last (s spreads at most
``max_points`` points over the commit); exhaustive: every operation.

The protocol is any object with ``layers``, ``recover()``, ``active(tensor)``
and ``commit(tensor, new)`` (and ``tensors`` when it keeps parameter tensors
too); ``AtomicCommit`` is the C core's et_commit. A protocol may also offer
``save_state()``/``load_state(state)``: the harness then puts its state back
with the NVM before each injection instead of recovering it from NVM (the
recovery after the power cut always reads NVM alone).
"""
from __future__ import annotations

import numpy as np

from edgetrain.core import ffi
from edgetrain.errors import ArgumentError, EdgetrainError, NvmIOError
from edgetrain.model import Model

from .commit import TrainingArea
from .nvm import NvmRegion


class AtomicCommit:
    """The core's atomic commit (et_commit) as a protocol under test."""

    def __init__(self, model: Model, region: NvmRegion, **kw):
        self.area = TrainingArea(model, region, **kw)
        self.layers = self.area.layers
        self.tensors = self.area.tensors

    def recover(self) -> None:
        self.area.open()

    def active(self, tensor: int) -> np.ndarray:
        return self.area.active(tensor)

    def commit(self, tensor: int, new: np.ndarray, rows: list[tuple[int, int]] | None = None) -> None:
        self.area.commit(tensor, new, rows)

    def save_state(self) -> bytes:
        """The commit handle's bytes (placement, active banks, sequence numbers, chunks known equal; no pointers
        change)."""
        return bytes(ffi.buffer(self.area.c))

    def load_state(self, state: bytes) -> None:
        """Put back a handle saved over the same NVM contents: what ``recover`` would rebuild, without
        reading the whole area again."""
        ffi.buffer(self.area.c)[:] = state

    @property
    def used_bytes(self) -> int:
        return self.area.area_offset + self.area.area_bytes


def synthetic_update(rng: np.random.Generator, weights: np.ndarray, density: float = 0.05) -> np.ndarray:
    """``weights`` with about ``density`` of its entries moved by one LSB (at least one), inside int8."""
    flat = weights.astype(np.int16).reshape(-1)
    count = max(1, int(round(density * flat.size)))
    idx = rng.choice(flat.size, size=count, replace=False)
    step = rng.choice(np.array([-1, 1], np.int16), size=count)
    step = np.where(flat[idx] + step > 127, -1, np.where(flat[idx] + step < -128, 1, step))
    flat[idx] += step
    return flat.astype(np.int8).reshape(weights.shape)


def _row_runs(old: np.ndarray, new: np.ndarray, params: bool) -> list[tuple[int, int]]:
    """(first_row, n_rows) runs of the rows that differ, as the commit counts rows: a weight tensor has one
    row per output (its first axis), a parameter tensor (biases, or a 4 x c batch-norm block) one row per
    value."""
    if params:
        rows = old.reshape(-1) != new.reshape(-1)
    else:
        rows = (old.reshape(old.shape[0], -1) != new.reshape(new.shape[0], -1)).any(axis=1)
    runs, start = [], None
    for i, changed in enumerate(list(rows) + [False]):
        if changed and start is None:
            start = i
        elif not changed and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


def sgd_updates(model: Model, commits: int, seed: int = 0, checkpoint_every: int = 4, max_steps: int = 10_000,
                config=None) -> list:
    """The commits real training makes: the C core trains ``model`` with SGD (plain-memory NVM) on seeded
    random digit-like samples (a bright blob on dark, random labels), checkpointing every
    ``checkpoint_every`` steps; each step's changed weight tensors (top layer first, as the backward pass
    commits them) and each checkpoint's changed parameter tensors become one update each:
    (tensor id, new contents, changed row runs), until ``commits`` are collected. ``config`` (a
    TrainConfig) trains with another optimizer instead (e.g. lga: the commits of its merges)."""
    from edgetrain.backends import CBackend
    from edgetrain.config import OPT_SGD, TrainConfig

    from .commit import PARAMS, tensor_ids, tensor_spec

    backend = CBackend(model, config if config is not None else TrainConfig(optimizer=OPT_SGD, seed=seed))
    ids = tensor_ids(model)

    def current(t):
        shape, dtype = tensor_spec(model, t)
        return np.frombuffer(backend.active(t), dtype).reshape(shape).copy()

    state = {t: current(t) for t in ids}
    rng = np.random.default_rng(seed)
    size = model.input_shape.size
    updates = []
    for step in range(max_steps):
        x = np.zeros(size, np.uint8)
        x[rng.choice(size, max(1, size // 5), replace=False)] = rng.integers(80, 256, max(1, size // 5))
        backend.step(x, int(rng.integers(0, model.n_classes)))
        changed = sorted((t for t in ids if not t & PARAMS), reverse=True)
        if (step + 1) % checkpoint_every == 0:
            backend.checkpoint()
            changed += [t for t in ids if t & PARAMS]
        for t in changed:
            new = current(t)
            if not np.array_equal(new, state[t]):
                updates.append((t, new, _row_runs(state[t], new, bool(t & PARAMS))))
                state[t] = new
        if len(updates) >= commits:
            return updates[:commits]
    raise ArgumentError(f"model {model.name!r}: {max_steps} training steps made {len(updates)} of the {commits} commits asked "
                        f"for; ask for at most {len(updates)} (--commits)")


def injection_points(n_ops: int, exhaustive: bool, max_points: int) -> list[int]:
    if n_ops <= 0:
        return []
    if exhaustive or n_ops <= max_points:
        return list(range(1, n_ops + 1))
    stride = -(-n_ops // max_points)
    points = list(range(1, n_ops + 1, stride))
    if points[-1] != n_ops:
        points.append(n_ops)
    return points


def _device_ops(region: NvmRegion) -> int:
    return region.totals()["device_ops"]


def run_schedule(region: NvmRegion, protocol, commits: int = 12, exhaustive: bool = False, max_points: int = 16,
                 seed: int = 0, density: float = 0.05, used_bytes: int | None = None, updates: list | None = None) -> dict:
    """Run the schedule; returns the counts (see the module docstring). ``updates``: a list of
    (tensor, new contents, row runs) to commit in turn (``sgd_updates``); default: ``commits`` synthetic
    weight updates, layers in turn."""
    rng = np.random.default_rng(seed)
    layers = list(getattr(protocol, "tensors", protocol.layers) if updates is not None else protocol.layers)
    if updates is not None:
        commits = len(updates)
    committed = {layer: np.array(protocol.active(layer)) for layer in layers}
    out = {"commits": 0, "injection_points": 0, "recovered_old": 0, "recovered_new": 0, "corrupt": 0,
           "retry_failed": 0, "device_ops": 0, "failures": []}
    span = slice(0, used_bytes if used_bytes is not None else region.size)

    saves_state = hasattr(protocol, "save_state")

    def snapshot():
        snap = {k: (v[span].copy() if k != "wear" or not region.tech.is_flash else v.copy()) for k, v in
                {"mem": region.mem, "wear": region.wear, "stuck": region.stuck}.items()}
        if saves_state:
            snap["protocol"] = protocol.save_state()
        return snap

    def restore(snap):
        region.mem[span] = snap["mem"]
        region.stuck[span] = snap["stuck"]
        if region.tech.is_flash:
            region.wear[:] = snap["wear"]
        else:
            region.wear[span] = snap["wear"]
        region.reboot()
        if saves_state:
            protocol.load_state(snap["protocol"])
        else:
            protocol.recover()

    for k in range(commits):
        if updates is None:
            layer = layers[k % len(layers)]
            new, rows = synthetic_update(rng, committed[layer], density), None
        else:
            layer, new, rows = updates[k]
        old = committed[layer]
        commit = (lambda t, w: protocol.commit(t, w)) if rows is None else (lambda t, w: protocol.commit(t, w, rows))
        snap = snapshot()
        before = _device_ops(region)
        commit(layer, new)
        n_ops = _device_ops(region) - before
        out["device_ops"] += n_ops
        for point in injection_points(n_ops, exhaustive, max_points):
            restore(snap)
            region.arm_power_loss(point)
            try:
                commit(layer, new)
            except NvmIOError:
                pass
            region.arm_power_loss(0)
            region.reboot()
            out["injection_points"] += 1
            verdict = "corrupt"
            try:
                protocol.recover()
                got = np.array(protocol.active(layer))
                if np.array_equal(got, old):
                    verdict = "recovered_old"
                elif np.array_equal(got, new):
                    verdict = "recovered_new"
                for other in layers:
                    if other != layer and not np.array_equal(protocol.active(other), committed[other]):
                        verdict = "corrupt"
            except EdgetrainError:
                verdict = "corrupt"
            out[verdict] += 1
            if verdict == "corrupt" and len(out["failures"]) < 10:
                out["failures"].append({"commit": k, "layer": layer, "injection_point": point, "device_ops": n_ops})
            try:
                commit(layer, new)
                if not np.array_equal(protocol.active(layer), new):
                    out["retry_failed"] += 1
            except EdgetrainError:
                out["retry_failed"] += 1
        restore(snap)
        commit(layer, new)
        committed[layer] = new.copy()
        out["commits"] += 1
    return out
