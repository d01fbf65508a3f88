"""``edgetrain bench``: how fast the C core is on this machine, as JSON.

Three built-in parts (``--parts``, default all, with the parts packages built on edgetrain add under the
entry-point group ``edgetrain.bench``: firmware_sim's ``firmware``, the Cortex-M firmware's flash, RAM
and instructions per phase, see docs/firmware.md):

* ``lrt``: the low-rank accumulator per rank-1 term, per shape and mode (biased with the kappa rule
  off: every term projected, decomposed and rotated; unbiased with kappa 100, the paper's setting;
  both again in batches of 16 terms per call, the bases rounded once per batch, docs/lrt.md):
  microseconds per term (median of timed blocks, after a warm-up that fills the bases) and, with
  valgrind present, x86 instructions per term (callgrind);
* ``train``: milliseconds per training sample of the C backend per model and optimizer (MNIST from
  --data-dir or $EDGETRAIN_DATA_DIR, seeded random digits otherwise; the source is recorded);
* ``phases``: callgrind instructions per training sample by phase (forward, the backward kernels,
  low-rank accumulator and flush, commit, the rest) and per multiply-accumulate of the forward pass.

Instruction counts are differences of two callgrind runs (N and 2N samples or terms), so the
start-up and the first, cheaper terms drop out. For ``lrt``, ``--count-terms N`` sets N: the default
(max(20, 8 rank)) counts terms while the bases still fill, before the kappa rule discards any;
a few hundred count the unbiased mode's steady state, where it discards about 16 % (128 x 1152) and
41 % (512 x 2048) of the terms (``counted_skipped_fraction`` in the JSON). Where the core has per-instruction-set copies of its
hot loops (x86-64 Linux, gcc 11+), times are the native CPU's copy and counts the AVX2 copy
(valgrind's CPU has no AVX-512); ``machine.core_clones`` says which. Times are wall clock on a machine that may be
shared: compare times only within one run; instruction counts are what is stable.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import ArgumentError, UnsupportedError
from ..outputs import write_report
from . import argtypes

# name -> (unbiased, kappa_th, terms per call: 1 = et_lrt_accumulate_u8, else et_lrt_accumulate_batch_u8)
MODES = {"biased": (0, 0, 1), "unbiased-k100": (1, 100, 1), "biased-batch16": (0, 0, 16),
         "unbiased-k100-batch16": (1, 100, 16)}
DEFAULT_SHAPES = "128x1152,512x2048"
QUICK_SHAPES = "16x72,64x288"
PHASES = {  # phase -> functions whose inclusive callgrind cost it sums (gcc clones: name.constprop.0 ...)
    "forward": ("et_forward",),
    "backward_kernels": ("et_softmax_ce_backward", "et_relu_backward", "et_maxpool2_backward", "et_batchnorm_backward",
                         "et_dense_backward_input", "et_dense_backward_input_s16", "et_conv2d_backward_input",
                         "et_conv2d_backward_input_s16", "et_conv2d_weight_grad", "et_conv2d_bias_grad",
                         "et_conv2d_im2col_row", "et_flatten_backward",
                         # the counting variants the training step calls (csrc/src/clip_internal.h)
                         "et_softmax_ce_backward_n", "et_batchnorm_backward_n", "et_dense_backward_input_n",
                         "et_conv2d_backward_input_n"),
    "lrt_accumulate": ("et_lrt_accumulate_u8", "et_lrt_accumulate_s8"),
    "lrt_flush": ("et_lrt_flush_begin", "et_lrt_delta_row"),
    "commit": ("et_commit_begin", "et_commit_rows", "et_commit_end"),
}


def register(sub) -> None:
    p = sub.add_parser("bench", help="time and count instructions of the C core: accumulator, training step, phases",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default=None, help="comma-separated: lrt, train, phases and the installed plug-in parts "
                   "(firmware) (default: all)")
    p.add_argument("--shapes", default=None, help=f"accumulator shapes NxM, comma-separated (default {DEFAULT_SHAPES})")
    p.add_argument("--rank", type=int, default=4, help="accumulator rank (default 4)")
    p.add_argument("--terms", type=int, default=200, help="accumulator terms per timed block (default 200)")
    p.add_argument("--models", default="mlp,mcu-cnn,paper-cnn", help="presets for train and phases (default: all three)")
    p.add_argument("--optimizers", default="sgd,lrt", help="comma-separated optimizers (default sgd,lrt)")
    p.add_argument("--samples", type=int, default=20, help="timed training samples per run (default 20)")
    p.add_argument("--repeat", type=int, default=3, help="timed blocks or runs, median reported (default 3)")
    p.add_argument("--data-dir", default=os.environ.get("EDGETRAIN_DATA_DIR"), help="MNIST folder (default $EDGETRAIN_DATA_DIR)")
    p.add_argument("--count-terms", type=int, default=None, metavar="N",
                   help="lrt: callgrind counts terms N+1..2N (default max(20, 8 rank), while the bases still "
                        "fill; a few hundred reach the kappa rule's steady state)")
    p.add_argument("--no-instructions", action="store_true", help="skip the callgrind counts (they take a minute or more)")
    p.add_argument("--quick", action="store_true", help="small shapes, mlp only, few samples: a smoke run")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE", type=argtypes.output_file_or_stdout,
                   help="write JSON to FILE (no FILE: stdout)")
    p.set_defaults(func=main)


# ---- inputs ----------------------------------------------------------------------------------


def parse_shapes(text: str) -> list[tuple[int, int]]:
    shapes = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", part)
        if not m or not (1 <= int(m.group(1)) <= 65535 and 1 <= int(m.group(2)) <= 65535):
            raise ArgumentError(f"--shapes {part!r}: give N x M with 1 <= N, M <= 65535, e.g. 128x1152")
        shapes.append((int(m.group(1)), int(m.group(2))))
    return shapes


def images(data_dir, n: int) -> tuple[np.ndarray, np.ndarray, str]:
    """n MNIST training images and labels, or seeded random digits when no MNIST folder is given."""
    from ..data import mnist

    if data_dir:
        x, y = mnist.load("train", data_dir)
        return x[:n], y[:n], "mnist"
    rng = np.random.default_rng(0)
    x = (rng.random((n, 28, 28)) < 0.2).astype(np.uint8) * rng.integers(64, 256, (n, 28, 28), dtype=np.uint8)
    return x, rng.integers(0, 10, n).astype(np.uint8), "random"


def term_pool(n: int, m: int, seed: int = 1, size: int = 64):
    rng = np.random.default_rng(seed)
    return [(rng.integers(-128, 128, n).astype(np.int8), rng.integers(0, 256, m).astype(np.uint8)) for _ in range(size)]


# ---- the workloads (also run under callgrind through _worker) ---------------------------------


class LrtRun:
    """One accumulator fed the same pool of uniform random terms, cycling."""

    def __init__(self, n: int, m: int, rank: int, mode: str):
        from ..core import ffi, lib
        from ..lrt import LrtLayer, accumulate_batch_get_buffer_size
        from ..config import LrtConfig

        unbiased, kappa, self.batch = MODES[mode]
        self.layer = LrtLayer(n, m, LrtConfig(rank=rank, unbiased=unbiased, kappa_th=kappa), seed=1)
        self.pool = term_pool(n, m)
        self.done = 0
        if self.batch == 1:
            self.d = [ffi.cast("int8_t *", ffi.from_buffer(d)) for d, _ in self.pool]
            self.x = [ffi.cast("uint8_t *", ffi.from_buffer(x)) for _, x in self.pool]
            self.fn = lib.et_lrt_accumulate_u8
            return
        # the pool as len(pool) / batch blocks of rows, one call each
        self._keep = [(np.ascontiguousarray(np.stack([d for d, _ in self.pool[i:i + self.batch]])),
                       np.ascontiguousarray(np.stack([x for _, x in self.pool[i:i + self.batch]])))
                      for i in range(0, len(self.pool), self.batch)]
        self.d = [ffi.cast("int8_t *", ffi.from_buffer(d)) for d, _ in self._keep]
        self.x = [ffi.cast("uint8_t *", ffi.from_buffer(x)) for _, x in self._keep]
        self.d_exp = ffi.new("int32_t[]", [-9] * self.batch)
        self.x_exp = ffi.new("int32_t[]", [-7] * self.batch)
        need = accumulate_batch_get_buffer_size(n, m, rank, self.batch)
        self.scratch = ffi.new("uint32_t[]", (need + 3) // 4)
        self.scratch_size = ffi.sizeof(self.scratch)
        self.fn = lib.et_lrt_accumulate_batch_u8

    def terms(self, count: int) -> int:
        """count rounded up to whole calls (a batch mode runs whole batches)."""
        return -(-count // self.batch) * self.batch

    def run(self, count: int) -> None:
        """count terms (whole batches: see terms())."""
        L = self.layer
        if self.batch > 1:
            for _ in range(self.terms(count) // self.batch):
                k = (self.done // self.batch) % len(self.d)
                if self.fn(L.state, L.cfg, self.batch, self.d[k], self.d_exp, self.x[k], self.x_exp, self.scratch,
                           self.scratch_size, L.prng) != 0:
                    raise RuntimeError("et_lrt_accumulate_batch_u8 failed")
                self.done += self.batch
            return
        for _ in range(count):
            k = self.done % len(self.pool)
            if self.fn(L.state, L.cfg, self.d[k], -9, self.x[k], -7, L.scratch, L.scratch_size, L.prng) != 0:
                raise RuntimeError("et_lrt_accumulate_u8 failed")
            self.done += 1

    def reorthonormalize(self, count: int) -> None:
        """count calls of et_lrt_reorthonormalize on the state the terms left (the same work each time)."""
        from ..core import lib

        L = self.layer
        for _ in range(count):
            if lib.et_lrt_reorthonormalize(L.state, L.scratch, L.scratch_size) != 0:
                raise RuntimeError("et_lrt_reorthonormalize failed")


class StepRun:
    """The C backend of one model and optimizer stepping through a fixed list of images."""

    def __init__(self, model: str, optimizer: str, x: np.ndarray, y: np.ndarray):
        from ..backends import make_backend
        from ..model.presets import preset
        from ..config import OPTIMIZERS, TrainConfig

        self.backend = make_backend("c", preset(model, 0), TrainConfig(optimizer=OPTIMIZERS[optimizer]))
        self.x, self.y, self.done = x, y, 0

    def run(self, count: int) -> None:
        for _ in range(count):
            i = self.done % len(self.x)
            self.backend.step(self.x[i], int(self.y[i]))
            self.done += 1


def _worker(spec: str) -> None:
    """Run one workload (JSON spec) to completion; callgrind counts what the toggled functions do."""
    s = json.loads(spec)
    if s["kind"] == "lrt":
        LrtRun(s["n"], s["m"], s["rank"], s["mode"]).run(s["count"])
    elif s["kind"] == "lrt-reorth":
        run = LrtRun(s["n"], s["m"], s["rank"], s["mode"])
        run.run(8 * s["rank"])
        run.reorthonormalize(s["count"])
    else:
        x, y, _ = images(s["data_dir"], s["count"])
        StepRun(s["model"], s["optimizer"], x, y).run(s["count"])


# ---- callgrind ---------------------------------------------------------------------------------


def callgrind_costs(spec: dict, toggle: str, argv: list[str] | None = None) -> dict[str, int]:
    """Inclusive instruction counts per function (clone suffixes stripped) of one worker run.

    The worker is ``_worker`` here, or the program ``argv`` given the spec as JSON in one more argument
    (bench/vs_aifes.py counts its own workloads this way)."""
    if argv is None:
        argv = [sys.executable, "-c", f"from edgetrain.commands.bench import _worker; _worker({json.dumps(json.dumps(spec))})"]
    else:
        argv = [*argv, json.dumps(spec)]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", f"--toggle-collect={toggle}", *argv]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)], check=True,
                              capture_output=True, text=True).stdout
    costs: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?\S*?:(\w+)(?:\.\w+)*\s", line + " ")
        if m:
            name = m.group(2)
            costs[name] = max(costs.get(name, 0), int(m.group(1).replace(",", "")))
    return costs


def per_unit(spec: dict, toggle: str, count: int, argv: list[str] | None = None) -> dict[str, float]:
    """Instructions per unit (term or sample): the difference of runs with count and 2 count units."""
    a = callgrind_costs(dict(spec, count=count), toggle, argv)
    b = callgrind_costs(dict(spec, count=2 * count), toggle, argv)
    return {k: (b[k] - a.get(k, 0)) / count for k in b}


V4_FLAGS = frozenset({"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx2", "bmi2", "fma"})
"""The /proc/cpuinfo flags of x86-64-v4, the level of the core's AVX-512 copies."""


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (or the text given); empty where there is none."""
    if cpuinfo is None:
        try:
            cpuinfo = open("/proc/cpuinfo").read()
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def core_clones(core_path: str | None = None, cpuinfo: str | None = None) -> dict:
    """Which copy of the core's hot loops runs here (csrc/src/hot_internal.h).

    x86-64 Linux builds with gcc 11+ compile the hot loops for AVX-512 (x86-64-v4), AVX2 and baseline
    x86-64, and the loader picks one for the CPU. Native times are that copy's; callgrind runs on
    valgrind's virtual CPU, which has AVX2 but no AVX-512, so instruction counts are the AVX2 copy's
    (baseline without AVX2). The conv and dense forward kernels have one more copy for AVX-512 VNNI,
    picked by the CPU's feature bits (``forward_vnni``: it runs natively here; never under callgrind),
    and the conv forward one more for AVX2, taken where the VNNI copy is not (``conv_forward_lanes``:
    built and the CPU has AVX2, as valgrind's has). Every copy gives the same bits."""
    if core_path is None:
        from ..core import library_path

        core_path = library_path()
    try:
        binary = open(core_path, "rb").read()
    except OSError:
        binary = b""
    built = b".arch_x86_64_v4\0" in binary and b".avx2\0" in binary
    flags = cpu_flags(cpuinfo)
    if not built:
        return {"built": False, "native": "portable", "callgrind": "portable", "forward_vnni": False,
                "conv_forward_lanes": False}
    v4 = V4_FLAGS <= flags
    avx2 = "avx2" in flags
    vnni = b"et_conv2d_forward_n_vnni\0" in binary and v4 and "avx512_vnni" in flags
    lanes = b"et_conv2d_forward_lanes\0" in binary and avx2
    return {"built": True, "native": "x86-64-v4" if v4 else "avx2" if avx2 else "default",
            "callgrind": "avx2" if avx2 else "default", "forward_vnni": vnni, "conv_forward_lanes": lanes}


# ---- the parts ---------------------------------------------------------------------------------


def bench_lrt(args, shapes, counting: bool) -> list[dict]:
    results = []
    for n, m in shapes:
        for mode in MODES:
            bench = LrtRun(n, m, args.rank, mode)
            bench.run(4 * args.rank)
            blocks = []
            timed = bench.terms(args.terms)
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                bench.run(timed)
                blocks.append((time.perf_counter() - t0) / timed)
            st = bench.layer.state
            row = {"n": n, "m": m, "rank": args.rank, "mode": mode, "terms_per_call": bench.batch,
                   "terms_timed": timed * args.repeat,
                   "us_per_term": 1e6 * statistics.median(blocks), "us_per_term_min": 1e6 * min(blocks),
                   "skipped_fraction": int(st.skipped) / max(1, int(st.terms) + int(st.skipped))}
            calls = max(1, args.terms // 10)
            reorth = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                bench.reorthonormalize(calls)
                reorth.append((time.perf_counter() - t0) / calls)
            row["us_per_reorthonormalize"] = 1e6 * statistics.median(reorth)
            if counting:
                spec = {"kind": "lrt", "n": n, "m": m, "rank": args.rank, "mode": mode}
                count = bench.terms(args.count_terms or max(20, 8 * args.rank))
                fn = "et_lrt_accumulate_u8" if bench.batch == 1 else "et_lrt_accumulate_batch_u8"
                costs = per_unit(spec, fn, count)
                row["instructions_per_term"] = costs.get(fn)
                row["counted_terms"] = [count + 1, 2 * count]
                probe = LrtRun(n, m, args.rank, mode)
                probe.run(count)
                before = int(probe.layer.state.skipped)
                probe.run(count)
                row["counted_skipped_fraction"] = (int(probe.layer.state.skipped) - before) / count
                row["instructions_per_reorthonormalize"] = per_unit(
                    dict(spec, kind="lrt-reorth"), "et_lrt_reorthonormalize", 10).get("et_lrt_reorthonormalize")
            results.append(row)
            print(f"lrt {n}x{m} r={args.rank} {mode:14s} {row['us_per_term']:9.1f} us/term"
                  + (f"  {row['instructions_per_term']:12.0f} instr/term" if counting else "")
                  + f"  reorthonormalize {row['us_per_reorthonormalize']:7.1f} us"
                  + (f" {row['instructions_per_reorthonormalize']:10.0f} instr" if counting else ""), file=sys.stderr)
    return results


def forward_macs(model_name: str) -> int:
    """Multiply-accumulates of one forward pass (conv: every in-bounds kernel tap; dense: n m)."""
    from ..model import kinds
    from ..model.presets import preset

    return kinds.forward_macs(preset(model_name, 0))


def bench_train(args, models, optimizers, x, y) -> list[dict]:
    results = []
    for model in models:
        for optimizer in optimizers:
            runs = []
            for _ in range(args.repeat):
                bench = StepRun(model, optimizer, x, y)
                bench.run(5)
                t0 = time.perf_counter()
                bench.run(args.samples)
                runs.append(1e3 * (time.perf_counter() - t0) / args.samples)
            row = {"model": model, "optimizer": optimizer, "samples": args.samples,
                   "ms_per_sample": statistics.median(runs), "ms_per_sample_runs": runs}
            results.append(row)
            print(f"train {model:10s} {optimizer:5s} {row['ms_per_sample']:9.3f} ms/sample", file=sys.stderr)
    return results


def bench_phases(args, models, optimizers, source) -> list[dict]:
    results = []
    count = max(2, min(args.samples, 10))
    for model in models:
        macs = forward_macs(model)
        for optimizer in optimizers:
            spec = {"kind": "step", "model": model, "optimizer": optimizer,
                    "data_dir": args.data_dir if source == "mnist" else None}
            costs = per_unit(spec, "et_train_step", count)
            total = costs.get("et_train_step", 0.0)
            phases = {p: sum(costs.get(f, 0.0) for f in fns) for p, fns in PHASES.items()}
            phases["other"] = total - sum(phases.values())  # optimizer glue, SGD cell updates, the step itself
            row = {"model": model, "optimizer": optimizer, "samples_counted": count, "forward_macs": macs,
                   "instructions_per_sample": total, "phases": phases,
                   "forward_instructions_per_mac": phases["forward"] / macs,
                   "step_instructions_per_forward_mac": total / macs,
                   "commit_fraction": phases["commit"] / total if total else None}
            results.append(row)
            print(f"phases {model:10s} {optimizer:5s} {total / 1e6:8.3f} M instr/sample  forward "
                  f"{row['forward_instructions_per_mac']:.2f}/MAC  commit {100 * (row['commit_fraction'] or 0):.0f} %",
                  file=sys.stderr)
    return results


BUILTIN_PARTS = ("lrt", "train", "phases")
# Parts that packages built on edgetrain add: name -> callable(args) -> a JSON-ready dict.
PART_GROUP = "edgetrain.bench"


def main(args) -> int:
    plugins = {entry.name: entry for entry in metadata.entry_points(group=PART_GROUP)}
    choices = [*BUILTIN_PARTS, *sorted(plugins)]
    parts = choices if args.parts is None else [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(choices))
    if unknown or not parts:
        raise ArgumentError(f"--parts: unknown part(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(choices)}")
    for name in ("terms", "samples", "repeat", "rank"):
        if getattr(args, name) < 1:
            raise ArgumentError(f"--{name} must be at least 1")
    if args.count_terms is not None and args.count_terms < 1:
        raise ArgumentError("--count-terms must be at least 1 (or left out for the default)")
    shapes = parse_shapes(args.shapes or (QUICK_SHAPES if args.quick else DEFAULT_SHAPES))
    models = ["mlp"] if args.quick else [m.strip() for m in args.models.split(",")]
    optimizers = [o.strip() for o in args.optimizers.split(",")]
    if args.quick:
        args.terms, args.samples, args.repeat = min(args.terms, 20), min(args.samples, 5), 1
    counting = not args.no_instructions
    if counting and not (shutil.which("valgrind") and shutil.which("callgrind_annotate")):
        raise ArgumentError("instruction counts need valgrind (callgrind): install it, or pass --no-instructions")
    from ..model.presets import PRESETS
    from ..config import OPTIMIZERS

    for model in models:
        if model not in PRESETS:
            raise ArgumentError(f"--models: unknown preset {model!r}; choose from {', '.join(PRESETS)}")
    for opt in optimizers:
        if opt not in OPTIMIZERS:
            raise ArgumentError(f"--optimizers: unknown optimizer {opt!r}; choose from {', '.join(OPTIMIZERS)}")

    report: dict = {"benchmark": "edgetrain bench", "edgetrain_version": __version__,
                    "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                                "python": platform.python_version(), "cpus": os.cpu_count(),
                                "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
                                "core_clones": core_clones()}}
    if "lrt" in parts:
        report["lrt"] = bench_lrt(args, shapes, counting)
    if "train" in parts or "phases" in parts:
        n_images = max(args.samples + 5, 20)
        x, y, source = images(args.data_dir, n_images)
        report["data"] = source
        if "train" in parts:
            report["train"] = bench_train(args, models, optimizers, x, y)
        if "phases" in parts and counting:
            report["phases"] = bench_phases(args, models, optimizers, source)
    for name in (p for p in parts if p in plugins):
        try:
            report[name] = plugins[name].load()(args)
        except UnsupportedError as exc:
            if args.parts is not None:  # asked for by name: the reason is the error
                raise
            report[name] = {"skipped": str(exc)}
            print(f"edgetrain bench: part {name} skipped: {exc}", file=sys.stderr)
    text = json.dumps(report, indent=2)
    if args.json == "-":
        print(text)
    elif args.json:
        write_report(args.json, text + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
