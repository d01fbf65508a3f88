"""Host memory of the NVM emulator: resident set size against the emulated region's size (JSON).

Each technology runs in a fresh interpreter: it builds an ``NvmRegion`` of ``--size`` bytes, places
the ``--model`` image and training area at its start and makes ``--commits`` synthetic commits, then
reports the process's peak RSS (``getrusage``) and its RSS now, less the same interpreter's baseline
with every module imported. Usage::

    python bench/nvm_memory.py [--size-mib 64] [--model mcu-cnn] [--commits 20] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys
import numpy as np
from firmware_sim.commit import TrainingArea
from firmware_sim.models import load_model
from firmware_sim.nvm import NvmRegion, technology
from firmware_sim.verify import synthetic_update

def rss_now():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()

tech, size, model_name, commits = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
model = load_model(model_name)
base_now, base_peak = rss_now(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
region = NvmRegion(technology(tech), size, seed=1)
area = TrainingArea(model, region)
rng = np.random.default_rng(1)
for k in range(commits):
    layer = area.layers[k % len(area.layers)]
    area.commit(layer, synthetic_update(rng, np.array(area.active(layer))))
print(json.dumps({"rss_now": rss_now() - base_now,
                  "rss_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base_peak,
                  "baseline_rss": base_now, "device_ops": region.totals()["device_ops"]}))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mib", type=int, default=64, help="emulated region size in MiB (default 64)")
    p.add_argument("--model", default="mcu-cnn", help="model whose image and training area are placed (default mcu-cnn)")
    p.add_argument("--commits", type=int, default=20, help="synthetic commits made (default 20)")
    p.add_argument("--tech", nargs="+", default=["rram", "mram", "pcm", "flash"], help="technologies (default all)")
    p.add_argument("--json", metavar="FILE", help="also write the JSON here")
    args = p.parse_args()
    size = args.size_mib * 1024 * 1024
    out = {"region_bytes": size, "model": args.model, "commits": args.commits, "technologies": {}}
    for tech in args.tech:
        run = subprocess.run([sys.executable, "-c", CHILD, tech, str(size), args.model, str(args.commits)],
                             capture_output=True, text=True, check=True)
        r = json.loads(run.stdout)
        r["peak_over_region"] = round(r["rss_peak"] / size, 3)
        r["now_over_region"] = round(r["rss_now"] / size, 3)
        out["technologies"][tech] = r
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
