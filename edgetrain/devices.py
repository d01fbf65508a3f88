"""The device plug-in point: how edgetrain reaches an NVM emulator without depending on one.

``edgetrain`` is the bottom layer; an emulator (``firmware_sim``) builds on it.
A run over a memory map asks this module for a *device provider* by name;
providers register under the Python entry-point group ``edgetrain.devices``
(``firmware_sim`` registers ``memory-map`` in pyproject.toml) or at run time
with ``register``. This is the only place edgetrain reaches an emulator.

A provider is a callable ``provider(spec, model, config, seed)`` returning a
device with:

* ``name`` (str): the memory map's name; ``region``: the NVM region the C
  backend trains over (``mem``/``stuck`` NumPy views, ``c_mem``, ``nvm``,
  ``size``, ``tech.program_unit``); ``config``: the TrainConfig adjusted to
  the region (the commit's staging buffer);
* ``report(backend, samples, n_weights, samples_per_day=None) -> dict``: the
  run JSON keys the emulator adds (energy, lifetime, worn cells, ``physical_*``
  write figures); ``summary(report) -> str``: one console line of them;
* ``write_plots(backend, folder) -> list[str]``: wear plots (PNG paths).
"""
from __future__ import annotations

from importlib import metadata
from typing import Callable

from .errors import ArgumentError, UnsupportedError

GROUP = "edgetrain.devices"
_PROVIDERS: dict[str, Callable] = {}


def register(name: str, provider: Callable) -> None:
    """Make ``provider`` available as device provider ``name`` (overrides an entry point of that name)."""
    _PROVIDERS[name] = provider


def unregister(name: str) -> None:
    """Remove a provider registered with ``register`` (entry points stay)."""
    _PROVIDERS.pop(name, None)


def providers() -> dict[str, Callable]:
    """Registered providers: those registered at run time, then the installed entry points."""
    out = {}
    for ep in metadata.entry_points(group=GROUP):
        out[ep.name] = ep
    out.update(_PROVIDERS)
    return out


def provider(name: str = "memory-map") -> Callable:
    """The device provider ``name``; UnsupportedError naming the fix when none is installed."""
    found = providers().get(name)
    if found is None:
        raise UnsupportedError(f"no device provider {name!r} is installed (entry-point group {GROUP!r}): "
                               "reinstall edgetrain (pip install edgetrain), which registers firmware_sim's memory maps")
    if not callable(found):  # an entry point (importlib.metadata or its backport): load it
        found = found.load()
    return found


def open_device(spec, model, config, seed: int, name: str = "memory-map"):
    """A device for memory map ``spec`` (a preset name or a TOML file) hosting ``model`` under ``config``."""
    if spec is None or spec == "":
        raise ArgumentError("a memory map is needed: give a preset name (e.g. rram-mcu) or a TOML file")
    return provider(name)(spec, model, config, seed)
