"""Figures of the training firmware: flash and RAM per CPU, instructions per sample and per MAC per
phase on a Cortex-M, emulator throughput. ``firmware_figures()`` returns one JSON-ready dict;
bench/bench_firmware.py is its command line, and ``bench_part`` is the ``firmware`` part of
``edgetrain bench`` (entry-point group ``edgetrain.bench``).

Definitions:
  flash          text + data of the ELF (vectors, code, read-only data, .data's load image)
  ram            data + bss + stack (8 KiB) + the arena et_plan gives for the model and optimizer
  instructions   executed Thumb instructions, counted per translated block and attributed to the
                 phase the firmware last marked (ET_PORT_PHASE): forward, backward (head, input
                 gradients, bias/BN updates), accumulate (LRT: the rank-1 terms fed to the
                 accumulators), update (the weight updates and their NVM commits: SGD's per-sample
                 update, LRT's flush); averaged over the samples after a warm-up sample
  per MAC        instructions / the model's forward multiply-accumulates per sample (conv:
                 out_h*out_w*out_c*k*k*in_c; dense: n*m), for every phase alike
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import replace

import numpy as np

from edgetrain.backends import c_plan
from edgetrain.config import OPT_LRT, OPT_SGD, LrtConfig, TrainConfig
from edgetrain.model import kinds
from edgetrain.model.presets import preset

from . import arm as arm_emulator
from . import firmware as fwb

OPTIMIZERS = {"sgd": OPT_SGD, "lrt": OPT_LRT}


def bench_config(optimizer: str, batch: int) -> TrainConfig:
    """The paper's LRT settings except B (``batch`` for conv and dense), so a short window sees flushes."""
    lrt = replace(LrtConfig(), batch_conv=batch, batch_dense=batch)
    return TrainConfig(optimizer=OPTIMIZERS[optimizer], lrt=lrt)


def _samples(model, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, size=(n, model.input_shape.size), dtype=np.uint8),
            rng.integers(0, model.n_classes, size=n))


def count_instructions(model_name: str, optimizer: str, cpu: str, samples: int, batch: int, build_dir,
                       profile: int = 0) -> dict:
    """Instructions per sample and per MAC per phase for one model and optimizer (counting emulator);
    with ``profile`` N, also each phase's N costliest firmware functions per sample."""
    from .arm import PHASES, ArmBackend

    model = preset(model_name, 0)
    cfg = bench_config(optimizer, batch)
    xs, ys = _samples(model, samples + 1)
    arm = ArmBackend(model, cfg, cpu=cpu, build_dir=build_dir, count=True, profile=profile > 0)
    arm.step(xs[0], ys[0])  # warm-up: not counted (first translation of every block)
    start = arm.instruction_counts()
    before = arm.instruction_profile() if profile else None
    for x, y in zip(xs[1:], ys[1:]):
        arm.step(x, y)
    end = arm.instruction_counts()
    per_sample = {p: (end[p] - start[p]) / samples for p in PHASES}
    macs = kinds.forward_macs(model)
    total = sum(per_sample.values())
    out = {
        "model": model_name, "optimizer": optimizer, "cpu": cpu, "samples": samples,
        "batch": batch if optimizer == "lrt" else None, "forward_macs": macs,
        "instructions_per_sample": {**{p: round(v) for p, v in per_sample.items()}, "total": round(total)},
        "instructions_per_mac": {**{p: round(v / macs, 3) for p, v in per_sample.items()}, "total": round(total / macs, 3)},
        "lrt_accumulate_plus_update_over_forward_backward":
            round((per_sample["accumulate"] + per_sample["update"]) / (per_sample["forward"] + per_sample["backward"]), 3)
            if optimizer == "lrt" else None,
    }
    if profile:
        after = arm.instruction_profile()
        out["profile"] = {}
        for p in PHASES:
            per = {f: (n - before[p].get(f, 0)) / samples for f, n in after[p].items()}
            top = sorted(((n, f) for f, n in per.items() if n > 0), reverse=True)[:profile]
            out["profile"][p] = [{"function": f, "per_sample": round(n),
                                  "share": round(n / per_sample[p], 4) if per_sample[p] else 0.0} for n, f in top]
    return out


