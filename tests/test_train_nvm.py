"""The training step over emulated NVM (firmware_sim): every change through the atomic commit.

Same logical model on every NVM and on the twin; physical writes against independent counts
(snapshot diffs); power loss in the middle of a training step, reboot from NVM alone, and
training on from the recovered state; worn cells counted while training goes on."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from edgetrain import NvmIOError
from edgetrain.backends import PARAMS, CBackend, NumpyBackend, tensor_spans
from edgetrain.config import OPT_SGD, TrainConfig
from edgetrain.model.description import Padding, Shape
from edgetrain.model.presets import _Builder
from edgetrain.reference.fixed import FMT_INPUT
from firmware_sim.commit import CommitView, commit_stage_bytes
from firmware_sim.memory_map import MemoryMap
from firmware_sim.nvm import NvmRegion, technology

PRESETS = ["rram-mcu", "mram-mcu", "pcm-mcu", "flash-mcu"]


def small_model(seed=0):
    """conv (SAME) - pool - BN - conv - flatten - dense - dense - head: weights, biases and a BN block."""
    b = _Builder("small-nvm", Shape(8, 8, 1, FMT_INPUT), seed)
    b.conv("c1", 4, padding=Padding.SAME)
    b.pool("p1")
    b.batchnorm("bn")
    b.conv("c2", 6)
    b.flatten()
    b.dense("fc1", 12)
    b.dense("fc2", 4, relu=False)
    return b.head()


def data(model, n, seed):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, model.input_shape.size), np.uint8)
    for i in range(n):  # mostly dark with a bright blob, like a digit
        x[i, rng.choice(x.shape[1], x.shape[1] // 4, replace=False)] = rng.integers(80, 256, x.shape[1] // 4)
    return x, rng.integers(0, model.n_classes, n)


def emulated(model, spec, seed=0, config=None, region=None, place_image=True):
    region = region if region is not None else MemoryMap.load(spec).make_nvm(seed=seed)
    cfg = config or TrainConfig(optimizer=OPT_SGD, seed=seed)
    cfg.commit_stage_bytes = commit_stage_bytes(region)
    return CBackend(model, cfg, region=region, place_image=place_image), region


def logical_sha(model, offsets, image) -> str:
    """Written out here: sha256 of each layer's weights, bias and BN block, in model order, unpadded."""
    digest = hashlib.sha256()
    for layer, off in zip(model.layers, offsets):
        for tensor, at in ((layer.weights, off.weight), (layer.bias, off.bias), (layer.bn, off.bn)):
            if tensor is not None:
                digest.update(image[at:at + tensor.size * tensor.itemsize].tobytes())
    return digest.hexdigest()


def test_the_logical_model_is_the_same_on_every_nvm_and_the_twin(core, twin):
    model = small_model(1)
    xs, ys = data(model, 12, 1)
    twin_b = NumpyBackend(model, TrainConfig(optimizer=OPT_SGD, seed=1))
    ram = CBackend(model, TrainConfig(optimizer=OPT_SGD, seed=1))
    runs = [ram] + [emulated(model, spec, 1)[0] for spec in PRESETS]
    for k, (x, y) in enumerate(zip(xs, ys)):
        p = twin_b.step(x, y)
        for b in runs:
            twin.equal(b.step(x, y), p, f"prediction {k}")
        if k == 5:
            twin_b.checkpoint()
            for b in runs:
                b.checkpoint()
    twin_b.checkpoint()
    for b in runs:
        b.checkpoint()
    expect = logical_sha(model, twin_b.offsets, twin_b.image())
    assert twin_b.weights_sha256() == expect
    for b in runs:
        twin.equal(b.image().tobytes(), twin_b.image().tobytes(), "logical image")
        twin.equal(b.cell_writes.tolist(), twin_b.cell_writes.tolist(), "logical writes")
        twin.equal(b.weights_sha256(), expect, "weights_sha256")
    assert expect != logical_sha(model, twin_b.offsets, np.frombuffer(twin_b.image_bytes, np.uint8))  # it trained
    # The factory image in NVM was never written: it still holds the initial tensors.
    for b in runs[1:]:
        region = b.cm.region
        assert region.writes[:b.cm.size].sum() == 0


def test_physical_writes_of_training_equal_snapshot_diffs(core):
    """Per step: every program unit that changed was programmed once, plus one whole record per commit;
    the HAL's byte count equals the commit's, and energy follows from the bytes."""
    model = small_model(2)
    b, region = emulated(model, "rram-mcu", 2)
    view = CommitView(model, region, b.commit)
    rings = view.cells()["records"]
    pu = region.tech.program_unit
    xs, ys = data(model, 10, 2)
    for k, (x, y) in enumerate(zip(xs, ys)):
        mem0, writes0, t0, s0 = region.mem.copy(), region.writes.copy(), region.totals(), b.nvm_stats()
        b.step(x, y) if k != 9 else b.checkpoint()
        mem1, t1, s1 = region.mem.copy(), region.totals(), b.nvm_stats()
        delta = (region.writes - writes0).astype(np.int64)
        changed_units = np.repeat((mem0 != mem1).reshape(-1, pu).any(axis=1), pu)
        assert np.array_equal(delta[~rings], changed_units[~rings].astype(np.int64)), f"step {k}"
        commits = s1["commits"] - s0["commits"]
        assert int(delta[rings].sum()) == 16 * commits and set(np.unique(delta[rings])) <= {0, 1}
        assert t1["bytes_programmed"] - t0["bytes_programmed"] == s1["bytes_programmed"] - s0["bytes_programmed"] == int(delta.sum())
        assert t1["energy_fj"] - t0["energy_fj"] == int(delta.sum()) * 8 * round(region.tech.program_energy * 1000)
        if k != 9:
            assert commits >= 1  # SGD changes some weights every step here
    assert s1["record_bytes"] == 16 * s1["commits"]


