"""Run-report figures from the emulator's counters, and wear plots.

``nvm_report`` gives the keys ``edgetrain run --memory-map`` adds to its JSON:

* ``nvm_energy_j``: program + erase energy (from the technology figures),
  plus read energy when the caller passes the bytes read (reads go through
  memory-mapped loads the HAL never sees).
* ``total_cell_writes``: sum over bytes of program operations covering them.
* ``write_density``: total_cell_writes / weight cells / samples (cell writes per
  cell per sample; the protocol's banks and records count, per weight cell).
* ``max_writes_per_cell``: the most programs any byte of the region received.
* ``bits_flipped``: stored bits changed by program and erase (drift excluded).
* ``projected_lifetime_days``: days until the first wear unit reaches its
  drawn endurance at the observed wear rate and ``samples_per_day`` (default
  1440, one sample a minute); None when nothing wore.
* ``worn_cells``: bytes whose bits are stuck.
* ``nvm_write_time_s``: program + erase busy time.

Plots need matplotlib (``pip install edgetrain[plots]``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgetrain.outputs import check_output_dir, write_figure
from edgetrain.errors import ArgumentError, UnsupportedError

from .nvm import NvmRegion, endurance_values

DEFAULT_SAMPLES_PER_DAY = 1440


def nvm_report(region: NvmRegion, samples: int, weight_cells: int, samples_per_day: float = DEFAULT_SAMPLES_PER_DAY,
               bytes_read: int = 0) -> dict:
    if samples < 1 or weight_cells < 1 or samples_per_day <= 0 or bytes_read < 0:
        raise ArgumentError(
            f"nvm_report needs samples >= 1, weight_cells >= 1, samples_per_day > 0, bytes_read >= 0 "
            f"(got {samples}, {weight_cells}, {samples_per_day}, {bytes_read})"
        )
    totals = region.totals()
    total_writes = int(region.writes.sum(dtype=np.uint64))
    wear = region.wear.astype(np.float64)
    used = wear > 0
    lifetime = None
    if used.any():
        rate_per_day = wear[used] / samples * samples_per_day
        lifetime = float(np.min(endurance_values(region.endurance[used]).astype(np.float64) / rate_per_day))
    read_j = bytes_read * 8 * region.tech.read_energy * 1e-12
    return {
        "nvm_energy_j": totals["energy_fj"] * 1e-15 + read_j,
        "nvm_read_energy_j": read_j,
        "total_cell_writes": total_writes,
        "write_density": total_writes / weight_cells / samples,
        "max_writes_per_cell": int(region.writes.max()),
        "bits_flipped": totals["bits_flipped"],
        "projected_lifetime_days": lifetime,
        "samples_per_day": samples_per_day,
        "worn_cells": int(np.count_nonzero(region.stuck)),
        "nvm_write_time_s": totals["busy_ns"] * 1e-9,
    }


def cell_breakdown(view) -> dict:
    """Physical writes by kind of cell of a commit view (``firmware_sim.commit.CommitView``): the most
    program operations any byte of the kind received and their sum, for the weight banks (both banks'
    tensor bytes), the parameter banks (biases, batch norm) and the record rings; ``total_writes_other``
    are the rest (bank padding covered by whole program units; the factory image is never written)."""
    masks = view.cells()
    writes = view.region.writes
    out = {}
    rest = np.ones(writes.size, bool)
    for kind, mask in masks.items():
        out[f"max_writes_{kind}"] = int(writes[mask].max(initial=0))
        out[f"total_writes_{kind}"] = int(writes[mask].sum(dtype=np.uint64))
        rest &= ~mask
    out["total_writes_other"] = int(writes[rest].sum(dtype=np.uint64))
    return out


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UnsupportedError("wear plots need matplotlib: pip install 'edgetrain[plots]'") from None
    return plt


def tensor_writes(area, layer: int) -> np.ndarray:
    """Writes per weight cell of ``layer`` (a ``CommitView``'s weight tensor): array [2, rows, row_bytes]
    for banks A and B."""
    info = area.info(layer)
    banks = [area.region.writes[off:off + info["bytes"]].reshape(info["rows"], info["row_bytes"])
             for off in info["bank_offset"]]
    return np.stack(banks)


def write_plots(area, out_dir: str | Path) -> list[Path]:
    """A wear heat map PNG per layer with weights and a histogram of writes per weight cell (both banks),
    for a ``CommitView`` (a ``TrainingArea``, or the training context's handle)."""
    plt = _pyplot()
    out = check_output_dir(out_dir, "plots folder")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    cells = []
    for layer in area.layers:
        writes = tensor_writes(area, layer)
        cells.append(writes.reshape(-1))
        name = area.model.layers[layer].name or f"layer{layer}"
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), squeeze=False)
        vmax = max(1, int(writes.max()))
        for bank, ax in zip("AB", axes[0]):
            im = ax.imshow(writes["AB".index(bank)], aspect="auto", interpolation="nearest", vmin=0, vmax=vmax, cmap="viridis")
            ax.set_title(f"{name}: bank {bank}")
            ax.set_xlabel("column (byte in row)")
            ax.set_ylabel("row (output)")
        fig.colorbar(im, ax=axes[0].tolist(), label="writes per cell")
        path = out / f"wear_{layer:02d}_{name}.png"
        write_figure(fig, path)
        paths.append(path)
    allw = np.concatenate(cells) if cells else np.zeros(1)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(allw, bins=min(50, max(1, int(allw.max()) + 1)), log=True)
    ax.set_xlabel("writes per weight cell (both banks)")
    ax.set_ylabel("cells")
    ax.set_title(f"{area.model.name} on {area.region.tech.name}")
    path = out / "writes_histogram.png"
    write_figure(fig, path)
    paths.append(path)
    return paths

