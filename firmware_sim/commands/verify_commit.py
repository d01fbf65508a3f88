"""edgetrain verify-commit: power-loss verification of the atomic weight commit.

Runs firmware_sim.verify's schedule on the emulated NVM of one memory map
(--memory-map) or of every preset, and prints JSON with at least
commits, injection_points, recovered_old, recovered_new and
corrupt (totals, plus the same per memory map). Exit status 1 when any
injection point left a corrupt tensor or a retried commit failed.
"""
from __future__ import annotations

import json
import sys
import time

from edgetrain.commands import argtypes
from edgetrain.outputs import write_atomic

SUM_KEYS = ("commits", "injection_points", "recovered_old", "recovered_new", "corrupt", "retry_failed", "device_ops")


def register(sub) -> None:
    p = sub.add_parser("verify-commit", help="inject power loss at every write of weight commits and check recovery",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("--model", default="sim-tiny",
                   help="sim-tiny, sim-small (firmware_sim.models), a preset (mlp, mcu-cnn, ...) or a .etm file (default sim-tiny)")
    p.add_argument("--updates", choices=("synthetic", "sgd", "lga"), default="synthetic",
                   help="what each commit writes: synthetic updates of 5%% of a weight tensor, or the commits real SGD "
                        "training steps make (weights every step, biases/BN at a checkpoint every 4 steps), or those of "
                        "--optimizer lga (Adam, rank 4, a merge every 2 samples) (default synthetic)")
    p.add_argument("--memory-map", default=None, help="preset name or TOML file (default: every preset)")
    p.add_argument("--exhaustive", action="store_true", help="inject at every device operation of every commit")
    p.add_argument("--commits", type=argtypes.int_range(1), default=None, help="commits to run per memory map (default 48 exhaustive, 12 linear)")
    p.add_argument("--max-points", type=argtypes.int_range(1), default=16, help="linear schedule: injection points per commit (default 16)")
    p.add_argument("--ring-slots", type=argtypes.int_range(2, 1024), default=8,
                   help="commit records per tensor ring, 2..1024 (default 8)")
    p.add_argument("--seed", type=argtypes.int_range(0, 2**32 - 1), default=0,
                   help="seed of the weight updates, endurance and tearing, 0..2^32-1 (default 0)")
    p.add_argument("--json", dest="json_file", default=None, type=argtypes.output_file, help="also write the JSON to this file")
    p.set_defaults(func=run)


def verify(model_name: str, map_specs: list[str], exhaustive: bool, commits: int, max_points: int, ring_slots: int,
           seed: int, updates: str = "synthetic") -> dict:
    from edgetrain.commands.lga_flags import lga_verify_config
    from edgetrain.errors import ArgumentError
    from edgetrain.model.image import layout

    from ..commit import area_size
    from ..memory_map import MemoryMap
    from ..models import load_model
    from ..verify import AtomicCommit, run_schedule, sgd_updates

    if commits < 1 or max_points < 1:
        raise ArgumentError(f"--commits and --max-points must be >= 1 (got {commits}, {max_points})")
    if not 2 <= ring_slots <= 1024:
        raise ArgumentError(f"--ring-slots {ring_slots} is outside 2..1024")
    if not 0 <= seed < 2**32:
        raise ArgumentError(f"--seed {seed} is outside 0..2^32-1")
    model = load_model(model_name)
    result = {"model": model.name, "schedule": "exhaustive" if exhaustive else "linear", "updates": updates,
              "seed": seed, **{k: 0 for k in SUM_KEYS}, "memory_maps": {}}
    recorded = sgd_updates(model, commits, seed) if updates == "sgd" else None
    recorded = sgd_updates(model, commits, seed, config=lga_verify_config(seed)) if updates == "lga" else recorded
    for spec in map_specs:
        mmap = MemoryMap.load(spec)
        region = mmap.make_nvm(seed=seed)
        image, _ = layout(model, align=max(4, region.tech.program_unit))
        mmap.check_image(len(image), area_size(model, region, ring_slots))
        protocol = AtomicCommit(model, region, ring_slots=ring_slots)
        counts = run_schedule(region, protocol, commits=commits, exhaustive=exhaustive, max_points=max_points,
                              seed=seed, used_bytes=protocol.used_bytes, updates=recorded)
        counts["technology"] = region.tech.name
        result["memory_maps"][mmap.name] = counts
        for key in SUM_KEYS:
            result[key] += counts[key]
    return result


def run(args) -> int:
    from ..memory_map import presets

    commits = args.commits if args.commits is not None else (48 if args.exhaustive else 12)
    maps = [args.memory_map] if args.memory_map is not None else presets()
    start = time.perf_counter()
    result = verify(args.model, maps, args.exhaustive, commits, args.max_points, args.ring_slots, args.seed, args.updates)
    result["elapsed_s"] = round(time.perf_counter() - start, 3)
    text = json.dumps(result, indent=2)
    print(text, flush=True)
    if args.json_file:
        write_atomic(args.json_file, text + "\n")  # the report is on stdout already
    print(verdict(result), file=sys.stderr)
    return 1 if result["corrupt"] or result["retry_failed"] else 0


def verdict(result: dict) -> str:
    """One line for a human: pass or fail, with the counts behind it."""
    maps = len(result["memory_maps"])
    what = (f"{result['model']}, {result['updates']} updates, {result['schedule']} schedule: {result['commits']:,} commits "
            f"on {maps} memory map{'s' if maps != 1 else ''}, {result['injection_points']:,} power cuts "
            f"({result['recovered_old']:,} recovered old, {result['recovered_new']:,} new) in {result['elapsed_s']:.1f} s")
    if result["corrupt"] or result["retry_failed"]:
        return (f"edgetrain verify-commit: FAIL: {result['corrupt']:,} corrupt recoveries, {result['retry_failed']:,} "
                f"failed retries; {what}")
    return f"edgetrain verify-commit: ok, 0 corrupt: {what}"
