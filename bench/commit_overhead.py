#!/usr/bin/env python3
"""Write overhead of the atomic weight commit against an in-place, non-atomic write.

For each technology, the same sequence of synthetic weight updates (each moving
``density`` of a tensor's weights by one LSB, layers in turn) is written two
ways on fresh emulated regions:

* atomic: the core's et_commit (A/B banks + record ring);
* in place: one copy of each tensor, programming only the program units that
  differ (flash: a page that cannot be reached by clearing bits is erased
  first, then its non-blank units programmed), i.e. the cheapest possible
  write without any power-loss protection.

Prints (and with --json writes) bytes programmed, device operations, energy,
the ratio atomic / in place, the share of record bytes, and the most writes
any bank cell and any record cell received. Figures, not asserts.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from firmware_sim.commit import TrainingArea  # noqa: E402
from firmware_sim.models import load_model  # noqa: E402
from firmware_sim.nvm import NvmRegion, technology  # noqa: E402
from firmware_sim.verify import synthetic_update  # noqa: E402


def _program_runs(region: NvmRegion, offset: int, want: np.ndarray) -> None:
    """Program the runs of program units of want (a multiple of the unit long) that differ from the region."""
    pu = region.tech.program_unit
    cur = region.mem[offset:offset + len(want)]
    differs = np.r_[False, (cur != want).reshape(-1, pu).any(axis=1), False]
    edges = np.flatnonzero(differs[1:] != differs[:-1])
    for first, end in zip(edges[::2], edges[1::2]):
        region.program(offset + first * pu, want[first * pu:end * pu].tobytes())


def inplace_write(region: NvmRegion, offset: int, new: bytes) -> None:
    """The cheapest unprotected write of ``new`` over the only copy at ``offset``: program units that differ
    (flash: every erase page the bytes touch is rewritten as a whole, neighbours included: a page that cannot
    be reached by clearing bits is erased first, then its non-blank units are programmed)."""
    tech = region.tech
    data = np.frombuffer(new, np.uint8)
    if not tech.is_flash:
        _program_runs(region, offset, data)
        return
    unit = tech.erase_unit
    end = offset + len(data)
    for page in range(offset - offset % unit, end, unit):
        want = region.mem[page:page + unit].copy()
        lo, hi = max(page, offset), min(page + unit, end)
        want[lo - page:hi - page] = data[lo - offset:hi - offset]
        cur = region.mem[page:page + unit]
        if np.array_equal(cur, want):
            continue
        if not ((cur & want) == want).all():
            region.erase(page, unit)
        _program_runs(region, page, want)


def measure(tech_name: str, model_name: str, commits: int, density: float, seed: int) -> dict:
    tech = technology(tech_name)
    model = load_model(model_name)
    size = 512 * 1024
    atomic_region = NvmRegion(tech, size, seed=seed)
    area = TrainingArea(model, atomic_region)
    base_region = NvmRegion(tech, size, seed=seed)
    align = tech.align
    offsets, at = {}, 0
    for layer in area.layers:
        w = model.layers[layer].weights
        offsets[layer] = at
        padded = np.frombuffer(w.tobytes(), np.uint8)
        base_region.mem[at:at + w.size] = padded  # factory copy, not counted
        at += -(-w.size // align) * align
    rng = np.random.default_rng(seed)
    current = {layer: model.layers[layer].weights.copy() for layer in area.layers}
    changed_weights = 0
    warmup = 2 * len(area.layers)  # first write of every bank: a one-time fill, reported apart
    a0 = b0 = None
    t0 = time.perf_counter()
    for k in range(commits):
        if k == warmup:
            a0, b0 = atomic_region.totals(), base_region.totals()
        layer = area.layers[k % len(area.layers)]
        new = synthetic_update(rng, current[layer], density)
        changed_weights += int((new != current[layer]).sum())
        current[layer] = new
        area.commit(layer, new)
        w = np.frombuffer(new.tobytes(), np.uint8)
        pad = -(-w.size // tech.program_unit) * tech.program_unit - w.size
        tail = base_region.mem[offsets[layer] + w.size:offsets[layer] + w.size + pad]
        inplace_write(base_region, offsets[layer], w.tobytes() + tail.tobytes())
    elapsed = time.perf_counter() - t0
    a, b = atomic_region.totals(), base_region.totals()
    bank_max = ring_max = 0
    for layer in area.layers:
        info = area.info(layer)
        for off in info["bank_offset"]:
            bank_max = max(bank_max, int(atomic_region.writes[off:off + info["bytes"]].max()))
        ring = atomic_region.writes[info["ring_offset"]:info["ring_offset"] + info["ring_slots"] * info["record_bytes"]]
        ring_max = max(ring_max, int(ring.max()))
    base_max = int(base_region.writes.max())
    stats = area.stats()
    steady = {}
    if a0 is not None:
        steady = {
            "commits": commits - warmup,
            "atomic_bytes": a["bytes_programmed"] - a0["bytes_programmed"],
            "in_place_bytes": b["bytes_programmed"] - b0["bytes_programmed"],
            "ratio_bytes": (a["bytes_programmed"] - a0["bytes_programmed"]) / max(1, b["bytes_programmed"] - b0["bytes_programmed"]),
            "ratio_energy": (a["energy_fj"] - a0["energy_fj"]) / max(1, b["energy_fj"] - b0["energy_fj"]),
        }
    return {
        "technology": tech_name,
        "model": model_name,
        "commits": commits,
        "density": density,
        "weights_changed": changed_weights,
        "atomic": {"bytes_programmed": a["bytes_programmed"], "device_ops": a["device_ops"], "erases": a["erase_calls"],
                   "energy_j": a["energy_fj"] * 1e-15, "record_bytes": stats["record_bytes"],
                   "max_writes_bank_cell": bank_max, "max_writes_record_cell": ring_max},
        "in_place": {"bytes_programmed": b["bytes_programmed"], "device_ops": b["device_ops"], "erases": b["erase_calls"],
                     "energy_j": b["energy_fj"] * 1e-15, "max_writes_cell": base_max},
        "ratio_bytes": a["bytes_programmed"] / max(1, b["bytes_programmed"]),
        "ratio_energy": a["energy_fj"] / max(1, b["energy_fj"]),
        "record_share_of_bytes": stats["record_bytes"] / max(1, a["bytes_programmed"]),
        "steady_state": steady,
        "elapsed_s": elapsed,
    }


def measure_training(memory_map: str, model_name: str, samples: int, seed: int, data_dir: str | None) -> dict:
    """The commits of `edgetrain run --optimizer sgd` (MNIST control stream, summed conv updates) on the
    emulated NVM of ``memory_map``, against in-place writes of the same changes on a second region:
    after every step (and the final checkpoint) each tensor whose active contents changed is written
    over a single copy at its image offset (``inplace_write``)."""
    from edgetrain.backends import CBackend, tensor_spans
    from edgetrain.tasks import stream_order
    from edgetrain.data import mnist
    from edgetrain.model.loader import load_model as load_preset
    from edgetrain.config import OPT_SGD, TrainConfig
    from firmware_sim.commit import CommitView, commit_stage_bytes
    from firmware_sim.memory_map import MemoryMap
    from firmware_sim.report import cell_breakdown

    model = load_preset(model_name, seed)
    mmap = MemoryMap.load(memory_map)
    region = mmap.make_nvm(seed=seed)
    config = TrainConfig(optimizer=OPT_SGD, seed=seed, commit_stage_bytes=commit_stage_bytes(region))
    backend = CBackend(model, config, region=region)
    base = NvmRegion(region.tech, region.size, seed=seed)
    base.mem[:backend.cm.size] = region.mem[:backend.cm.size]  # factory image, not counted
    spans = tensor_spans(model, backend.cm.offsets)
    pu = region.tech.program_unit
    current = {t: backend.active(t) for t, _, _ in spans}

    def write_changes():
        for t, off, size in spans:
            now = backend.active(t)
            if now != current[t]:
                pad = -(-size // pu) * pu - size
                inplace_write(base, off, now + base.mem[off + size:off + size + pad].tobytes())
                current[t] = now

    images, labels = mnist.load("train", data_dir)
    t0 = time.perf_counter()
    for index in stream_order(len(images), seed)[:samples]:
        backend.step(images[index], int(labels[index]))
        write_changes()
    backend.checkpoint()
    write_changes()
    elapsed = time.perf_counter() - t0
    a, b = region.totals(), base.totals()
    stats = backend.nvm_stats()
    fill = sum(2 * size for _, _, size in spans)  # each bank's first copy of every tensor (an upper bound)
    return {
        "memory_map": mmap.name, "technology": region.tech.name, "model": model_name, "samples": samples,
        "optimizer": "sgd", "seed": seed,
        "atomic": {"bytes_programmed": a["bytes_programmed"], "energy_j": a["energy_fj"] * 1e-15,
                   "commits": stats["commits"], "record_bytes": stats["record_bytes"],
                   "max_writes_per_cell": int(region.writes.max()), **cell_breakdown(CommitView(model, region, backend.commit))},
        "in_place": {"bytes_programmed": b["bytes_programmed"], "energy_j": b["energy_fj"] * 1e-15,
                     "max_writes_per_cell": int(base.writes.max())},
        "ratio_bytes": a["bytes_programmed"] / max(1, b["bytes_programmed"]),
        "ratio_energy": a["energy_fj"] / max(1, b["energy_fj"]),
        "ratio_bytes_without_first_fill": (a["bytes_programmed"] - fill) / max(1, b["bytes_programmed"]),
        "first_fill_bytes_bound": fill,
        "record_share_of_bytes": stats["record_bytes"] / max(1, a["bytes_programmed"]),
        "elapsed_s": elapsed,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="sim-small")
    p.add_argument("--commits", type=int, default=200)
    p.add_argument("--density", type=float, nargs="+", default=[0.01, 0.05])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-samples", type=int, default=0, metavar="N",
                   help="instead: N samples of `edgetrain run --optimizer sgd` (MNIST; --model a preset, e.g. mcu-cnn) "
                        "on each --memory-map against in-place writes of the same changes")
    p.add_argument("--memory-map", nargs="+", default=["rram-mcu"], help="with --train-samples (default rram-mcu)")
    p.add_argument("--data-dir", default=None, help="with --train-samples: MNIST folder (default $EDGETRAIN_DATA_DIR)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.train_samples:
        rows = [measure_training(m, args.model, args.train_samples, args.seed, args.data_dir) for m in args.memory_map]
    else:
        rows = [measure(t, args.model, args.commits, d, args.seed) for d in args.density for t in ("rram", "mram", "pcm", "flash")]
    text = json.dumps({"bench": "commit_overhead", "results": rows}, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
