"""One interface over the two training engines: the C core (through cffi) and
its NumPy twin. ``edgetrain run`` drives either the same way, and the same
model, config, seed and data give the same NVM bytes on both.

A backend owns an NVM region holding the model image (``model.image.layout``)
and a per-cell write counter: a cell (an image byte) counts one write each time
the write path changes its stored value.
"""
from __future__ import annotations

import hashlib

import numpy as np

from .errors import ArgumentError, UnsupportedError
from .model.description import LayerKind, Model
from .model.image import fill_c_table, layout
from .model.validate import check_model
from .reference import train as ref_train
from .reference.train import TrainConfig

BACKENDS = ("c", "numpy")


class Backend:
    """Common surface; subclasses implement ``_step``, ``_predict``, ``_checkpoint``, ``image``."""

    name = "?"

    def __init__(self, model: Model, config: TrainConfig, image: bytes | None = None):
        config.check()
        check_model(model)  # a message that names the layer, before the C says ET_ERR_CORRUPT
        self.model = model
        self.config = config
        self.image_bytes, self.offsets = layout(model)
        self.image_size = len(self.image_bytes)
        if image is not None:
            if len(image) != self.image_size:
                raise ArgumentError(f"image has {len(image)} bytes; model {model.name} lays out {self.image_size}")
            self.image_bytes = bytes(image)
        self.cell_writes = np.zeros(self.image_size, dtype=np.uint32)

    # -- argument checks shared by both engines (the engines check again) --
    def _checked(self, x, label=None) -> np.ndarray:
        shape = self.model.input_shape
        arr = np.ascontiguousarray(x)
        if arr.dtype != np.uint8 or arr.size != shape.size:
            raise ArgumentError(
                f"input has {arr.size} values of {arr.dtype}; model {self.model.name} takes {shape.size} uint8 values "
                f"({shape.h}x{shape.w}x{shape.c})")
        if label is not None and not 0 <= int(label) < self.model.n_classes:
            raise ArgumentError(f"label {label} is outside 0..{self.model.n_classes - 1} for model {self.model.name}")
        return arr.reshape(-1)

    def step(self, x, label: int) -> int:
        """Prequential step: the prediction before the update."""
        return self._step(self._checked(x, label), int(label))

    def predict(self, x) -> int:
        return self._predict(self._checked(x))

    def checkpoint(self) -> None:
        self._checkpoint()

    def weights_sha256(self) -> str:
        """sha256 of the model image region in NVM."""
        return hashlib.sha256(self.image().tobytes()).hexdigest()

    def lrt_stats(self) -> dict[str, dict[str, int]]:
        """Optimizer lrt: per trainable layer (by name) terms fed, skipped by kappa, flush attempts, applied."""
        return {layer.name: self._lrt_stats(i) for i, layer in enumerate(self.model.layers) if layer.weights is not None}

    def weight_cells(self) -> np.ndarray:
        """Boolean mask over image bytes: True for weight cells (conv/dense kernels)."""
        mask = np.zeros(self.image_size, dtype=bool)
        for layer, off in zip(self.model.layers, self.offsets):
            if layer.weights is not None:
                mask[off.weight : off.weight + layer.weights.size] = True
        return mask


class NumpyBackend(Backend):
    name = "numpy"

    def __init__(self, model: Model, config: TrainConfig, image: bytes | None = None):
        super().__init__(model, config, image)
        self._nvm = np.frombuffer(bytearray(self.image_bytes), dtype=np.uint8)
        self.state = ref_train.init(model, self._nvm, 0, self.offsets, config)
        self.state.cell_counts = self.cell_writes

    def _step(self, x, label):
        return ref_train.step(self.state, x, label)

    def _predict(self, x):
        return ref_train.predict(self.state, x)

    def _checkpoint(self):
        ref_train.checkpoint(self.state)

    def image(self) -> np.ndarray:
        return self.state.image.copy()

    def _lrt_stats(self, layer: int) -> dict[str, int]:
        return ref_train.lrt_stats(self.state, layer)


LRT_FIELDS = ("rank", "unbiased", "maxnorm", "gs_passes", "batch_conv", "batch_dense", "eta0_q24", "rho_min_ppm",
              "kappa_th")


def c_config(ffi, config: TrainConfig):
    """An et_train_config_t for ``config`` (no checks here: the C checks, and tests pass bad values on purpose)."""
    ranks = [int(r) for r in config.lrt_rank]
    return ffi.new("et_train_config_t *", {
        "optimizer": config.optimizer, "conv_per_pixel": int(config.conv_per_pixel), "bn_warm": int(config.bn_warm),
        "lr_weight": config.lr_weight, "lr_weight_exp": config.lr_weight_exp,
        "lr_bias": config.lr_bias, "lr_bias_exp": config.lr_bias_exp, "seed": config.seed,
        "lrt": {f: int(getattr(config.lrt, f)) for f in LRT_FIELDS},
        "lrt_rank": ranks + [0] * (ref_train.MAX_LAYERS - len(ranks)),
    })


