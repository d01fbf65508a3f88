#!/usr/bin/env python3
"""Write tests/golden/plan_lga_r4.json: the C planner's arena for mcu-cnn and paper-cnn trained with
--optimizer lga at rank 4 under each factor optimizer (parts, total, per-layer LGA figures) and the
full-matrix momentum/Adam planner baselines, with a provenance line.

tests/test_lga_plan.py requires the LGA parts and per-layer figures to equal these exactly (they do
not depend on the ABI) and the whole arena to stay within 3 % of them. Regenerate only on purpose
(a deliberate memory change), and say why in the commit:

    python tools/gen_lga_plan_golden.py
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
from edgetrain.core import ffi  # noqa: E402
from edgetrain.model.presets import preset  # noqa: E402
from edgetrain.reference.lga import OPTIMIZERS  # noqa: E402

OUT = ROOT / "tests" / "golden" / "plan_lga_r4.json"
MODELS = ("mcu-cnn", "paper-cnn")
RANK = 4


def main() -> int:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        rev = "unknown"
    plans = {}
    for name in MODELS:
        planner = CPlanner(preset(name))
        plans[name] = {"baselines": full_baselines(planner)}
        for opt in OPTIMIZERS:
            cfg = lga_train_config(RANK, opt)
            plans[name][opt] = {"parts": planner.plan(cfg),
                                "layers": [{k: f[k] for k in ("name", "n", "m", "rank", "state_bytes", "scratch_bytes",
                                                              "z_bytes")} for f in planner.lga_layers(cfg)]}
    doc = {
        "provenance": (f"written by tools/gen_lga_plan_golden.py from the C planner (et_plan, et_plan_lga_layer) on "
                       f"{platform.machine()} with {ffi.sizeof('void *')}-byte pointers, edgetrain {__version__}, git {rev}, "
                       f"{datetime.date.today().isoformat()}; regenerate only on purpose"),
        "optimizer": "lga", "rank": RANK, "max_growth": 0.03, "plans": plans,
    }
    OUT.write_text(json.dumps(doc, indent=2) + "\n")
    for name, p in plans.items():
        print(f"{name}: adam {p['adam']['parts']['total']} B, full Adam {p['baselines']['full_adam_bytes']} B",
              file=sys.stderr)
    print(f"wrote {OUT.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
