"""The experiment runner: a grid of runs (tasks x schemes x seeds) on dask.distributed (docs/experiments.md).

A *scheme* is a named set of Session options (``SCHEMES``, a table: a name not
in it that is an optimizer's name runs that optimizer with its defaults). A
*grid* is a task or a list of tasks, a model, a sample count, schemes, seeds
and optional task options, backend and memory map, given by arguments or a
TOML file. Each run is one Session on a dask worker; its JSON (the run keys,
the scheme, the curves) goes to ``OUT/runs/<run id>.json`` and depends only on
the run's parameters (never on the worker or their number) apart from
``elapsed_s`` and ``per_sample_ms``. A run whose JSON exists is skipped
(resume); a failed run is reported with its parameters and the rest go on.
The summary is ``summary.csv`` and ``summary.md``; plots per task:
``accuracy_<task>.png`` (bias-corrected EMA of prequential accuracy vs
samples) and ``writes_<task>.png`` (max writes per cell vs samples, log axis),
one line per scheme (seed 0, or the first seed); with a memory map, wear maps
under ``wear/<run id>/``.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .config import OPTIMIZERS, LrtConfig
from .errors import ArgumentError, UnsupportedError
from .outputs import write_atomic, write_figure
from .tasks import TASKS, TaskOptions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

# name -> Session options. LRT: the paper's defaults (unbiased, max-norm) and the three variants.
SCHEMES: dict[str, dict] = {
    "none": {"optimizer": "none"},
    "bias": {"optimizer": "bias"},
    "sgd": {"optimizer": "sgd"},
    "sgd-pixel": {"optimizer": "sgd", "conv_per_pixel": True},
    "lrt": {"optimizer": "lrt"},
    "lrt-nonorm": {"optimizer": "lrt", "lrt": {"maxnorm": 0}},
    "lrt-biased": {"optimizer": "lrt", "lrt": {"unbiased": 0}},
    "lrt-biased-nonorm": {"optimizer": "lrt", "lrt": {"unbiased": 0, "maxnorm": 0}},
}
DEFAULT_SCHEMES = ("none", "bias", "sgd", "sgd-pixel", "lrt", "lrt-nonorm", "lrt-biased", "lrt-biased-nonorm")
TIMING_KEYS = ("elapsed_s", "per_sample_ms")  # the only keys of a run JSON that vary between executions
SUMMARY_KEYS = ("run", "task", "scheme", "seed", "samples", "accuracy", "accuracy_last_500", "max_writes_per_cell",
                "total_cell_writes", "nvm_energy_j", "aux_bytes", "projected_lifetime_days", "weights_sha256")


def scheme_options(name: str) -> dict:
    """The Session options of scheme ``name``."""
    if name in SCHEMES:
        return json.loads(json.dumps(SCHEMES[name]))
    if name in OPTIMIZERS:
        return {"optimizer": name}
    raise ArgumentError(f"unknown scheme {name!r}: choose from {', '.join(dict.fromkeys([*SCHEMES, *OPTIMIZERS]))}")


@dataclass
class Grid:
    """What to run: every (task, scheme, seed)."""

    tasks: list[str]
    model: str = "mcu-cnn-pretrained"
    samples: int = 2000
    schemes: list[str] = field(default_factory=lambda: list(DEFAULT_SCHEMES))
    seeds: list[int] = field(default_factory=lambda: [0])
    backend: str = "c"
    memory_map: str | None = None
    data_dir: str | None = None
    task_options: dict = field(default_factory=dict)

    @classmethod
    def from_toml(cls, path: str | Path) -> "Grid":
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ArgumentError(f"grid file {str(path)!r} does not exist: give a task ({', '.join(TASKS)}) or a TOML file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ArgumentError(f"grid file {path}: not valid TOML ({exc})") from None
        tasks = data.pop("tasks", None) or [data.pop("task", "control")]
        data.pop("task", None)
        options = data.pop("options", {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ArgumentError(f"grid file {path}: unknown keys {sorted(unknown)}; known: task, tasks, options, "
                                f"{', '.join(k for k in cls.__dataclass_fields__ if k not in ('tasks', 'task_options'))}")
        return cls(tasks=list(tasks), task_options=dict(options), **data)

    def check(self) -> "Grid":
        for task in self.tasks:
            if task not in TASKS:
                raise ArgumentError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")
        for name in self.schemes:
            scheme_options(name)
        if not self.seeds or any(not isinstance(s, int) or not 0 <= s < 1 << 32 for s in self.seeds):
            raise ArgumentError(f"seeds {self.seeds}: give one or more integers in 0..2^32-1")
        if not isinstance(self.samples, int) or self.samples < 1:
            raise ArgumentError(f"samples {self.samples}: give at least 1")
        TaskOptions(**self.task_options).check()
        return self

    def runs(self) -> list[dict]:
        """One spec per run (plain data, so that it travels to any worker)."""
        specs = []
        for task in self.tasks:
            for scheme in self.schemes:
                for seed in self.seeds:
                    specs.append({"run": f"{task}-{scheme}-s{seed}", "task": task, "scheme": scheme, "seed": seed,
                                  "model": self.model, "samples": self.samples, "backend": self.backend,
                                  "memory_map": self.memory_map, "data_dir": self.data_dir,
                                  "task_options": dict(self.task_options)})
        return specs


def run_one(spec: dict, wear_dir: str | None = None) -> dict:
    """Run one spec (on a worker): the run JSON as a dict."""
    from .session import Session

    options = scheme_options(spec["scheme"])
    lrt = options.pop("lrt", None)
    session = Session(spec["model"], task=spec["task"], backend=spec["backend"], seed=spec["seed"],
                      memory_map=spec["memory_map"], data_dir=spec["data_dir"], task_options=spec["task_options"],
                      lrt=LrtConfig(**lrt) if lrt else None, **options)
    plots = str(Path(wear_dir) / spec["run"]) if wear_dir and spec["memory_map"] else None
    result = session.run(spec["samples"], progress=False, plots=plots)
    return {"run": spec["run"], "scheme": spec["scheme"], **result.to_dict()}


def run_text(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=True) + "\n"


def _client(workers: int | None, scheduler: str | None):
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - a dependency of edgetrain
        raise UnsupportedError("the experiment runner needs dask.distributed: pip install 'dask[distributed]'") from None
    if scheduler:
        return Client(scheduler, timeout="20s"), None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    return Client(cluster), cluster


def run_grid(grid: Grid, out: str | Path, workers: int | None = None, scheduler: str | None = None,
             progress: bool | None = None, plots: bool = True, log=print) -> dict:
    """Run every run of ``grid`` not yet in ``out``; write the JSONs, the summary and the plots.
    Returns {"ran": [...], "skipped": [...], "failed": [(spec, message), ...], "summary": path}."""
    grid.check()
    if plots:
        pyplot()  # before any work: plots need matplotlib
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    specs = grid.runs()
    todo = [s for s in specs if not (out / "runs" / f"{s['run']}.json").is_file()]
    skipped = [s["run"] for s in specs if s not in todo]
    if skipped:
        log(f"experiment: {len(skipped)} of {len(specs)} runs already in {out / 'runs'}; skipping them")
    ran, failed = [], []
    if todo:
        from distributed import as_completed
        from tqdm import tqdm

        client, cluster = _client(workers, scheduler)
        try:
            wear = str(out / "wear") if plots else None
            futures = {client.submit(run_one, spec, wear, key=f"edgetrain-{spec['run']}", pure=False): spec for spec in todo}
            enabled = sys.stderr.isatty() if progress is None else progress
            bar = tqdm(total=len(todo), unit="run", file=sys.stderr, disable=not enabled, dynamic_ncols=True)
            for future in as_completed(futures):
                spec = futures[future]
                try:
                    report = future.result()
                except Exception as exc:  # a failed run is reported; the rest go on
                    params = {k: spec[k] for k in ("task", "scheme", "seed", "model", "samples", "backend", "memory_map")}
                    failed.append((spec, f"{type(exc).__name__}: {exc}"))
                    log(f"experiment: run {spec['run']} failed ({params}): {type(exc).__name__}: {exc}")
                else:
                    write_atomic(out / "runs" / f"{spec['run']}.json", run_text(report))
                    ran.append(spec["run"])
                bar.update(1)
            bar.close()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    reports = [json.loads((out / "runs" / f"{s['run']}.json").read_text()) for s in specs
               if (out / "runs" / f"{s['run']}.json").is_file()]
    summary = write_summary(reports, out)
    if plots and reports:
        write_plots(reports, out)
    return {"ran": ran, "skipped": skipped, "failed": failed, "summary": str(summary)}


def write_summary(reports: list[dict], out: Path) -> Path:
    """summary.csv and summary.md: one row per run."""
    rows = [{k: r.get(k) for k in SUMMARY_KEYS} for r in reports]
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=SUMMARY_KEYS)
    w.writeheader()
    w.writerows(rows)
    write_atomic(out / "summary.csv", text.getvalue())
    cols = ("task", "scheme", "seed", "samples", "accuracy", "accuracy_last_500", "max_writes_per_cell", "nvm_energy_j",
            "aux_bytes", "projected_lifetime_days")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r[c]) for c in cols) + " |")
    path = out / "summary.md"
    write_atomic(path, "\n".join(lines) + "\n")
    return path


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UnsupportedError("plots need matplotlib: pip install 'edgetrain[plots]' (or pass --no-plots)") from None
    return plt


def write_plots(reports: list[dict], out: Path) -> list[Path]:
    """Per task: accuracy (EMA) and max writes per cell (log) vs samples, one line per scheme (first seed)."""
    plt = pyplot()
    paths = []
    for task in dict.fromkeys(r["task"] for r in reports):
        first = {}
        for r in reports:
            if r["task"] == task and r["scheme"] not in first:
                first[r["scheme"]] = r
        for what, key, ylabel, log in (("accuracy", "accuracy_ema", "prequential accuracy (EMA 0.999, bias-corrected)", False),
                                       ("writes", "max_writes_per_cell", "max writes per cell + 1", True)):
            fig, ax = plt.subplots(figsize=(6.4, 4))
            for scheme, r in first.items():
                c = r["curves"]
                ys = [v + 1 for v in c[key]] if log else c[key]
                ax.plot(c["samples"], ys, label=scheme)
            if log:
                ax.set_yscale("log")
            ax.set_xlabel("samples")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{task}: {next(iter(first.values()))['model']}")
            ax.legend(fontsize="small")
            fig.tight_layout()
            path = out / f"{what}_{task}.png"
            write_figure(fig, path, dpi=90)
            paths.append(path)
    return paths
