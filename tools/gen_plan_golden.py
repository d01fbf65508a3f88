#!/usr/bin/env python3
"""Write tests/golden/plan_lrt_r4.json: the C planner's arena for mcu-cnn and paper-cnn trained with
--optimizer lrt at rank 4 (parts, total, per-layer LRT figures), with a provenance line.

tests/test_plan_cli.py fails when a plan grows more than 3 % beyond these figures. Regenerate only
on purpose (a deliberate memory change), and say why in the commit:

    python tools/gen_plan_golden.py
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
from edgetrain.commands.plan import lrt_train_config  # noqa: E402
from edgetrain.core import ffi  # noqa: E402
from edgetrain.model.presets import preset  # noqa: E402

OUT = ROOT / "tests" / "golden" / "plan_lrt_r4.json"
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
        cfg = lrt_train_config(RANK)
        plans[name] = {"parts": planner.plan(cfg),
                       "layers": [{k: f[k] for k in ("name", "n", "m", "rank", "lrt_bytes")} for f in planner.lrt_layers(cfg)]}
    doc = {
        "provenance": (f"written by tools/gen_plan_golden.py from the C planner (et_plan, et_plan_lrt_layer) on "
                       f"{platform.machine()} with {ffi.sizeof('void *')}-byte pointers, edgetrain {__version__}, git {rev}, "
                       f"{datetime.date.today().isoformat()}; regenerate only on purpose"),
        "optimizer": "lrt", "rank": RANK, "max_growth": 0.03, "plans": plans,
    }
    OUT.write_text(json.dumps(doc, indent=2) + "\n")
    for name, p in plans.items():
        print(f"{name}: {p['parts']['total']} B", file=sys.stderr)
    print(f"wrote {OUT.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