def _tensors(image, model, offsets):
    return {t: image[off:off + size].tobytes() for t, off, size in tensor_spans(model, offsets)}


def _step_ops(model, spec, xs, ys, steps):
    """Device operations of the step after `steps` warm-up steps (a run of its own)."""
    b, region = emulated(model, spec, 3)
    for x, y in zip(xs[:steps], ys[:steps]):
        b.step(x, y)
    b.checkpoint()
    before = region.totals()["device_ops"]
    b.step(xs[steps], ys[steps])
    return region.totals()["device_ops"] - before


@pytest.mark.parametrize("spec", PRESETS)
def test_power_loss_in_a_training_step_then_reboot_from_nvm_alone(core, twin, spec):
    """Lose power at several device operations of a training step; re-initialise the core from NVM
    alone (factory image + commit recovery); every tensor holds its old or its new version (from the
    twin, which has no commit), the new ones form a prefix of the step's commit order (top layer
    first), and training goes on from the recovered state exactly as the twin does from it."""
    model = small_model(3)
    xs, ys = data(model, 12, 3)
    warm = 4
    n_ops = _step_ops(model, spec, xs, ys, warm)
    weight_layers = [i for i, layer in enumerate(model.layers) if layer.weights is not None]
    order = sorted(weight_layers, reverse=True)  # the backward pass updates the top layer first
    seen = set()
    for point in sorted({1, n_ops // 4, n_ops // 2, 3 * n_ops // 4, n_ops}):
        b, region = emulated(model, spec, 3)
        ref = NumpyBackend(model, TrainConfig(optimizer=OPT_SGD, seed=3))
        for x, y in zip(xs[:warm], ys[:warm]):
            b.step(x, y)
            ref.step(x, y)
        b.checkpoint()
        ref.checkpoint()
        old = _tensors(ref.image(), model, ref.offsets)
        ref.step(xs[warm], ys[warm])
        new = _tensors(ref.image(), model, ref.offsets)
        region.arm_power_loss(point)
        with pytest.raises(NvmIOError):
            b.step(xs[warm], ys[warm])
        region.arm_power_loss(0)
        region.reboot()
        rebooted = CBackend(model, b.config, region=region, place_image=False)
        got = _tensors(rebooted.image(), model, rebooted.offsets)
        state = []
        for tensor in got:
            assert got[tensor] in (old[tensor], new[tensor]), f"{spec} point {point}: tensor {tensor:#x} is a mix"
            if tensor & PARAMS:
                assert got[tensor] == old[tensor]  # a step commits no parameters
        for layer in order:
            if old[layer] != new[layer]:
                state.append("new" if got[layer] == new[layer] else "old")
        assert state == sorted(state, key=lambda s: s == "old"), f"{spec} point {point}: {state} is not a prefix"
        seen.add(tuple(state))
        # Training goes on from the recovered state: the twin set up over the same logical image agrees.
        again = NumpyBackend(model, TrainConfig(optimizer=OPT_SGD, seed=3), image=rebooted.image().tobytes())
        for x, y in zip(xs[warm:], ys[warm:]):
            twin.equal(rebooted.step(x, y), again.step(x, y), "prediction after reboot")
        rebooted.checkpoint()
        again.checkpoint()
        twin.equal(rebooted.image().tobytes(), again.image().tobytes(), "logical image after reboot")
        assert rebooted.weights_sha256() != logical_sha(model, ref.offsets, np.frombuffer(rebooted.image_bytes, np.uint8))
    assert any("old" in s for s in seen) and any(s and s[0] == "new" for s in seen)  # both outcomes occurred


def test_worn_cells_are_counted_and_training_goes_on(core):
    """A tiny endurance: cells go stuck, the HAL answers ET_ERR_WORN, the context counts it and goes on;
    the active tensors are what the cells hold, and recovery accepts them."""
    model = small_model(4)
    tech = technology("rram").replace(endurance=25, endurance_sigma=0.0)
    region = NvmRegion(tech, 64 * 1024, seed=4)
    b, _ = emulated(model, None, 4, region=region)
    xs, ys = data(model, 80, 4)
    hashes = []
    for x, y in zip(xs, ys):
        b.step(x, y)  # never raises: worn cells are not an error
        hashes.append(b.weights_sha256())
    b.checkpoint()
    stats, totals = b.nvm_stats(), region.totals()
    stuck = int(np.count_nonzero(region.stuck))
    assert stats["worn_reports"] > 0 and stats["worn_reports"] == totals["worn_reports"]
    assert stuck > 0 and stuck == totals["cells_worn"]
    assert len(set(hashes[-20:])) > 1  # weights still change after cells wore out
    view = CommitView(model, region, b.commit)
    for layer in view.layers:  # the read pointer shows what the cells hold
        info = view.info(layer)
        if info["active"] != "factory":
            bank = info["bank_offset"]["AB".index(info["active"])]
            assert np.array_equal(view.active(layer).reshape(-1), region.mem[bank:bank + info["bytes"]].view(np.int8))
    before = b.image().tobytes()
    rebooted = CBackend(model, b.config, region=region, place_image=False)
    assert rebooted.image().tobytes() == before
