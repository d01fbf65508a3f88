"""One interface over the two training engines: the C core (through cffi) and
its NumPy twin. ``edgetrain run`` drives either the same way, and the same
model, config, seed and data give the same logical model on both.

The C core never writes the factory image: every change goes through the
atomic commit (A/B banks and records in a training area after the image), so
its NVM holds the factory image plus versions of each tensor. The twin keeps
one copy and changes it in place. ``image()`` is the *logical* image on both:
the factory layout (``model.image.layout``) with every tensor replaced by its
active contents. ``weights_sha256`` hashes the tensors of that image in model
order (per layer: weights, bias, batch-norm block; no padding), so it does not
depend on how an NVM lays the model out.

``cell_writes`` counts logical writes: an image byte counts one each time its
value changes (weights through the write path, biases and batch norm at a
checkpoint). Physical writes (both banks, records, whole program units) are
counted by the emulated NVM (firmware_sim) when the C backend runs over one.
"""
from __future__ import annotations

import hashlib
from importlib import metadata

import numpy as np

from .config import LGA_FIELDS, LRT_FIELDS, LRT_STATS, MAX_LAYERS, TrainConfig
from .errors import ArgumentError, RangeError, UnsupportedError
from .model.description import LayerKind, Model
from .model.kinds import kind_name
from .model.image import fill_c_table, layout
from .model.validate import check_model
from .reference import plan as ref_plan
from .reference import layers as ref_layers
from .reference import train as ref_train

PARAMS = 0x8000  # ET_COMMIT_PARAMS: the tensor id of a layer's bias or batch-norm block


def tensor_spans(model: Model, offsets) -> list[tuple[int, int, int]]:
    """(tensor id, image offset, bytes) of every stored tensor, in model order."""
    spans = []
    for index, (layer, off) in enumerate(zip(model.layers, offsets)):
        if layer.weights is not None:
            spans.append((index, off.weight, layer.weights.size))
        if layer.bias is not None:
            spans.append((PARAMS | index, off.bias, 2 * layer.bias.size))
        if layer.bn is not None:
            spans.append((PARAMS | index, off.bn, 2 * layer.bn.size))
    return spans


class Backend:
    """Common surface; subclasses implement ``_step``, ``_predict``, ``_checkpoint``, ``image``."""

    name = "?"
    takes_region = False  # whether the engine can run over an emulated NVM region

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
        if label is not None and (isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer))):
            raise ArgumentError(f"label {label!r} must be an integer class index 0..{self.model.n_classes - 1}; "
                                "round or look it up before training (a float label is never truncated)")
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
        """sha256 of the logical model: every tensor's active bytes, in model order, without padding."""
        image = self.image()
        digest = hashlib.sha256()
        for _, off, size in tensor_spans(self.model, self.offsets):
            digest.update(image[off:off + size].tobytes())
        return digest.hexdigest()

    def lrt_stats(self) -> dict[str, dict[str, int]]:
        """Optimizer lrt: per trainable layer (by name) terms fed, skipped by kappa, flush attempts, applied."""
        return {layer.name: self._lrt_stats(i) for i, layer in enumerate(self.model.layers) if layer.weights is not None}

    def clip_counts(self) -> dict[str, dict[str, int]]:
        """Saturation counters per layer (by name) that can clip (conv, dense, batch norm, the softmax head):
        {"pre", "act", "grad", "weight", "param", "stats"} -> values clamped during training steps since the
        backend was made or reset_clip_counts (et_clip_counts_t, docs/numerics.md "Saturation counters")."""
        return {layer.name: self._clip_counts(i) for i, layer in enumerate(self.model.layers)
                if layer.kind not in (LayerKind.FLATTEN, LayerKind.MAXPOOL2)}

    def reset_clip_counts(self) -> None:
        """Set every layer's saturation counters to zero (et_train_reset_clip_counts)."""
        self._reset_clip_counts()

    def _clip_counts(self, layer: int) -> dict[str, int]:
        raise UnsupportedError(f"the {self.name} backend does not report saturation counters: use --backend c or numpy")

    def _reset_clip_counts(self) -> None:
        raise UnsupportedError(f"the {self.name} backend does not report saturation counters: use --backend c or numpy")

    def stored_weights(self) -> list[tuple[int, np.ndarray, np.ndarray | None]]:
        """(layer index, flat writable int8 view, stuck-bit mask or None) of every weight tensor's active bytes
        where the engine reads them (the NVM): what device physics such as drift acts on. Changing them
        is not a write (no count, no energy); a stuck mask (uint8 per byte) marks bits that cannot change."""
        return [(i, *self._stored(i)) for i, layer in enumerate(self.model.layers) if layer.weights is not None]

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

    def _clip_counts(self, layer: int) -> dict[str, int]:
        return ref_train.clip_counts(self.state, layer)

    def _reset_clip_counts(self) -> None:
        ref_train.reset_clip_counts(self.state)

    def _stored(self, layer: int):
        return self.state.layers[layer].weights.reshape(-1), None


