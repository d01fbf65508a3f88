#!/usr/bin/env python3
"""Write the pinned plans: the C planner's arena for mcu-cnn and paper-cnn at rank 4, with a provenance
line each.

* tests/golden/plan_lrt_r4.json, --optimizer lrt: parts, total, per-layer LRT figures.
  tests/test_plan_cli.py fails when a plan grows more than 3 % beyond these figures.
* tests/golden/plan_lga_r4.json, --optimizer lga under each factor optimizer: parts, total, per-layer
  LGA figures, and the full-matrix momentum/Adam planner baselines. tests/test_lga_cli.py requires
  the LGA parts and per-layer figures to equal these exactly (they do not depend on the ABI) and the
  whole arena to stay within 3 %.

Regenerate only on purpose (a deliberate memory change), and say why in the commit:

    python tools/gen_plan_golden.py [lrt|lga]      # both when none is named
"""
from __future__ import annotations

import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgetrain import __version__  # noqa: E402
from edgetrain.backends import CPlanner  # noqa: E402
from edgetrain.commands.lga_flags import full_baselines, lga_train_config  # noqa: E402
from edgetrain.commands.plan import lrt_train_config  # noqa: E402
from edgetrain.config import LGA_OPTIMIZERS  # noqa: E402
from edgetrain.core import ffi  # noqa: E402
from edgetrain.model.presets import preset  # noqa: E402

GOLDEN = ROOT / "tests" / "golden"
MODELS = ("mcu-cnn", "paper-cnn")
RANK = 4


def lrt_plans() -> dict:
    plans = {}
    for name in MODELS:
        planner = CPlanner(preset(name))
        cfg = lrt_train_config(RANK)
        plans[name] = {"parts": planner.plan(cfg),
                       "layers": [{k: f[k] for k in ("name", "n", "m", "rank", "lrt_bytes")} for f in planner.lrt_layers(cfg)]}
        print(f"lrt {name}: {plans[name]['parts']['total']} B", file=sys.stderr)
    return plans


def lga_plans() -> dict:
    plans = {}
    for name in MODELS:
        planner = CPlanner(preset(name))
        plans[name] = {"baselines": full_baselines(planner)}
        for opt in LGA_OPTIMIZERS:
            cfg = lga_train_config(RANK, opt)
            plans[name][opt] = {"parts": planner.plan(cfg),
                                "layers": [{k: f[k] for k in ("name", "n", "m", "rank", "state_bytes", "scratch_bytes",
                                                              "z_bytes")} for f in planner.lga_layers(cfg)]}
        print(f"lga {name}: adam {plans[name]['adam']['parts']['total']} B, "
              f"full Adam {plans[name]['baselines']['full_adam_bytes']} B", file=sys.stderr)
    return plans


# optimizer -> (the planner functions it pins, the plans)
PINNED = {"lrt": ("et_plan, et_plan_lrt_layer", lrt_plans), "lga": ("et_plan, et_plan_lga_layer", lga_plans)}


def write(optimizer: str, rev: str) -> None:
    functions, plans = PINNED[optimizer]
    out = GOLDEN / f"plan_{optimizer}_r{RANK}.json"
    doc = {
        "provenance": (f"written by tools/gen_plan_golden.py from the C planner ({functions}) on "
                       f"{platform.machine()} with {ffi.sizeof('void *')}-byte pointers, edgetrain {__version__}, git {rev}, "
                       f"{datetime.date.today().isoformat()}; regenerate only on purpose"),
        "optimizer": optimizer, "rank": RANK, "max_growth": 0.03, "plans": plans(),
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}", file=sys.stderr)


def main(argv: list[str]) -> int:
    unknown = [a for a in argv if a not in PINNED]
    if unknown:
        print(f"usage: gen_plan_golden.py [{'|'.join(PINNED)}] (unknown: {' '.join(unknown)})", file=sys.stderr)
        return 2
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        rev = "unknown"
    for optimizer in argv or PINNED:
        write(optimizer, rev)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
