#!/usr/bin/env python3
"""Regenerate the fuzzer's seed corpus (tests/fuzz/seeds/): valid .etm blobs of the test models.

Run on purpose only; the seeds are checked in. Usage: python tools/gen_fuzz_seeds.py
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def main() -> int:
    import edgetrain
    from edgetrain.model.etm import write_etm
    from etm_helpers import conv_model
    from test_model_check import tiny_model

    out = ROOT / "tests" / "fuzz" / "seeds"
    out.mkdir(parents=True, exist_ok=True)
    seeds = {
        "tiny_a2.etm": write_etm(tiny_model(), align=2),
        "tiny_a4_prov.etm": write_etm(tiny_model(), align=4, provenance="seed"),
        "conv_a16.etm": write_etm(conv_model(), align=16),
    }
    lines = [f"# provenance: tools/gen_fuzz_seeds.py, edgetrain {edgetrain.__version__}; write_etm of tests' tiny_model() and conv_model()"]
    for name, blob in seeds.items():
        (out / name).write_bytes(blob)
        lines.append(f"{name} {len(blob)} bytes sha256 {hashlib.sha256(blob).hexdigest()}")
    (out / "PROVENANCE.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
