#!/usr/bin/env python3
"""edgetrain's C core side by side with AIfES (Fraunhofer IMS) on one online SGD training sample.

The user supplies a checkout of AIfES for Arduino (its C library: ``src/aifes.h`` and the float32
training path under ``src/basic``); nothing of it is part of edgetrain. At run time this script
writes a small driver in C to a temporary folder and compiles it with AIfES's C sources (the
``basic/base`` and ``basic/default`` folders, their configuration as shipped) by the host compiler
($CC, else cc) at -O3 into a shared library, loaded with ctypes. The driver builds the mlp both
sides train: 784 inputs, dense 64, ReLU, dense 10, softmax, cross-entropy on a one-hot target,
plain SGD with learning rate 0.01, batch size 1, in float32 (glorot-uniform weights from the
seed, zero biases), and exposes ``setup(seed)`` and ``train_one(image, label)``: one
``aialgo_train_model`` call on one sample (zero the gradients, forward, backward, update).

edgetrain's side is the ``mlp`` preset (784-64-10, int8 weights in NVM) with ``--optimizer sgd`` on
the C backend over plain memory, driven as ``edgetrain bench`` drives it: one ``step`` per sample,
the atomic NVM commit of the changed rows included.

Both sides see the same MNIST samples (the subset shipped in the package, or the training split
of --data-dir / $EDGETRAIN_DATA_DIR), AIfES as float32 pixels / 255 prepared before the clock
starts, edgetrain as the uint8 pixels. They alternate block by block (--block samples each) on
this one thread, so both see the same machine load; the report is the median microseconds per
sample of each side and the ratio AIfES / edgetrain (above 1: edgetrain is faster). With
--instructions (valgrind needed), callgrind counts x86 instructions per sample on each side as
the difference of runs with N and 2N samples (AIfES's ``aialgo_train_model``, edgetrain's
``et_train_step``), like ``edgetrain bench``. Example:

    python bench/vs_aifes.py --aifes /path/to/AIfES_for_Arduino --instructions --json bench/out/vs_aifes.json
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgetrain import __version__  # noqa: E402
from edgetrain.errors import EdgetrainError  # noqa: E402

MARKERS = ("aifes.h", "basic/base/aialgo/aialgo_sequential_training.c", "basic/default/ailayer/ailayer_dense_default.c")
SOURCE_DIRS = ("basic/base", "basic/default")
CFLAGS = ["-O3", "-fPIC", "-std=gnu99"]
LR = 0.01
# What callgrind counts on the AIfES side: their whole training step on one batch (zero the gradients,
# forward, loss, backward, update). The driver's train_one around it only builds two tensor headers;
# callgrind (3.19 here) shows the driver's own functions, called through ctypes, as bare addresses, so
# --toggle-collect=train_one would count nothing.
AIFES_STEP = "aialgo_train_model"

# The driver: edgetrain's code, compiled against the user's AIfES headers. Parameter and training
# memory come from malloc here; this is a host benchmark, not firmware.
DRIVER = r"""
#include <stdlib.h>
#include <string.h>
#include "aifes.h"

static uint16_t in_shape[2] = {1, 784};
static ailayer_input_f32_t in_layer;
static ailayer_dense_f32_t hidden, output;
static ailayer_relu_f32_t relu;
static ailayer_softmax_f32_t softmax;
static ailoss_crossentropy_f32_t loss;
static aiopti_sgd_f32_t sgd;
static aimodel_t model;
static aiopti_t *opti;
static void *params, *work;
static float target[10];
static uint16_t x_shape[2] = {1, 784}, t_shape[2] = {1, 10};

int setup(unsigned int seed)
{
    ailayer_input_f32_t i0 = AILAYER_INPUT_F32_A(2, in_shape);
    ailayer_dense_f32_t d1 = AILAYER_DENSE_F32_A(64), d2 = AILAYER_DENSE_F32_A(10);
    ailayer_relu_f32_t r = AILAYER_RELU_F32_A();
    ailayer_softmax_f32_t s = AILAYER_SOFTMAX_F32_A();
    aiopti_sgd_f32_t o = AIOPTI_SGD_F32(LEARNING_RATE);
    ailayer_t *x;
    uint32_t n;

    free(params);
    free(work);
    params = work = NULL;
    in_layer = i0; hidden = d1; output = d2; relu = r; softmax = s; sgd = o;
    memset(&loss, 0, sizeof loss);
    memset(&model, 0, sizeof model);
    srand(seed);
    model.input_layer = ailayer_input_f32_default(&in_layer);
    x = ailayer_dense_f32_default(&hidden, model.input_layer);
    x = ailayer_relu_f32_default(&relu, x);
    x = ailayer_dense_f32_default(&output, x);
    model.output_layer = ailayer_softmax_f32_default(&softmax, x);
    model.loss = ailoss_crossentropy_f32_default(&loss, model.output_layer);
    if (aialgo_compile_model(&model) != 0) return -1;
    n = aialgo_sizeof_parameter_memory(&model);
    if ((params = malloc(n)) == NULL) return -2;
    aialgo_distribute_parameter_memory(&model, params, n);
    aimath_f32_default_init_glorot_uniform(&hidden.weights);
    aimath_f32_default_init_zeros(&hidden.bias);
    aimath_f32_default_init_glorot_uniform(&output.weights);
    aimath_f32_default_init_zeros(&output.bias);
    opti = aiopti_sgd_f32_default(&sgd);
    n = aialgo_sizeof_training_memory(&model, opti);
    if ((work = malloc(n)) == NULL) return -3;
    if (aialgo_schedule_training_memory(&model, opti, work, n) != 0) return -4;
    aialgo_init_model_for_training(&model, opti);
    return (int) n;
}

