"""The emulated device's model storage: a factory model image and a training
area in one NVM region, driven through the C core's atomic commit (et_commit.h).

Tensors are named by id: a layer's weights by the layer index, its parameter
tensor (int16 biases, or a batch-norm block gamma/beta/mean/mean-square) by
``PARAMS | layer``. ``CommitView`` reads a commit handle (placement, state,
active contents); ``TrainingArea`` owns one, and is what a firmware does at
boot and at every update: ``open()`` recovers from NVM alone, ``active(t)`` is
a tensor where it lies, ``commit(t, new)`` writes a new version atomically.
The training context (et_train) has its own handle, read through a
``CommitView`` (``edgetrain.backends.CBackend.commit``).
Factory programming (placing the image) is not counted as device writes: it
happens before deployment.
"""
from __future__ import annotations

import zlib

import numpy as np

from edgetrain.core import ffi, lib
from edgetrain.errors import ArgumentError, NoMemoryError, raise_for_status
from edgetrain.model import Model
from edgetrain.model.image import fill_c_table, layout

from .nvm import NvmRegion

BANK_NAMES = {0: "A", 1: "B", 2: "factory"}
STAT_FIELDS = ("commits", "program_ops", "erase_ops", "bytes_programmed", "record_bytes", "worn_reports", "record_retries", "crc_fallbacks")
PARAMS = 0x8000  # ET_COMMIT_PARAMS


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def tensor_ids(model: Model) -> list[int]:
    """Every tensor the commit keeps, in layout order: per layer its weights, then its parameters."""
    ids = []
    for index, layer in enumerate(model.layers):
        if layer.weights is not None:
            ids.append(index)
        if layer.bias is not None or layer.bn is not None:
            ids.append(PARAMS | index)
    return ids


def tensor_name(model: Model, tensor: int) -> str:
    layer = model.layers[tensor & ~PARAMS]
    name = layer.name or f"layer{tensor & ~PARAMS}"
    if not tensor & PARAMS:
        return f"{name}.weights"
    return f"{name}.{'bias' if layer.bias is not None else 'bn'}"


def tensor_spec(model: Model, tensor: int) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a tensor's stored contents (weights int8, parameters little-endian int16)."""
    index = tensor & ~PARAMS
    if not 0 <= index < len(model.layers):
        raise ArgumentError(f"tensor id {tensor:#x}: model {model.name!r} has {len(model.layers)} layers")
    layer = model.layers[index]
    if not tensor & PARAMS:
        if layer.weights is None:
            raise ArgumentError(f"layer {index} of model {model.name!r} has no weights; layers with weights: "
                                f"{[i for i in tensor_ids(model) if not i & PARAMS]}")
        return layer.weights.shape, np.dtype(np.int8)
    params = layer.bias if layer.bias is not None else layer.bn
    if params is None:
        raise ArgumentError(f"layer {index} of model {model.name!r} has no parameter tensor (bias or batch norm)")
    return params.shape, np.dtype("<i2")


def model_id(image: bytes) -> int:
    """The model id the training context gives the commit: CRC-32 (zlib) of the factory image."""
    return zlib.crc32(image) & 0xFFFFFFFF


def commit_stage_bytes(region: NvmRegion) -> int:
    """The staging buffer a commit needs on ``region`` (et_commit_get_buffer_size)."""
    size = ffi.new("uint32_t *")
    raise_for_status(lib.et_commit_get_buffer_size(region.nvm, size), f"et_commit_get_buffer_size({region.tech.name})")
    return int(size[0])


def area_size(model: Model, region: NvmRegion, ring_slots: int = 8) -> int:
    """Bytes of training area ``model`` needs on ``region`` (et_commit_area_size)."""
    image, offsets = layout(model, align=max(4, region.tech.program_unit))
    c_model = ffi.new("et_model_t *")
    keep = ffi.new("uint8_t[]", image)
    fill_c_table(ffi, c_model, model, offsets, keep, len(image))
    out = ffi.new("uint32_t *")
    raise_for_status(lib.et_commit_area_size(c_model, region.nvm, ring_slots, out), f"et_commit_area_size(model {model.name!r}, {region.tech.name}, ring {ring_slots})")
    return int(out[0])