def c_config(ffi, config: TrainConfig):
    """An et_train_config_t for ``config`` (no range checks here: the C checks, and tests pass bad values on
    purpose); a value that does not even fit its C field is an ArgumentError naming TrainConfig.check."""
    ranks = [int(r) for r in config.lrt_rank]
    if len(ranks) > MAX_LAYERS:
        raise ArgumentError(f"lrt_rank has {len(ranks)} entries; a model has at most {MAX_LAYERS} layers")
    if len(config.lrt_truncation) > MAX_LAYERS:
        raise ArgumentError(f"lrt_truncation has {len(config.lrt_truncation)} entries; a model has at most "
                            f"{MAX_LAYERS} layers")
    try:
        return _new_c_config(ffi, config, ranks)
    except (OverflowError, TypeError, ValueError) as exc:
        raise ArgumentError(f"TrainConfig does not fit et_train_config_t ({exc}); TrainConfig.check() names the "
                            "field and its range") from None


def _new_c_config(ffi, config: TrainConfig, ranks: list[int]):
    return ffi.new("et_train_config_t *", {
        "optimizer": config.optimizer, "conv_per_pixel": int(config.conv_per_pixel), "bn_warm": int(config.bn_warm),
        "lr_weight": config.lr_weight, "lr_weight_exp": config.lr_weight_exp,
        "lr_bias": config.lr_bias, "lr_bias_exp": config.lr_bias_exp, "seed": config.seed,
        "lrt": {f: int(getattr(config.lrt, f)) for f in LRT_FIELDS},
        "lrt_rank": ranks + [0] * (MAX_LAYERS - len(ranks)),
        "commit_stage_bytes": config.commit_stage_bytes, "ring_slots": config.ring_slots,
        "lga": {f: int(getattr(config.lga, f)) for f in LGA_FIELDS},
        "lga_rank": [int(r) for r in config.lga_rank] + [0] * (MAX_LAYERS - len(config.lga_rank)),
        "lrt_truncation": [int(t) for t in config.lrt_truncation] + [0] * (MAX_LAYERS - len(config.lrt_truncation)),
    })


def _nvm_align(nvm) -> int:
    return nvm.erase_unit if nvm.erase_unit else nvm.program_unit