int train_one(float *image, int label)
{
    aitensor_t xt = AITENSOR_2D_F32(x_shape, image);
    aitensor_t tt = AITENSOR_2D_F32(t_shape, target);
    if (opti == NULL || label < 0 || label > 9) return -1;
    memset(target, 0, sizeof target);
    target[label] = 1.0f;
    return aialgo_train_model(&model, &xt, &tt, opti, 1);
}

/* The loss of one sample under the current weights (a sanity check that training trains). */
float sample_loss(float *image, int label)
{
    aitensor_t xt = AITENSOR_2D_F32(x_shape, image);
    aitensor_t tt = AITENSOR_2D_F32(t_shape, target);
    float result = -1.0f;
    memset(target, 0, sizeof target);
    target[label] = 1.0f;
    aialgo_calc_loss_model_f32(&model, &xt, &tt, &result);
    return result;
}
"""


class AifesError(Exception):
    """PATH is not an AIfES checkout, its sources do not compile or load, or too few samples."""


# ---- the checkout --------------------------------------------------------------------------------


def source_root(path: Path) -> Path:
    """The folder holding aifes.h and basic/: PATH/src for a checkout's root, or PATH itself."""
    for root in (path / "src", path):
        if all((root / m).is_file() for m in MARKERS):
            return root
    if not path.exists():
        raise AifesError(f"--aifes {path}: no such folder; give the root of an AIfES for Arduino checkout "
                         "(git clone https://github.com/Fraunhofer-IMS/AIfES_for_Arduino)")
    missing = next(m for m in MARKERS if not (path / "src" / m).is_file())
    raise AifesError(f"--aifes {path}: not an AIfES checkout (no src/{missing} there); give the root of an AIfES "
                     "for Arduino checkout, the folder holding src/aifes.h")