class CommitView:
    """Read access to a commit handle ``c`` (``et_commit_t *``) over ``region`` for ``model``."""

    def __init__(self, model: Model, region: NvmRegion, c):
        self.model = model
        self.region = region
        self.c = c
        self.tensors = tensor_ids(model)
        self.layers = [t for t in self.tensors if not t & PARAMS]  # tensors of weights

    def _check(self, tensor: int) -> None:
        tensor_spec(self.model, tensor)

    def active(self, tensor: int) -> np.ndarray:
        """The active contents of a tensor: a read-only view of NVM (int8 weights, int16 parameters)."""
        shape, dtype = tensor_spec(self.model, tensor)
        ptr = ffi.new("const int8_t **")
        raise_for_status(lib.et_commit_active_tensor(self.c, tensor, ptr), f"et_commit_active_tensor({tensor:#x})")
        view = np.frombuffer(ffi.buffer(ptr[0], int(np.prod(shape)) * dtype.itemsize), dtype).reshape(shape)
        view.flags.writeable = False
        return view

    def info(self, tensor: int) -> dict:
        self._check(tensor)
        t = ffi.new("et_commit_tensor_t *")
        raise_for_status(lib.et_commit_tensor_info(self.c, tensor, t), f"et_commit_tensor_info({tensor:#x})")
        return {
            "id": t.id, "rows": t.rows, "row_bytes": t.row_bytes, "bytes": t.bytes, "bank_bytes": t.bank_bytes,
            "bank_offset": (t.bank_offset[0], t.bank_offset[1]), "ring_offset": t.ring_offset, "ring_slots": t.ring_slots,
            "record_bytes": self.c.record_bytes, "seq": t.seq, "next_seq": t.next_seq, "head": t.head,
            "active": BANK_NAMES[t.active],
        }

    def stats(self) -> dict[str, int]:
        s = ffi.new("et_commit_stats_t *")
        raise_for_status(lib.et_commit_get_stats(self.c, s), "et_commit_get_stats")
        return {name: int(getattr(s, name)) for name in STAT_FIELDS}

    def snapshot_weights(self) -> dict[int, np.ndarray]:
        return {layer: self.active(layer).copy() for layer in self.layers}

    def snapshot(self) -> dict[int, np.ndarray]:
        """Copies of every tensor's active contents."""
        return {t: self.active(t).copy() for t in self.tensors}

    def cells(self) -> dict[str, np.ndarray]:
        """Boolean masks over the region's bytes: 'weight_banks' and 'param_banks' (the tensor bytes of both
        banks of every weight / parameter tensor) and 'records' (the rings)."""
        masks = {k: np.zeros(self.region.size, bool) for k in ("weight_banks", "param_banks", "records")}
        for t in self.tensors:
            info = self.info(t)
            banks = masks["param_banks" if t & PARAMS else "weight_banks"]
            for off in info["bank_offset"]:
                banks[off:off + info["bytes"]] = True
            masks["records"][info["ring_offset"]:info["ring_offset"] + info["ring_slots"] * info["record_bytes"]] = True
        return masks