def throughput(model_name: str, optimizer: str, cpu: str, samples: int, batch: int, build_dir) -> dict:
    """Training samples per second of the emulator without counting (one mailbox exchange per sample)."""
    from .arm import ArmBackend

    model = preset(model_name, 0)
    xs, ys = _samples(model, samples + 1, seed=1)
    arm = ArmBackend(model, bench_config(optimizer, batch), cpu=cpu, build_dir=build_dir)
    arm.step(xs[0], ys[0])
    t, c = time.perf_counter(), time.process_time()
    for x, y in zip(xs[1:], ys[1:]):
        arm.step(x, y)
    wall, cpu_s = time.perf_counter() - t, time.process_time() - c
    # On a shared machine wall time includes waiting for a core; process time is what the emulator used.
    return {"model": model_name, "optimizer": optimizer, "cpu": cpu, "samples": samples,
            "samples_per_s": round(samples / wall, 2), "samples_per_cpu_s": round(samples / cpu_s, 2)}


def firmware_figures(build_dir, cpus=fwb.CPUS, models=("mcu-cnn", "mlp"), optimizers=("sgd", "lrt"),
                     count_cpu: str = "cortex-m4", samples: int = 10, batch: int = 10,
                     throughput_samples: int = 20, profile: int = 0) -> dict:
    """Sizes per CPU, instruction counts on ``count_cpu``, emulator throughput (see the module docstring)."""
    sizes = {}
    for cpu in cpus:
        fw = fwb.build(cpu, build_dir, fwb.DEFAULT_MAP)
        s = fw.sizes()
        arenas = {f"{m}/{o}": c_plan(preset(m, 0), bench_config(o, batch))["total"] for m in models for o in optimizers}
        sizes[cpu] = {"flash": s["flash"], "text": s["text"], "data": s["data"], "bss": s["bss"], "stack": s["stack"],
                      "arena": arenas, "ram": {k: s["data"] + s["bss"] + s["stack"] + v for k, v in arenas.items()}}
    counts = [count_instructions(m, o, count_cpu, samples, batch, build_dir, profile) for m in models for o in optimizers]
    speed = [throughput(m, o, count_cpu, throughput_samples, batch, build_dir) for m in models for o in optimizers]
    return {"memory_map": fwb.DEFAULT_MAP, "cflags": fwb.CFLAGS, "sizes": sizes, "instructions": counts,
            "throughput": speed, "machine": {"python": platform.python_version(), "processor": platform.machine(),
                                               "load_average": list(os.getloadavg())}}


def bench_part(args) -> dict:
    """The ``firmware`` part of ``edgetrain bench``: firmware_figures for the bench's models (those of
    mcu-cnn and mlp it asks for) and optimizers, built in a temporary folder; --quick: mlp on the M4 only.
    UnsupportedError when the ARM compiler or the emulator is missing."""
    import tempfile

    arm_emulator.require_unicorn()
    fwb.tool("gcc")  # ToolchainMissing (an UnsupportedError) without arm-none-eabi-gcc
    models = tuple(m for m in ("mcu-cnn", "mlp") if m in args.models.split(",")) or ("mlp",)
    optimizers = tuple(o for o in ("sgd", "lrt") if o in args.optimizers.split(",")) or ("sgd",)
    quick = {"cpus": ("cortex-m4",), "models": ("mlp",), "samples": 2, "throughput_samples": 4} if args.quick else {}
    with tempfile.TemporaryDirectory(prefix="edgetrain-bench-fw-") as build_dir:
        return firmware_figures(build_dir, **{"models": models, "optimizers": optimizers, **quick})
