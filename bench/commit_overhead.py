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


def inplace_write(region: NvmRegion, offset: int, new: bytes) -> None:
    tech = region.tech
    pu = tech.program_unit
    data = np.frombuffer(new, np.uint8)
    unit = tech.erase_unit if tech.is_flash else pu
    for start in range(0, len(data), unit):
        want = data[start:start + unit]
        cur = region.mem[offset + start:offset + start + len(want)]
        if np.array_equal(cur, want):
            continue
        if tech.is_flash and not ((cur & want) == want).all():
            region.erase(offset + start, unit)
        cur = region.mem[offset + start:offset + start + len(want)]
        u = 0
        while u < len(want):
            if np.array_equal(cur[u:u + pu], want[u:u + pu]):
                u += pu
                continue
            run = u + pu
            while run < len(want) and not np.array_equal(cur[run:run + pu], want[run:run + pu]):
                run += pu
            region.program(offset + start + u, want[u:run].tobytes())
            u = run


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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="sim-small")
    p.add_argument("--commits", type=int, default=200)
    p.add_argument("--density", type=float, nargs="+", default=[0.01, 0.05])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    rows = [measure(t, args.model, args.commits, d, args.seed) for d in args.density for t in ("rram", "mram", "pcm", "flash")]
    text = json.dumps({"bench": "commit_overhead", "results": rows}, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