class CModel:
    """A model table and its image inside an NVM region, as the C core sees them.

    Without ``region``: a plain-memory HAL (et_nvm_ram; ``program_unit`` 1 unless
    given) over one buffer holding the image (``layout(model)``) and, after it,
    the training area the commit needs (``ring_slots`` records per tensor). With ``region``
    (a firmware_sim ``NvmRegion``): the image, laid out to the region's program
    unit, at offset 0 and the training area after it; ``place_image=False``
    keeps what the region holds (the factory image is already there: a reboot).
    ``size`` is the image's size, ``nvm_size`` the region's.
    """

    def __init__(self, model: Model, image: bytes | None = None, region=None, ring_slots: int = 8,
                 place_image: bool = True, program_unit: int = 1):
        from .core import call, ffi, lib

        self.region = region
        if region is None:
            data, self.offsets = layout(model)
            if image is not None:
                data = bytes(image)
            self.size = len(data)
            keep = ffi.new("uint8_t[]", data)
            probe, probe_stats = ffi.new("et_nvm_t *"), ffi.new("et_nvm_ram_stats_t *")
            call("et_nvm_ram_init", probe, keep, self.size, probe_stats)
            probe.program_unit = program_unit
            table = ffi.new("et_model_t *")
            fill_c_table(ffi, table, model, self.offsets, keep, self.size)
            need = ffi.new("uint32_t *")
            call("et_commit_area_size", table, probe, ring_slots, need)
            self.nvm_size = -(-self.size // program_unit) * program_unit + need[0]
            self.mem = ffi.new("uint8_t[]", self.nvm_size)
            ffi.memmove(self.mem, data, self.size)
            self.stats = ffi.new("et_nvm_ram_stats_t *")
            self.nvm = ffi.new("et_nvm_t *")
            call("et_nvm_ram_init", self.nvm, self.mem, self.nvm_size, self.stats)
            self.nvm.program_unit = program_unit  # a word-programmed NVM (the RAM HAL programs any length)
        else:
            if image is not None:
                raise ArgumentError("an image cannot be given with an NVM region: place the model (place_image) or "
                                    "keep what the region holds (place_image=False)")
            data, self.offsets = layout(model, align=max(4, region.tech.program_unit))
            if len(data) > region.size:
                raise ArgumentError(f"model image of {len(data)} bytes does not fit NVM region {region.name!r} of "
                                    f"{region.size} bytes: use a larger region")
            self.size = len(data)
            self.nvm_size = region.size
            if place_image:  # factory programming: before deployment, not counted as device writes
                region.mem[:self.size] = np.frombuffer(data, np.uint8)
            self.mem = region.c_mem
            self.stats = None
            self.nvm = region.nvm
        self.c = ffi.new("et_model_t *")
        fill_c_table(ffi, self.c, model, self.offsets, self.mem, self.size)
        self._lib = lib

    def stage_bytes(self) -> int:
        """The commit's staging buffer this NVM needs (et_commit_get_buffer_size)."""
        from .core import call, ffi

        out = ffi.new("uint32_t *")
        call("et_commit_get_buffer_size", self.nvm, out)
        return int(out[0])


ARENA_MAX = 2**32 - 1  # et_plan_t sizes are uint32: the largest arena the core can plan


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
        try:
            self._call("et_plan", self.cm.c, c_config(ffi, config), plan)
        except RangeError:
            need = ref_plan.plan(self.model, config, 0)["total"]
            raise RangeError(
                f"model {self.model.name!r} needs a training arena of at least {need:,} bytes ({need / 2**30:.1f} GiB): "
                f"more than the {ARENA_MAX:,} bytes (4 GiB - 1) the core can address; shrink its largest "
                "activations or layers") from None
        parts = {ffi.string(lib.et_plan_part_name(p)).decode(): plan.part[p] for p in range(lib.ET_PLAN_PART_COUNT)}
        parts["total"] = plan.total
        return parts

    def _layer_figures(self, config: TrainConfig, method: str, fields: dict[str, str]) -> list[dict]:
        """Per trainable layer (model order): name, index and ``fields`` (report key -> field of the
        C struct that ``method``, et_plan_lrt_layer or et_plan_lga_layer, fills)."""
        ffi = self._ffi
        f = ffi.new(f"{method}_t *")
        out = []
        for i, layer in enumerate(self.model.layers):
            if layer.weights is None:
                continue
            self._call(method, self.cm.c, c_config(ffi, config), i, f)
            out.append({"name": layer.name, "index": i, **{key: getattr(f, field) for key, field in fields.items()}})
        return out

    def lrt_layers(self, config: TrainConfig) -> list[dict]:
        """Per trainable layer (model order) its LRT figures (et_plan_lrt_layer): name, kind, n, m, rank, bytes."""
        rows = self._layer_figures(config, "et_plan_lrt_layer", {"n": "n", "m": "m", "rank": "rank", "lrt_bytes": "state_bytes",
                                                                 "norms_bytes": "norms_bytes", "scratch_bytes": "scratch_bytes"})
        return [{**r, "kind": kind_name(self.model.layers[r["index"]].kind)} for r in rows]

    def lga_layers(self, config: TrainConfig) -> list[dict]:
        """Per trainable layer (model order) its LGA figures (et_plan_lga_layer): name, index, n, m, rank, bytes."""
        return self._layer_figures(config, "et_plan_lga_layer", {k: k for k in ("n", "m", "rank", "optimizer", "state_bytes",
                                                                                "scratch_bytes", "z_bytes")})


def c_plan(model: Model, config: TrainConfig) -> dict[str, int]:
    """et_plan: arena bytes per part and the total (the C core is the one source of truth)."""
    config.check()
    return CPlanner(model).plan(config)


class CBackend(Backend):
    """The C core over a plain-memory NVM, or over an emulated NVM region (``region``, firmware_sim)."""

    name = "c"
    takes_region = True

    def __init__(self, model: Model, config: TrainConfig, image: bytes | None = None, region=None,
                 place_image: bool = True):
        super().__init__(model, config, image)
        from .core import call, ffi, lib

        self._ffi, self._call, self._lib = ffi, call, lib
        self.cm = CModel(model, image if region is None else None, region=region, ring_slots=config.ring_slots,
                         place_image=place_image)
        need, align = self.cm.stage_bytes(), _nvm_align(self.cm.nvm)
        if config.commit_stage_bytes < need or config.commit_stage_bytes % align:
            raise ArgumentError(
                f"commit_stage_bytes {config.commit_stage_bytes} does not suit this NVM: the commit's staging buffer "
                f"must be a multiple of {align} bytes and at least {need} (et_commit_get_buffer_size); set "
                f"TrainConfig(commit_stage_bytes={need})")
        cfg = c_config(ffi, config)
        self.plan = c_plan(model, config)
        total = self.plan["total"]
        self._arena = ffi.new("uint64_t[]", max(1, (total + 7) // 8))
        ctx = ffi.new("et_train_t **")
        required = ffi.new("uint32_t *")
        call("et_train_init", ctx, self._arena, total, self.cm.c, self.cm.nvm, cfg, required)
        self.ctx = ctx[0]
        # The C counter is indexed by the NVM image's layout; cell_writes by the factory layout.
        self._same_layout = self.cm.offsets == self.offsets
        self._nvm_counts = self.cell_writes if self._same_layout else np.zeros(self.cm.size, np.uint32)
        self._counts = ffi.from_buffer("uint32_t[]", self._nvm_counts)
        call("et_train_set_cell_counter", self.ctx, self._counts, self.cm.size)
        self._result = ffi.new("et_train_result_t *")
        commit = ffi.new("const et_commit_t **")
        call("et_train_commit", self.ctx, commit)
        self.commit = commit[0]
        self._touched: set[int] = set()  # layers whose active cells were handed out writable

    def _refresh_touched(self) -> None:
        """Cells handed out writable (stored_weights: drift) may have changed behind the commit: let it
        re-read them (et_commit_refresh) before the next write, so that it carries them over."""
        for layer in sorted(self._touched):
            self._call("et_commit_refresh", self._ffi.cast("et_commit_t *", self.commit), layer)
        self._touched.clear()

    def _step(self, x, label):
        if self._touched:
            self._refresh_touched()
        buf = self._ffi.from_buffer("uint8_t[]", x)
        try:
            self._call("et_train_step", self.ctx, buf, len(x), label, self._result)
        finally:
            self._sync_counts()
        return int(self._result.predicted)

    def _sync_counts(self) -> None:
        if not self._same_layout:
            for (_, src, size), (_, dst, _) in zip(tensor_spans(self.model, self.cm.offsets),
                                                   tensor_spans(self.model, self.offsets)):
                self.cell_writes[dst:dst + size] = self._nvm_counts[src:src + size]

    def _predict(self, x):
        buf = self._ffi.from_buffer("uint8_t[]", x)
        self._call("et_train_predict", self.ctx, buf, len(x), self._result)
        return int(self._result.predicted)

    def _checkpoint(self):
        if self._touched:
            self._refresh_touched()
        try:
            self._call("et_train_checkpoint", self.ctx)
        finally:
            self._sync_counts()

    def active(self, tensor: int) -> bytes:
        """The active bytes of a tensor (id: layer index, or PARAMS | layer index) where they lie in NVM."""
        ptr = self._ffi.new("const int8_t **")
        self._call("et_commit_active_tensor", self.commit, tensor, ptr)
        info = self._ffi.new("et_commit_tensor_t *")
        self._call("et_commit_tensor_info", self.commit, tensor, info)
        return bytes(self._ffi.buffer(ptr[0], info.bytes))

    def image(self) -> np.ndarray:
        """The logical image: the factory layout with every tensor's active bytes."""
        out = np.frombuffer(bytearray(self.image_bytes), dtype=np.uint8)
        for tensor, off, size in tensor_spans(self.model, self.offsets):
            out[off:off + size] = np.frombuffer(self.active(tensor), np.uint8)
        return out

    def _stored(self, layer: int):
        ptr = self._ffi.new("const int8_t **")
        self._call("et_commit_active_tensor", self.commit, layer, ptr)
        self._touched.add(layer)
        n = self.model.layers[layer].weights.size
        offset = int(self._ffi.cast("uintptr_t", ptr[0])) - int(self._ffi.cast("uintptr_t", self.cm.mem))
        if self.cm.region is not None:
            mem, stuck = self.cm.region.mem, self.cm.region.stuck[offset:offset + n]
        else:
            mem, stuck = np.frombuffer(self._ffi.buffer(self.cm.mem, self.cm.nvm_size), np.uint8), None
        return mem[offset:offset + n].view(np.int8), stuck

    def _lrt_stats(self, layer: int) -> dict[str, int]:
        stats = self._ffi.new("et_train_lrt_stats_t *")
        self._call("et_train_lrt", self.ctx, layer, self._ffi.NULL, stats)
        return {k: int(getattr(stats, k)) for k in LRT_STATS}

    def _clip_counts(self, layer: int) -> dict[str, int]:
        counts = self._ffi.new("et_clip_counts_t *")
        self._call("et_train_get_clip_counts", self.ctx, layer, counts)
        return {k: int(getattr(counts, k)) for k in ref_layers.CLIP_FIELDS}

    def _reset_clip_counts(self) -> None:
        self._call("et_train_reset_clip_counts", self.ctx)

    def nvm_stats(self) -> dict[str, int]:
        """The context's commit counters (et_train_nvm_stats), plus the plain-memory HAL's when there is one."""
        s = self._ffi.new("et_train_nvm_stats_t *")
        self._call("et_train_nvm_stats", self.ctx, s)
        out = {k: int(getattr(s, k)) for k in ("commits", "commits_lost", "worn_reports", "bytes_programmed", "record_bytes")}
        if self.cm.stats is not None:
            out["ram_bytes_changed"] = int(self.cm.stats.bytes_changed)
        return out


def register_backend(name: str, cls: type[Backend]) -> None:
    """Add an engine to the table at run time (``name`` must not be a built-in backend)."""
    if name in BACKENDS:
        raise ArgumentError(f"backend {name!r} is built in and cannot be replaced")
    BACKEND_CLASSES[name] = cls


def backend_names() -> tuple[str, ...]:
    """Every engine by name: the built-in ones, then those registered or installed as plug-ins."""
    installed = [ep.name for ep in metadata.entry_points(group=PLUGIN_GROUP)]
    return tuple(dict.fromkeys([*BACKEND_CLASSES, *sorted(installed)]))


def backend_class(name: str) -> type[Backend]:
    """The engine ``name``: from the table, else from a plug-in's entry point (loaded on first use)."""
    cls = BACKEND_CLASSES.get(name)
    if cls is None:
        found = [ep for ep in metadata.entry_points(group=PLUGIN_GROUP) if ep.name == name]
        if not found:
            raise UnsupportedError(f"backend {name!r} is not available: choose one of {', '.join(backend_names())}")
        cls = BACKEND_CLASSES.setdefault(name, found[0].load())
    return cls


def make_backend(name: str, model: Model, config: TrainConfig, image: bytes | None = None, region=None,
                 **options) -> Backend:
    """The backend ``name`` (see ``backend_names``) over ``model`` (its own tensors, or ``image`` laid out as
    the model's); ``region``: an emulated NVM region (edgetrain.devices) for an engine that ``takes_region``;
    ``options``: a plug-in engine's own keyword arguments (e.g. ``cpu`` for arm)."""
    cls = backend_class(name)
    if options and name in BACKENDS:
        raise ArgumentError(f"backend {name!r} takes no options; got {', '.join(sorted(options))}")
    if region is not None:
        if not cls.takes_region:
            raise UnsupportedError(f"backend {name!r} has no NVM emulator: run with --backend c to train over a memory map")
        return cls(model, config, image, region=region, **options)
    return cls(model, config, image, **options)


# The training engines by name; a new engine adds a row (and ``takes_region`` if it runs over an emulated NVM).
BACKEND_CLASSES: dict[str, type[Backend]] = {"c": CBackend, "numpy": NumpyBackend}
BACKENDS = tuple(BACKEND_CLASSES)  # the built-in engines
# Engines built on top of this package register under this entry-point group (firmware_sim: ``arm``, the
# firmware in the ARM emulator), so edgetrain never imports them by name.
PLUGIN_GROUP = "edgetrain.backends"


__all__ = ["Backend", "CBackend", "CPlanner", "NumpyBackend", "TrainConfig", "BACKENDS", "BACKEND_CLASSES", "PARAMS", "PLUGIN_GROUP",
           "backend_class", "backend_names", "c_plan", "make_backend", "register_backend", "tensor_spans", "LayerKind"]
