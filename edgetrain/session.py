"""The Python session API: one run of a model on a task, as ``edgetrain run`` does it (docs/api.md).

    from edgetrain import Session
    result = Session("mcu-cnn-pretrained", optimizer="lrt", task="drift-analog", seed=0).run(2000)
    result.report["accuracy"], result.curves["max_writes_per_cell"]

Prequential: each sample is first predicted, scored, then trained on. The
report holds the run JSON keys (docs/cli.md; DESIGN's ``run --json`` keys keep
their meaning: ``max_writes_per_cell`` counts logical writes, with or without
a memory map); the curves hold, at ``curve_points`` evenly spaced samples, the
prequential accuracy (bias-corrected EMA and the window since the previous
point) and the logical max writes per weight cell so far.

A memory map (a preset or TOML file) runs the C core over an emulated NVM
found through the device plug-in point (edgetrain.devices); the emulator's
figures then join the report. The data are MNIST from ``data_dir`` /
$EDGETRAIN_DATA_DIR, else the subset shipped in the package: a model trained on
the training split (a shipped pretrained model) streams the test split, any
other model the training split where the folder holds it.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import __version__, devices
from .backends import backend_class, c_plan, make_backend
from .config import (
    LGA_OPTIMIZERS, LGA_RESTARTS, LR_DEFAULT, LR_EXP_DEFAULT, OPTIMIZERS, LgaConfig, LrtConfig, TrainConfig,
    lga_config_check, lrt_config_check
)
from .data import mnist
from .errors import ArgumentError, EdgetrainError, UnsupportedError
from .model.description import Model
from .model.loader import MODEL_NAMES, PRETRAINED, has_bn_statistics, load_model
from .tasks import TASKS, Stream, TaskOptions

RRAM_WRITE_J_PER_BIT = 10.9e-12  # the paper's 18 KB RRAM macro (lrt-paper-spec §1)
LAST = 500  # the paper's accuracy window: the last 500 predictions
EMA_BETA = 0.999  # the paper's Figure 1 smoothing
CURVE_POINTS = 200


def lr_pair(value: float, name: str = "lr") -> tuple[int, int]:
    """A learning rate as (mantissa, exponent) with 24 fractional bits: 0.01 -> (167772, -24)."""
    if not 0 <= value < 1:
        raise ArgumentError(f"{name} {value} must lie in [0, 1)")
    return round(value * 2**24), -24


@dataclass
class RunResult:
    """A finished run: ``report`` (the run JSON keys), ``curves`` (lists per curve point) and ``hits``
    (per sample: the prediction was right)."""

    report: dict
    curves: dict
    hits: np.ndarray = field(repr=False)

    def to_dict(self, curves: bool = True) -> dict:
        return {**self.report, **({"curves": self.curves} if curves else {})}

    def to_json(self, curves: bool = True) -> str:
        return json.dumps(self.to_dict(curves), indent=2, sort_keys=True)


class Session:
    """A model, an optimizer, a task, a backend and (optionally) a memory map, ready to run.

    ``model``: a name (preset, pretrained) or .etm path, or a ``Model``.
    ``optimizer``: lrt, lga, sgd, bias or none. ``lrt``: an ``edgetrain.config.LrtConfig`` (the
    paper's defaults when None; ``lr`` is then its eta0 unless the config gives one); ``lga``: an
    ``edgetrain.config.LgaConfig`` (its defaults when None; docs/lga.md); ``layer_ranks``: one rank
    per layer index (0 for layers without weights), overriding the rank of either; ``layer_truncation``
    (lrt): one truncation per layer index, ``edgetrain.config.TRUNC_DEFAULT`` (the config's
    ``unbiased``), ``TRUNC_BIASED`` or ``TRUNC_UNBIASED`` (e.g. from ``kind_truncation``: Table 1's mixed rows).
    ``task_options``: a ``TaskOptions`` or a dict of its fields (magnitudes, cadence, augmentation).
    ``backend_options``: a plug-in engine's own keyword arguments (e.g. ``{"cpu": "cortex-m0plus"}`` for arm).
    """

    def __init__(self, model: str | Model, optimizer: str = "sgd", task: str = "control", backend: str = "c",
                 seed: int = 0, memory_map: str | None = None, data_dir: str | None = None, *,
                 conv_per_pixel: bool = False, lr: float = 0.01, lr_bias: float = 0.01, lrt: LrtConfig | None = None,
                 lga: LgaConfig | None = None, layer_ranks: tuple = (), layer_truncation: tuple = (), task_options: TaskOptions | dict | None = None,
                 samples_per_day: float | None = None, curve_points: int = CURVE_POINTS,
                 backend_options: dict | None = None):
        if not isinstance(seed, int) or not 0 <= seed < 1 << 32:
            raise ArgumentError(f"seed {seed} is outside 0..2^32-1")
        if optimizer not in OPTIMIZERS:
            raise ArgumentError(f"unknown optimizer {optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if task not in TASKS:
            raise ArgumentError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")
        engine = backend_class(backend)  # UnsupportedError naming the choices for an unknown one
        if memory_map is None and samples_per_day is not None:
            raise ArgumentError("samples_per_day needs a memory map (the figures come from the NVM emulator)")
        if memory_map is not None and not engine.takes_region:
            raise UnsupportedError(f"a memory map runs the C core over the NVM emulator; backend {backend!r} has none: "
                                   "use --backend c (the numpy twin keeps the logical counts only)")
        if samples_per_day is not None and not samples_per_day > 0:
            raise ArgumentError(f"samples_per_day {samples_per_day} must be > 0")
        if curve_points < 1:
            raise ArgumentError(f"curve_points {curve_points} must be >= 1")
        self.pretrained = isinstance(model, str) and model in PRETRAINED
        self.model = load_model(model, seed) if isinstance(model, str) else model
        # a preset or pretrained model by the name it was asked by (mcu-cnn-pretrained), a file by its model's name
        self.model_name = model if isinstance(model, str) and model in MODEL_NAMES else self.model.name
        self.optimizer, self.task, self.backend_name, self.seed = optimizer, task, backend, seed
        self.backend_options = dict(backend_options or {})
        self.memory_map, self.samples_per_day, self.curve_points = memory_map, samples_per_day, curve_points
        self.conv_per_pixel, self.lr, self.lr_bias = bool(conv_per_pixel), lr, lr_bias
        if isinstance(task_options, dict):
            unknown = set(task_options) - set(TaskOptions.__dataclass_fields__)
            if unknown:
                raise ArgumentError(f"unknown task options {sorted(unknown)}: choose from {sorted(TaskOptions.__dataclass_fields__)}")
            task_options = TaskOptions(**task_options)
        self.task_options = (task_options or TaskOptions()).check()
        if layer_truncation and optimizer != "lrt":
            raise ArgumentError(f"layer_truncation applies to the lrt optimizer only, not {optimizer!r}")
        self.config = self._train_config(lrt, lga, tuple(layer_ranks), tuple(layer_truncation))
        self.data_dir = mnist.resolve_dir(data_dir)
        held = mnist.splits(self.data_dir)
        self.split = "train" if "train" in held and not self.pretrained else "test"

    def _train_config(self, lrt: LrtConfig | None, lga: LgaConfig | None, ranks: tuple, truncation: tuple) -> TrainConfig:
        lrt_ranks, lga_ranks = (ranks, ()) if self.optimizer == "lrt" else ((), ranks) if self.optimizer == "lga" else ((), ())
        if self.optimizer == "lrt":
            lrt = lrt or LrtConfig(eta0_q24=round(self.lr * 2**24))
            lrt_config_check(lrt)
            lr_w, lr_w_exp = LR_DEFAULT, LR_EXP_DEFAULT
        else:
            lrt = LrtConfig()
            lr_w, lr_w_exp = lr_pair(self.lr, "lr")
        lga = lga or LgaConfig() if self.optimizer == "lga" else LgaConfig()
        lga_config_check(lga)
        lr_b, lr_b_exp = lr_pair(self.lr_bias, "lr_bias")
        config = TrainConfig(optimizer=OPTIMIZERS[self.optimizer], conv_per_pixel=self.conv_per_pixel, lr_weight=lr_w,
                             lr_weight_exp=lr_w_exp, lr_bias=lr_b, lr_bias_exp=lr_b_exp, seed=self.seed, lrt=lrt,
                             lrt_rank=lrt_ranks, lga=lga, lga_rank=lga_ranks, bn_warm=has_bn_statistics(self.model),
                             lrt_truncation=truncation)
        config.check()
        return config

    def data(self) -> tuple[np.ndarray, np.ndarray, str]:
        """(images, labels, one line naming them) of the stream's source."""
        images, labels = mnist.load(self.split, self.data_dir)
        return images, labels, mnist.describe(self.data_dir, self.split, len(images))

    def check_plots(self) -> None:
        """Wear plots need matplotlib and a memory map: raise before any work when they cannot be made."""
        if self.memory_map is None:
            raise ArgumentError("plots need a memory map (--memory-map): the wear figures come from the NVM emulator")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UnsupportedError("wear plots need matplotlib: pip install 'edgetrain[plots]'") from None

    def run(self, samples: int, progress=None, plots: str | None = None, announce=None) -> RunResult:
        """Stream ``samples`` samples; ``progress``: None (a bar when stderr is a terminal), True or False;
        ``plots``: a folder for wear plots (memory map only); ``announce``: a callable given one line
        naming the data before the run starts."""
        if not isinstance(samples, (int, np.integer)) or samples < 1:
            raise ArgumentError(f"samples {samples}: give at least 1")
        samples = int(samples)
        if plots is not None:
            self.check_plots()
        config, device = self.config, None
        if self.memory_map is not None:
            device = devices.open_device(self.memory_map, self.model, config, self.seed)
            config = device.config
        backend = make_backend(self.backend_name, self.model, config, region=device.region if device else None,
                               **self.backend_options)
        images, labels, source = self.data()
        stream = Stream(self.task, images, labels, samples, self.seed, self.task_options)
        if announce is not None:
            announce(source)
        weights = backend.weight_cells()
        every = max(1, samples // self.curve_points)
        curves = {"samples": [], "accuracy_ema": [], "accuracy_window": [], "max_writes_per_cell": []}
        hits = np.zeros(samples, dtype=bool)
        bar = _progress(samples, progress)
        ema, start, window_start = 0.0, time.perf_counter(), 0
        for k in range(samples):
            x, label = stream.sample(k)
            hits[k] = backend.step(x, label) == label
            stream.after_step(k, backend)
            ema = EMA_BETA * ema + (1 - EMA_BETA) * hits[k]
            if (k + 1) % every == 0 or k == samples - 1:
                curves["samples"].append(k + 1)
                curves["accuracy_ema"].append(ema / (1 - EMA_BETA ** (k + 1)))
                curves["accuracy_window"].append(float(hits[window_start:k + 1].mean()))
                curves["max_writes_per_cell"].append(int(backend.cell_writes[weights].max(initial=0)))
                window_start = k + 1
            if bar is not None:
                bar.update(1)
                if k % 100 == 99:
                    bar.set_postfix(acc=f"{hits[: k + 1].mean():.3f}")
        backend.checkpoint()
        elapsed = time.perf_counter() - start
        if bar is not None:
            bar.close()
        report = self._report(backend, hits, elapsed, source, stream)
        if device is not None:
            report.update(device.report(backend, samples, report["n_weights"], self.samples_per_day))
            if plots is not None:
                try:
                    report["plots"] = device.write_plots(backend, plots)
                except (OSError, EdgetrainError) as exc:  # the computed report is never lost to a plot
                    report["plots_error"] = f"{type(exc).__name__}: {exc}"
            report["device_summary"] = device.summary(report)
        return RunResult(report, curves, hits)

    def _report(self, backend, hits: np.ndarray, elapsed: float, source: str, stream: Stream) -> dict:
        samples = len(hits)
        weights = backend.weight_cells()
        writes = backend.cell_writes
        n_weights = int(weights.sum())
        total_writes = int(writes[weights].sum())
        all_writes = int(writes.sum())
        plan = c_plan(self.model, backend.config)
        report = {
            "accuracy": float(hits.mean()),
            "accuracy_last_500": float(hits[-LAST:].mean()),
            "samples": samples,
            "max_writes_per_cell": int(writes[weights].max(initial=0)),
            "total_cell_writes": total_writes,
            "write_density": total_writes / (n_weights * samples),
            "other_cell_writes": all_writes - total_writes,
            "nvm_energy_j": all_writes * 8 * RRAM_WRITE_J_PER_BIT,
            "nvm_energy_model": "estimate: 8 bits programmed per changed byte at 10.9 pJ/bit (the paper's RRAM macro)",
            "aux_bytes": plan["total"],
            "plan": plan,
            "weights_sha256": backend.weights_sha256(),
            "backend": backend.name,
            "elapsed_s": elapsed,
            "per_sample_ms": 1e3 * elapsed / samples,
            "model": self.model_name,
            "n_weights": n_weights,
            "optimizer": self.optimizer,
            "conv_per_pixel": self.conv_per_pixel,
            "lr": self.lr,
            "lr_bias": self.lr_bias,
            "task": self.task,
            "task_options": self.task_options.to_dict(),
            "data": source,
            "seed": self.seed,
            "bn_statistics": "stored" if backend.config.bn_warm else "fresh",
            **({"drift_weight_changes": stream.drift_changes} if stream.drift else {}),
            **({"lrt": {**lrt_report(self.model, backend.config), "layers": backend.lrt_stats()}}
               if self.optimizer == "lrt" else {}),
            **({"lga": lga_report(self.model, backend.config)} if self.optimizer == "lga" else {}),
            **({"clip_counts": clips} if (clips := _clip_counts(backend)) is not None else {}),
            "edgetrain_version": __version__,
        }
        return report


def _clip_counts(backend) -> dict | None:
    """The backend's per-layer saturation counters for the report, or None where it keeps none (arm)."""
    try:
        return backend.clip_counts()
    except UnsupportedError:
        return None


def lga_report(model, config: TrainConfig) -> dict:
    """The factor settings of a run and each trainable layer's rank, in the report."""
    c = config.lga
    return {"optimizer": next(k for k, v in LGA_OPTIMIZERS.items() if v == c.optimizer), "rank": c.rank,
            "merge_every": c.merge_every, "lr": c.lr * 2.0 ** c.lr_exp,
            "restart": next(k for k, v in LGA_RESTARTS.items() if v == c.restart),
            "layer_ranks": {model.layers[i].name: config.lga_layer_config(i).rank
                            for i, layer in enumerate(model.layers) if layer.weights is not None}}


def lrt_report(model, config: TrainConfig) -> dict:
    """The accumulator settings of a run and each trainable layer's rank, in the report."""
    c = config.lrt
    return {"rank": c.rank, "layer_ranks": {model.layers[i].name: config.lrt_layer_config(i).rank
                                            for i, layer in enumerate(model.layers) if layer.weights is not None},
            "unbiased": bool(c.unbiased),
            "layer_unbiased": {model.layers[i].name: bool(config.lrt_layer_config(i).unbiased)
                               for i, layer in enumerate(model.layers) if layer.weights is not None},
            "batch_conv": c.batch_conv, "batch_dense": c.batch_dense,
            "eta0": c.eta0_q24 / 2**24, "rho_min": c.rho_min_ppm / 1e6, "kappa": c.kappa_th, "maxnorm": bool(c.maxnorm),
            "reorth_terms": c.reorth_terms, "conv_term_batch": c.conv_term_batch}


def _progress(total: int, enabled: bool | None):
    enabled = sys.stderr.isatty() if enabled is None else enabled
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, file=sys.stderr, unit="sample", dynamic_ncols=True)


__all__ = ["Session", "RunResult", "TaskOptions", "TASKS"]