class CModel:
    """A model table and its image inside a plain-memory NVM region, as the C core sees them."""

    def __init__(self, model: Model, image: bytes | None = None):
        from .core import call, ffi

        data, self.offsets = layout(model)
        self.mem = ffi.new("uint8_t[]", image if image is not None else data)
        self.size = len(data)
        self.stats = ffi.new("et_nvm_ram_stats_t *")
        self.nvm = ffi.new("et_nvm_t *")
        call("et_nvm_ram_init", self.nvm, self.mem, self.size, self.stats)
        self.c = ffi.new("et_model_t *")
        fill_c_table(ffi, self.c, model, self.offsets, self.mem, self.size)


class CPlanner:
    """The C planner over one model table (laid out once): et_plan and et_plan_lrt_layer for any config."""

    def __init__(self, model: Model):
        from .core import call, ffi, lib

        self.model = model
        self._ffi, self._lib, self._call = ffi, lib, call
        self.cm = CModel(model)

    def plan(self, config: TrainConfig) -> dict[str, int]:
        """Arena bytes per part and "total" (et_plan)."""
        ffi, lib = self._ffi, self._lib
        plan = ffi.new("et_plan_t *")
        self._call("et_plan", self.cm.c, c_config(ffi, config), plan)
        parts = {ffi.string(lib.et_plan_part_name(p)).decode(): plan.part[p] for p in range(lib.ET_PLAN_PART_COUNT)}
        parts["total"] = plan.total
        return parts

    def lrt_layers(self, config: TrainConfig) -> list[dict]:
        """Per trainable layer (model order) its LRT figures (et_plan_lrt_layer): name, kind, n, m, rank, bytes."""
        ffi = self._ffi
        out = []
        f = ffi.new("et_plan_lrt_layer_t *")
        for i, layer in enumerate(self.model.layers):
            if layer.weights is None:
                continue
            self._call("et_plan_lrt_layer", self.cm.c, c_config(ffi, config), i, f)
            out.append({"name": layer.name, "index": i, "kind": "conv" if f.kind == 1 else "dense", "n": f.n, "m": f.m,
                        "rank": f.rank, "lrt_bytes": f.state_bytes, "norms_bytes": f.norms_bytes,
                        "scratch_bytes": f.scratch_bytes})
        return out


def c_plan(model: Model, config: TrainConfig) -> dict[str, int]:
    """et_plan: arena bytes per part and the total (the C core is the one source of truth)."""
    return CPlanner(model).plan(config)


class CBackend(Backend):
    name = "c"

    def __init__(self, model: Model, config: TrainConfig, image: bytes | None = None):
        super().__init__(model, config, image)
        from .core import call, ffi

        self._ffi, self._call = ffi, call
        self.cm = CModel(model, self.image_bytes)
        cfg = c_config(ffi, config)
        self.plan = c_plan(model, config)
        total = self.plan["total"]
        self._arena = ffi.new("uint64_t[]", max(1, (total + 7) // 8))
        ctx = ffi.new("et_train_t **")
        required = ffi.new("uint32_t *")
        call("et_train_init", ctx, self._arena, total, self.cm.c, self.cm.nvm, cfg, required)
        self.ctx = ctx[0]
        self._counts = ffi.from_buffer("uint32_t[]", self.cell_writes)
        call("et_train_set_cell_counter", self.ctx, self._counts, self.image_size)
        self._result = ffi.new("et_train_result_t *")

    def _step(self, x, label):
        buf = self._ffi.from_buffer("uint8_t[]", x)
        self._call("et_train_step", self.ctx, buf, len(x), label, self._result)
        return int(self._result.predicted)

    def _predict(self, x):
        buf = self._ffi.from_buffer("uint8_t[]", x)
        self._call("et_train_predict", self.ctx, buf, len(x), self._result)
        return int(self._result.predicted)

    def _checkpoint(self):
        self._call("et_train_checkpoint", self.ctx)

    def image(self) -> np.ndarray:
        return np.frombuffer(self._ffi.buffer(self.cm.mem, self.image_size), dtype=np.uint8).copy()

    def _lrt_stats(self, layer: int) -> dict[str, int]:
        stats = self._ffi.new("et_train_lrt_stats_t *")
        self._call("et_train_lrt", self.ctx, layer, self._ffi.NULL, stats)
        return {k: int(getattr(stats, k)) for k in ref_train.LRT_STATS}

    def nvm_stats(self) -> dict[str, int]:
        s = self.cm.stats
        return {"program_calls": s.program_calls, "bytes_programmed": s.bytes_programmed, "bytes_changed": s.bytes_changed}


def make_backend(name: str, model: Model, config: TrainConfig, image: bytes | None = None) -> Backend:
    """The backend ``name`` over ``model`` (its own tensors, or ``image`` laid out as the model's)."""
    if name == "c":
        return CBackend(model, config, image)
    if name == "numpy":
        return NumpyBackend(model, config, image)
    if name == "arm":
        raise UnsupportedError("backend 'arm' (the ELF in the emulator) is not available yet: use --backend c or numpy")
    raise ArgumentError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")


__all__ = ["Backend", "CBackend", "CPlanner", "NumpyBackend", "TrainConfig", "BACKENDS", "c_plan", "make_backend", "LayerKind"]