def _git(path: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def describe_checkout(path: Path, root: Path) -> dict:
    """Where the AIfES sources came from: the path, the library version, and the git commit if any."""
    info: dict = {"path": str(path), "sources": str(root)}
    props = path / "library.properties"
    if props.is_file():
        for line in props.read_text(errors="replace").splitlines():
            if line.startswith("version="):
                info["version"] = line.split("=", 1)[1].strip()
    top = _git(path, "rev-parse", "--show-toplevel")
    if top and Path(top).resolve() == path.resolve():  # the checkout itself, not a repository around it
        info["commit"] = _git(path, "rev-parse", "HEAD")
        info["describe"] = _git(path, "describe", "--tags", "--always", "--dirty")
    return info


# ---- the build -----------------------------------------------------------------------------------


def compiler() -> list[str]:
    cc = shlex.split(os.environ.get("CC", "cc"))
    if not cc or shutil.which(cc[0]) is None:
        raise AifesError(f"no C compiler: {' '.join(cc) or '(empty $CC)'} is not on PATH; install gcc or set CC")
    return cc


def build(root: Path, out_dir: Path) -> tuple[Path, dict]:
    """Compile AIfES's float32 sources and the driver into out_dir/libvs_aifes.so; (library, build record)."""
    cc = compiler()
    sources = sorted(p for d in SOURCE_DIRS for p in (root / d).rglob("*.c"))
    driver = out_dir / "vs_aifes_driver.c"
    driver.write_text(DRIVER)
    include = [f"-I{root}"]
    flags = [*CFLAGS, f"-DLEARNING_RATE={LR}f"]

    def compile_one(src: Path) -> Path:
        name = "driver" if src == driver else "_".join(src.relative_to(root).with_suffix("").parts)
        obj = out_dir / f"{name}.o"
        cmd = [*cc, *flags, *include, "-c", str(src), "-o", str(obj)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise AifesError(f"compiling {src} failed ({' '.join(cc)} {' '.join(flags)}):\n"
                             + "\n".join(res.stderr.strip().splitlines()[:20]))
        return obj

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        objects = list(pool.map(compile_one, [*sources, driver]))  # the first failure in this order is reported
    lib = out_dir / "libvs_aifes.so"
    link = [*cc, "-shared", "-Wl,-z,defs", "-o", str(lib), *map(str, objects), "-lm"]
    res = subprocess.run(link, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise AifesError("linking the AIfES library failed (" + " ".join([*cc, "-shared", "-Wl,-z,defs", "-lm"]) + "):\n"
                         + "\n".join(res.stderr.strip().splitlines()[:20]))
    version = subprocess.run([*cc, "--version"], capture_output=True, text=True, check=False).stdout.splitlines()
    record = {"cc": " ".join(cc), "cc_version": version[0] if version else None, "cflags": flags,
              "sources": [str(p.relative_to(root)) for p in sources], "driver": "written by bench/vs_aifes.py",
              "compile": " ".join([*cc, *flags, f"-I{root}", "-c", "FILE.c"]),
              "link": " ".join([*cc, "-shared", "-Wl,-z,defs", "-o", "libvs_aifes.so", "*.o", "-lm"])}
    return lib, record


class Aifes:
    """The compiled driver: setup(seed), then train_one on float32 images."""

    def __init__(self, lib: Path, seed: int = 0):
        try:
            self.lib = ctypes.CDLL(str(lib))
        except OSError as exc:
            raise AifesError(f"loading {lib} failed: {exc}") from exc
        self.lib.setup.argtypes = [ctypes.c_uint]
        self.lib.train_one.argtypes = [ctypes.POINTER(ctypes.c_float), ctypes.c_int]
        self.lib.sample_loss.argtypes = [ctypes.POINTER(ctypes.c_float), ctypes.c_int]
        self.lib.sample_loss.restype = ctypes.c_float
        self.training_memory = self.lib.setup(seed)
        if self.training_memory < 0:
            raise AifesError(f"the AIfES model did not build (setup returned {self.training_memory})")

    def train(self, image: np.ndarray, label: int) -> None:
        if self.lib.train_one(image.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), label) != 0:
            raise AifesError("aialgo_train_model reported an error")

    def loss(self, image: np.ndarray, label: int) -> float:
        return float(self.lib.sample_loss(image.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), label))


# ---- the data and the two sides ------------------------------------------------------------------


def samples(data_dir, n: int) -> tuple[np.ndarray, np.ndarray, str]:
    """n MNIST images and labels: the training split of data_dir ($EDGETRAIN_DATA_DIR), else the shipped subset."""
    from edgetrain.data import mnist

    folder = mnist.resolve_dir(data_dir)
    split = "train" if "train" in mnist.splits(folder) else "test"
    x, y = mnist.load(split, folder)
    if n > len(x):
        raise AifesError(f"{n} samples asked for (--warmup + --samples), {folder} holds {len(x)}: ask for fewer, "
                         "or give the full MNIST with --data-dir")
    return x[:n], y[:n], mnist.describe(folder, split, n)


def as_float(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.reshape(len(x), -1).astype(np.float32) / np.float32(255))


def edgetrain_side(x: np.ndarray, y: np.ndarray):
    from edgetrain.commands.bench import StepRun

    return StepRun("mlp", "sgd", x, y)


def _worker(spec: str) -> None:
    """One side for count samples (run under callgrind by per_unit)."""
    s = json.loads(spec)
    x, y, _ = samples(s["data_dir"], s["count"])
    if s["side"] == "aifes":
        side, xf = Aifes(Path(s["lib"])), as_float(x)
        for i in range(s["count"]):
            side.train(xf[i], int(y[i]))
    else:
        edgetrain_side(x, y).run(s["count"])


def compare(lib: Path, x: np.ndarray, y: np.ndarray, block: int, warmup: int) -> dict:
    """Interleave the two sides block by block over the same samples; medians of per-sample times."""
    aifes, xf = Aifes(lib), as_float(x)
    ours = edgetrain_side(x, y)  # steps through x in order, as the AIfES loop below does
    for i in range(warmup):
        aifes.train(xf[i], int(y[i]))
    ours.run(warmup)
    t_aifes, t_ours = [], []
    n = len(x) - warmup
    for start in range(warmup, warmup + n - n % block, block):
        t0 = time.perf_counter()
        for i in range(start, start + block):
            aifes.train(xf[i], int(y[i]))
        t_aifes.append((time.perf_counter() - t0) / block)
        t0 = time.perf_counter()
        ours.run(block)
        t_ours.append((time.perf_counter() - t0) / block)
    return {"samples_timed": len(t_aifes) * block, "block": block, "blocks": len(t_aifes), "warmup": warmup,
            "aifes_us_per_sample": 1e6 * statistics.median(t_aifes),
            "edgetrain_us_per_sample": 1e6 * statistics.median(t_ours),
            "aifes_us_per_sample_blocks": [1e6 * t for t in t_aifes],
            "edgetrain_us_per_sample_blocks": [1e6 * t for t in t_ours],
            "aifes_training_memory_bytes": aifes.training_memory}


def count_instructions(lib: Path, data_dir, count: int) -> dict:
    from edgetrain.commands.bench import per_unit

    argv = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    base = {"data_dir": str(data_dir) if data_dir else None, "lib": str(lib)}
    a = per_unit(dict(base, side="aifes"), AIFES_STEP, count, argv=argv)
    e = per_unit(dict(base, side="edgetrain"), "et_train_step", count, argv=argv)
    row = {"samples_counted": count, "aifes_instructions_per_sample": a.get(AIFES_STEP),
           "edgetrain_instructions_per_sample": e.get("et_train_step")}
    for side, fn in (("aifes", AIFES_STEP), ("edgetrain", "et_train_step")):
        if not row[f"{side}_instructions_per_sample"]:
            raise AifesError(f"callgrind counted no instructions in {fn} ({side}); run valgrind by hand to see why")
    row["ratio"] = row["aifes_instructions_per_sample"] / row["edgetrain_instructions_per_sample"]
    return row


# ---- the command ---------------------------------------------------------------------------------


def parse(argv) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aifes", type=Path, required=True, help="root of a checkout of Fraunhofer-IMS/AIfES_for_Arduino")
    ap.add_argument("--samples", type=int, default=1000, help="timed samples per side (default 1000)")
    ap.add_argument("--block", type=int, default=100, help="samples per timed block, alternating sides (default 100)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed samples per side first (default 20)")
    ap.add_argument("--instructions", action="store_true", help="also count x86 instructions per sample (callgrind)")
    ap.add_argument("--count", type=int, default=10, help="samples per callgrind run: N and 2N (default 10)")
    ap.add_argument("--data-dir", default=os.environ.get("EDGETRAIN_DATA_DIR"),
                    help="MNIST folder (default $EDGETRAIN_DATA_DIR, else the subset shipped in the package)")
    ap.add_argument("--keep-build", type=Path, help="compile into this folder and keep it (default: a temporary one)")
    ap.add_argument("--json", type=Path, help="write the results as JSON to this file")
    args = ap.parse_args(argv)
    args.argv = list(argv)
    for name in ("samples", "block", "count"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        ap.error("--warmup must be 0 or more")
    if args.block > args.samples:
        ap.error(f"--block {args.block} is more than --samples {args.samples}")
    if args.instructions and not (shutil.which("valgrind") and shutil.which("callgrind_annotate")):
        ap.error("--instructions needs valgrind (callgrind): install it, or leave --instructions out")
    return args


def run(args) -> dict:
    path = args.aifes.resolve()
    root = source_root(path)
    x, y, source = samples(args.data_dir, args.warmup + args.samples)
    report: dict = {"benchmark": "vs_aifes", "command": " ".join(["python", "bench/vs_aifes.py", *map(shlex.quote, args.argv)]),
                    "edgetrain_version": __version__, "edgetrain_commit": _git(Path(__file__).resolve().parent, "rev-parse", "HEAD"),
                    "aifes": describe_checkout(path, root), "data": source,
                    "model": "mlp 784-64(ReLU)-10(softmax), cross-entropy, SGD, batch 1",
                    "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                                "python": platform.python_version(), "cpus": os.cpu_count(),
                                "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}}
    with tempfile.TemporaryDirectory(prefix="vs_aifes_") as tmp:
        out_dir = args.keep_build.resolve() if args.keep_build else Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        lib, report["build"] = build(root, out_dir)
        row = compare(lib, x, y, args.block, args.warmup)
        row["ratio"] = row["aifes_us_per_sample"] / row["edgetrain_us_per_sample"]
        report["time"] = row
        print(f"mlp sgd, one sample  AIfES {row['aifes_us_per_sample']:9.1f} us  edgetrain "
              f"{row['edgetrain_us_per_sample']:9.1f} us  ratio {row['ratio']:.2f}  ({row['samples_timed']} samples each)")
        if args.instructions:
            data_dir = args.data_dir or None
            counts = count_instructions(lib, data_dir, args.count)
            report["instructions"] = counts
            print(f"mlp sgd, one sample  AIfES {counts['aifes_instructions_per_sample'] / 1e6:9.3f} M instr  edgetrain "
                  f"{counts['edgetrain_instructions_per_sample'] / 1e6:9.3f} M instr  ratio {counts['ratio']:.2f}")
    report["machine"]["loadavg_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return report


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        _worker(argv[1])
        return 0
    args = parse(argv)
    try:
        report = run(args)
    except (AifesError, EdgetrainError) as exc:
        print(f"vs_aifes: {exc}", file=sys.stderr)
        return 2
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
