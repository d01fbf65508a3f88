#!/usr/bin/env python3
"""Training dynamics of the integer core against the float64 network (docs/training.md).

Runs the same prequential MNIST stream (the order `edgetrain run` uses) through
  * the integer core (C backend, the paper's formats),
  * FloatNet with the paper's optimizer: unbounded ranges, float or 8-bit weights,
  * FloatNet with the formats' clipping ranges and 8-bit weights (rounding dropped elsewhere),
and prints the accuracy of each window of 1000 samples (the last 500 of each), as JSON.

    python tools/compare_float_training.py --model mcu-cnn --samples 12000 --json bench/out/float_dynamics.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgetrain.backends import make_backend  # noqa: E402
from edgetrain.config import TrainConfig  # noqa: E402
from edgetrain.tasks import stream_order  # noqa: E402
from edgetrain.data import mnist  # noqa: E402
from edgetrain.model.presets import preset  # noqa: E402
from edgetrain.reference.float_model import FloatNet, real_input  # noqa: E402


def windows(hits, every=1000, last=500):
    return [round(float(np.mean(hits[k - last : k])), 3) for k in range(every, len(hits) + 1, every)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mcu-cnn")
    ap.add_argument("--samples", type=int, default=12000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default="integer,float,float-w8,float-ranges-w8")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--json", default="-")
    args = ap.parse_args(argv)
    images, labels = mnist.load("train", args.data_dir)
    order = stream_order(len(images), args.seed)[: args.samples]
    model = preset(args.model, args.seed)
    out = {"model": args.model, "samples": args.samples, "seed": args.seed, "window": "last 500 of each 1000", "runs": {}}
    for variant in args.variants.split(","):
        hits = np.zeros(args.samples, bool)
        if variant == "integer":
            b = make_backend("c", model, TrainConfig(seed=args.seed))
            for k, i in enumerate(order):
                hits[k] = b.step(images[i], int(labels[i])) == labels[i]
        else:
            net = FloatNet(model, ranges="ranges" in variant)
            q = variant.endswith("w8")
            for k, i in enumerate(order):
                hits[k] = net.sgd_step(real_input(images[i], model.input_shape), int(labels[i]), quantize_weights=q) == labels[i]
        out["runs"][variant] = windows(hits)
        print(variant, out["runs"][variant], file=sys.stderr, flush=True)
    text = json.dumps(out, indent=2)
    if args.json == "-":
        print(text)
    else:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
