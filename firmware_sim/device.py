"""The ``memory-map`` device provider (registered with edgetrain.devices through an entry point).

It turns a memory map (a preset or a TOML file) into an emulated NVM region
for the C core, checks that the arena and the model fit the map, and reports
the emulator's figures. ``max_writes_per_cell`` and the other unprefixed write
keys of a run stay logical (edgetrain's meaning); the emulator's physical
device operations get ``physical_*`` keys.
"""
from __future__ import annotations

from dataclasses import replace

from edgetrain.backends import c_plan
from edgetrain.model.image import layout

from .commit import CommitView, area_size, commit_stage_bytes
from .memory_map import MemoryMap
from .report import DEFAULT_SAMPLES_PER_DAY, cell_breakdown, nvm_report, write_plots

PHYSICAL = ("total_cell_writes", "write_density", "max_writes_per_cell")


class MemoryMapDevice:
    """An emulated device of one memory map, hosting one model under one training config."""

    def __init__(self, spec, model, config, seed: int):
        self.map = MemoryMap.load(spec)
        self.name = self.map.name
        self.region = self.map.make_nvm(seed=seed)
        self.config = replace(config, commit_stage_bytes=commit_stage_bytes(self.region))
        self.map.check_arena(c_plan(model, self.config)["total"])
        image, _ = layout(model, align=max(4, self.region.tech.program_unit))
        self.map.check_image(len(image), area_size(model, self.region, self.config.ring_slots))

    def report(self, backend, samples: int, n_weights: int, samples_per_day: float | None = None) -> dict:
        region = self.region
        per_day = DEFAULT_SAMPLES_PER_DAY if samples_per_day is None else samples_per_day
        figures = nvm_report(region, samples, n_weights, samples_per_day=per_day)
        for key in PHYSICAL:
            figures[f"physical_{key}"] = figures.pop(key)
        stats = backend.nvm_stats()
        return {
            **figures,
            "nvm_energy_model": (f"emulated {region.tech.name}: program + erase energy of every device operation "
                                 f"({region.tech.program_energy} pJ/bit, basis '{region.tech.energy_basis}'); "
                                 "reads not counted"),
            "memory_map": self.name,
            "technology": region.tech.name,
            "physical_writes": cell_breakdown(CommitView(backend.model, region, backend.commit)),
            "commits": stats["commits"],
            "commits_lost": stats["commits_lost"],
            "worn_reports": stats["worn_reports"],
            "commit_bytes_programmed": stats["bytes_programmed"],
            "commit_record_bytes": stats["record_bytes"],
        }

    @staticmethod
    def summary(report: dict) -> str:
        life = report["projected_lifetime_days"]
        life_text = "no wear" if life is None else f"{life:,.1f} days at {report['samples_per_day']:,g} samples/day"
        return (f"{report['memory_map']} ({report['technology']}): NVM energy {report['nvm_energy_j'] * 1e6:,.3f} uJ, "
                f"physical max writes per cell {report['physical_max_writes_per_cell']:,}, "
                f"projected lifetime {life_text}, worn cells {report['worn_cells']:,}")

    def write_plots(self, backend, folder) -> list[str]:
        return [str(p) for p in write_plots(CommitView(backend.model, self.region, backend.commit), folder)]