class TrainingArea(CommitView):
    """Factory image at ``image_offset`` of ``region`` plus a training area after it, with its own handle."""

    def __init__(self, model: Model, region: NvmRegion, *, image_offset: int = 0, area_offset: int | None = None,
                 ring_slots: int = 8, model_id: int = 0, stage_bytes: int | None = None, place_image: bool = True):
        self.ring_slots = ring_slots
        self.model_id = model_id
        image, offsets = layout(model, align=max(4, region.tech.program_unit))
        if image_offset < 0 or image_offset + len(image) > region.size:
            raise ArgumentError(
                f"model image of {len(image)} bytes at offset {image_offset} does not fit NVM region "
                f"{region.name!r} of {region.size} bytes: use a larger region"
            )
        self.image_offset = image_offset
        self.image_bytes = len(image)
        if place_image:
            region.mem[image_offset:image_offset + len(image)] = np.frombuffer(image, np.uint8)
        self.c_model = ffi.new("et_model_t *")
        fill_c_table(ffi, self.c_model, model, offsets, region.c_mem + image_offset, len(image))
        align = region.tech.align
        self.area_offset = _round_up(image_offset + len(image), align) if area_offset is None else area_offset
        need = area_size(model, region, ring_slots)
        if self.area_offset + need > region.size:
            raise NoMemoryError(
                f"NVM region {region.name!r} ({region.size} bytes, {region.tech.name}) is too small for model "
                f"{model.name!r}: image {len(image)} bytes + training area {need} bytes at offset {self.area_offset} "
                f"need {self.area_offset + need} bytes; use a larger region or fewer ring slots",
                required_bytes=self.area_offset + need,
            )
        self.area_bytes = need
        self.stage_bytes = commit_stage_bytes(region) if stage_bytes is None else stage_bytes
        self._stage = ffi.new("uint8_t[]", self.stage_bytes)
        self.cfg = ffi.new("et_commit_config_t *", {
            "area_offset": self.area_offset, "area_size": region.size - self.area_offset,
            "ring_slots": ring_slots, "model_id": model_id,
        })
        super().__init__(model, region, ffi.new("et_commit_t *"))
        self.open()

    # -- boot ----------------------------------------------------------------
    def open(self) -> None:
        """Recover the active bank of every tensor from NVM alone (a reboot)."""
        raise_for_status(
            lib.et_commit_open(self.c, self.c_model, self.region.nvm, self.cfg, self._stage, self.stage_bytes),
            f"et_commit_open(model {self.model.name!r}, area at {self.area_offset:#x})",
        )

    # -- writing -----------------------------------------------------------------
    def commit(self, tensor: int, new: np.ndarray, rows: list[tuple[int, int]] | None = None) -> None:
        """Write ``new`` (the tensor's full contents: int8 weights or int16 parameters) as the next version.

        ``rows`` optionally lists (first_row, n_rows) runs to stream, in increasing
        order; rows outside them keep their current values (a parameter tensor has
        one row per value). Raises the typed error of the C status (NvmIOError when
        power is lost: the old contents stay active).
        """
        shape, dtype = tensor_spec(self.model, tensor)
        new = np.asarray(new)
        if new.shape != shape or new.dtype.kind != dtype.kind or new.dtype.itemsize != dtype.itemsize:
            raise ArgumentError(f"tensor {tensor:#x}: new contents must be {'int8' if dtype.itemsize == 1 else 'int16'} "
                                f"of shape {shape}, got {new.dtype} {new.shape}")
        typed = new.astype(dtype, copy=False)
        flat = np.ascontiguousarray(typed.reshape(-1) if tensor & PARAMS else typed.reshape(shape[0], -1))
        n_rows = flat.shape[0]
        what = f"commit of tensor {tensor:#x}"
        runs = [(0, n_rows)] if rows is None else _check_runs(rows, n_rows, what)
        raise_for_status(lib.et_commit_begin(self.c, tensor), f"{what}: et_commit_begin")
        for first, count in runs:
            chunk = np.ascontiguousarray(flat[first:first + count])
            status = lib.et_commit_rows(self.c, tensor, first, count, ffi.from_buffer("int8_t[]", chunk.view(np.int8)))
            if status != 0:
                if status == lib.ET_ERR_ARG:
                    lib.et_commit_abort(self.c, tensor)
                raise_for_status(status, f"{what}: et_commit_rows({first}, {count})")
        raise_for_status(lib.et_commit_end(self.c, tensor), f"{what}: et_commit_end")


def _check_runs(rows, n_rows: int, what: str) -> list[tuple[int, int]]:
    """``rows`` as (first_row, n_rows) int pairs inside 0..n_rows, increasing and not overlapping; else
    ArgumentError (checked before the commit begins: nothing is written)."""
    out, end = [], 0
    try:
        pairs = [(first, count) for first, count in rows]
    except (TypeError, ValueError):
        raise ArgumentError(f"{what}: rows must be (first_row, n_rows) pairs, got {rows!r}") from None
    for first, count in pairs:
        if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in (first, count)):
            raise ArgumentError(f"{what}: rows ({first!r}, {count!r}) must be two ints")
        if first < end or count < 1 or first + count > n_rows:
            raise ArgumentError(f"{what}: rows ({first}, {count}) must lie inside 0..{n_rows}, each run after the last "
                                "one and at least one row long; list the changed rows in increasing order")
        out.append((int(first), int(count)))
        end = first + count
    return out
