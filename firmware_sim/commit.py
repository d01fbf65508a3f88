"""The emulated device's weight storage: a factory model image and a training
area in one NVM region, driven through the C core's atomic commit (et_commit.h).

``TrainingArea`` is what a firmware does at boot and at every weight update:
``open()`` recovers from NVM alone, ``active(layer)`` is the layer's weights
where they lie, ``commit(layer, new)`` writes a new version atomically.
Factory programming (placing the image) is not counted as device writes: it
happens before deployment.
"""
from __future__ import annotations

import numpy as np

from edgetrain.core import ffi, lib
from edgetrain.errors import ArgumentError, NoMemoryError, raise_for_status
from edgetrain.model import Model
from edgetrain.model.image import fill_c_table, layout

from .nvm import NvmRegion

BANK_NAMES = {0: "A", 1: "B", 2: "factory"}
STAT_FIELDS = ("commits", "program_ops", "erase_ops", "bytes_programmed", "record_bytes", "worn_reports", "record_retries", "crc_fallbacks")


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def area_size(model: Model, region: NvmRegion, ring_slots: int = 8) -> int:
    """Bytes of training area ``model`` needs on ``region`` (et_commit_area_size)."""
    image, offsets = layout(model, align=max(4, region.tech.program_unit))
    c_model = ffi.new("et_model_t *")
    keep = ffi.new("uint8_t[]", image)
    fill_c_table(ffi, c_model, model, offsets, keep, len(image))
    out = ffi.new("uint32_t *")
    raise_for_status(lib.et_commit_area_size(c_model, region.nvm, ring_slots, out), f"et_commit_area_size(model {model.name!r}, {region.tech.name}, ring {ring_slots})")
    return int(out[0])


class TrainingArea:
    """Factory image at ``image_offset`` of ``region`` plus a training area after it."""

    def __init__(self, model: Model, region: NvmRegion, *, image_offset: int = 0, area_offset: int | None = None,
                 ring_slots: int = 8, model_id: int = 0, stage_bytes: int | None = None, place_image: bool = True):
        self.model = model
        self.region = region
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
        fill_c_table(ffi, self.c_model, model, offsets, region._mem + image_offset, len(image))
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
        size = ffi.new("uint32_t *")
        raise_for_status(lib.et_commit_get_buffer_size(region.nvm, size), "et_commit_get_buffer_size")
        self.stage_bytes = int(size[0]) if stage_bytes is None else stage_bytes
        self._stage = ffi.new("uint8_t[]", self.stage_bytes)
        self.cfg = ffi.new("et_commit_config_t *", {
            "area_offset": self.area_offset, "area_size": region.size - self.area_offset,
            "ring_slots": ring_slots, "model_id": model_id,
        })
        self.c = ffi.new("et_commit_t *")
        self.layers = [i for i, layer in enumerate(model.layers) if layer.trainable]
        self.open()

    # -- boot ----------------------------------------------------------------
    def open(self) -> None:
        """Recover the active bank of every tensor from NVM alone (a reboot)."""
        raise_for_status(
            lib.et_commit_open(self.c, self.c_model, self.region.nvm, self.cfg, self._stage, self.stage_bytes),
            f"et_commit_open(model {self.model.name!r}, area at {self.area_offset:#x})",
        )

    # -- reading ---------------------------------------------------------------
    def _check_layer(self, layer: int) -> None:
        if layer not in self.layers:
            raise ArgumentError(f"layer {layer} of model {self.model.name!r} has no weights; trainable layers: {self.layers}")

    def active(self, layer: int) -> np.ndarray:
        """The active weights of ``layer``: a read-only int8 view of NVM, in the layer's weight shape."""
        self._check_layer(layer)
        ptr = ffi.new("const int8_t **")
        raise_for_status(lib.et_commit_active_tensor(self.c, layer, ptr), f"et_commit_active_tensor({layer})")
        shape = self.model.layers[layer].weights.shape
        view = np.frombuffer(ffi.buffer(ptr[0], int(np.prod(shape))), np.int8).reshape(shape)
        view.flags.writeable = False
        return view

    def info(self, layer: int) -> dict:
        self._check_layer(layer)
        t = ffi.new("et_commit_tensor_t *")
        raise_for_status(lib.et_commit_tensor_info(self.c, layer, t), f"et_commit_tensor_info({layer})")
        return {
            "layer": t.layer, "rows": t.rows, "row_bytes": t.row_bytes, "bytes": t.bytes, "bank_bytes": t.bank_bytes,
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

    # -- writing -----------------------------------------------------------------
    def commit(self, layer: int, new: np.ndarray, rows: list[tuple[int, int]] | None = None) -> None:
        """Write ``new`` (the layer's full weight tensor) as the next version.

        ``rows`` optionally lists (first_row, n_rows) runs to stream, in increasing
        order; rows outside them keep their current values. Raises the typed error
        of the C status (NvmIOError when power is lost: the old weights stay active).
        """
        self._check_layer(layer)
        shape = self.model.layers[layer].weights.shape
        new = np.asarray(new)
        if new.shape != shape or new.dtype != np.int8:
            raise ArgumentError(f"layer {layer}: new weights must be int8 of shape {shape}, got {new.dtype} {new.shape}")
        flat = np.ascontiguousarray(new.reshape(shape[0], -1))
        runs = [(0, shape[0])] if rows is None else rows
        what = f"commit of layer {layer}"
        raise_for_status(lib.et_commit_begin(self.c, layer), f"{what}: et_commit_begin")
        for first, count in runs:
            chunk = np.ascontiguousarray(flat[first:first + count])
            if chunk.shape[0] != count:
                lib.et_commit_abort(self.c, layer)
                raise ArgumentError(f"{what}: rows {first}..{first + count - 1} are outside the {shape[0]} rows")
            status = lib.et_commit_rows(self.c, layer, first, count, ffi.from_buffer("int8_t[]", chunk))
            if status != 0:
                if status == lib.ET_ERR_ARG:
                    lib.et_commit_abort(self.c, layer)
                raise_for_status(status, f"{what}: et_commit_rows({first}, {count})")
        raise_for_status(lib.et_commit_end(self.c, layer), f"{what}: et_commit_end")
