"""edgetrain experiment: byte-identical run JSONs whatever the worker count, a separately started dask
scheduler and worker, resume, failed runs reported while the rest go on, the summary and plots."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from edgetrain import cli
from edgetrain.backends import c_plan
from edgetrain.config import OPT_LRT, OPT_SGD, TrainConfig
from edgetrain.errors import ArgumentError
from edgetrain.experiment import SCHEMES, TIMING_KEYS, Grid, run_grid, scheme_options
from edgetrain.model.presets import preset


def small_grid(mnist_dir, **kw) -> Grid:
    return Grid(tasks=["drift-digital", "shifts"], model="mlp", samples=30, schemes=["none", "sgd", "lrt"], seeds=[0, 1],
                data_dir=str(mnist_dir), task_options={"p0": 500}, **kw)


def run_files(folder) -> dict[str, dict]:
    """Every run JSON without its timing keys (the only keys that may differ between executions)."""
    out = {}
    for path in sorted((folder / "runs").glob("*.json")):
        data = json.loads(path.read_text())
        for key in TIMING_KEYS:
            assert key in data
            data.pop(key)
        out[path.name] = json.dumps(data, sort_keys=True)
    return out


def test_one_and_two_workers_give_byte_identical_runs(tmp_path, mnist_dir):
    one = run_grid(small_grid(mnist_dir), tmp_path / "one", workers=1, progress=False, plots=False)
    two = run_grid(small_grid(mnist_dir), tmp_path / "two", workers=2, progress=False, plots=True)
    assert len(one["ran"]) == len(two["ran"]) == 12 and not one["failed"] and not two["failed"]
    a, b = run_files(tmp_path / "one"), run_files(tmp_path / "two")
    assert list(a) == list(b) and len(a) == 12
    assert a == b
    # The JSON files themselves differ only on the timing lines.
    for name in a:
        lines = lambda p: [l for l in p.read_text().splitlines() if not any(f'"{k}"' in l for k in TIMING_KEYS)]  # noqa: E731
        assert lines(tmp_path / "one" / "runs" / name) == lines(tmp_path / "two" / "runs" / name)
    r = json.loads((tmp_path / "two" / "runs" / "shifts-lrt-s1.json").read_text())
    assert r["scheme"] == "lrt" and r["task"] == "shifts" and r["seed"] == 1 and len(r["curves"]["samples"]) == 30
    summary = (tmp_path / "two" / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("run,task,scheme,seed") and len(summary) == 13
    assert (tmp_path / "two" / "summary.md").read_text().startswith("| task | scheme |")
    for png in ("accuracy_shifts.png", "writes_shifts.png", "accuracy_drift-digital.png", "writes_drift-digital.png"):
        assert (tmp_path / "two" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Resume: nothing left to run.
    again = run_grid(small_grid(mnist_dir), tmp_path / "two", workers=1, progress=False, plots=False)
    assert again["ran"] == [] and len(again["skipped"]) == 12


def test_a_failed_run_is_reported_and_the_rest_go_on(tmp_path, capsys, mnist_dir):
    """An SRAM between the sgd and the lrt arena of mlp: the lrt runs fail (arena too large), the others finish."""
    config = TrainConfig(commit_stage_bytes=16)
    sgd = c_plan(preset("mlp"), replace(config, optimizer=OPT_SGD))["total"]
    lrt = c_plan(preset("mlp"), replace(config, optimizer=OPT_LRT))["total"]
    sram = (sgd + lrt) // 2 // 4 * 4
    mmap = tmp_path / "tight.toml"
    mmap.write_text(f'name = "tight"\n[[region]]\nname = "nvm"\nkind = "nvm"\ntechnology = "rram"\nbase = 0x08000000\n'
                    f'size = "256 KiB"\n[[region]]\nname = "sram"\nkind = "sram"\nbase = 0x20000000\nsize = {sram}\n')
    grid = tmp_path / "grid.toml"
    grid.write_text(f'task = "control"\nmodel = "mlp"\nsamples = 20\nschemes = ["sgd", "lrt", "none"]\n'
                    f'memory_map = "{mmap}"\ndata_dir = "{mnist_dir}"\n')
    out = tmp_path / "out"
    assert cli.main(["experiment", str(grid), "--workers", "1", "--out", str(out), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "2 runs done, 0 skipped (already there), 1 failed" in captured.out
    assert "run control-lrt-s0 failed ({'task': 'control', 'scheme': 'lrt', 'seed': 0" in captured.err
    assert "the training arena needs" in captured.err
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["control-none-s0.json", "control-sgd-s0.json"]
    assert sorted(p.name for p in (out / "wear" / "control-sgd-s0").iterdir())[-1] == "writes_histogram.png"


def _free_port() -> int | None:
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    except OSError:
        return None


def test_a_separately_started_scheduler_and_worker(tmp_path, mnist_dir):
    port = _free_port()
    if port is None:
        pytest.skip("cannot open a TCP port on 127.0.0.1 for a dask scheduler")
    address = f"tcp://127.0.0.1:{port}"
    procs = []
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                       "--port", str(port), "--no-dashboard"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                       "--nworkers", "1", "--no-dashboard"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 60
        while True:  # the scheduler listens once it is up
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or procs[0].poll() is not None:
                    pytest.fail("the dask scheduler did not start within 60 s")
                time.sleep(0.2)
        grid = Grid(tasks=["drift-analog"], model="mlp", samples=25, schemes=["sgd", "lrt"], seeds=[3],
                    data_dir=str(mnist_dir))
        remote = run_grid(grid, tmp_path / "remote", scheduler=address, progress=False, plots=False)
        local = run_grid(grid, tmp_path / "local", workers=1, progress=False, plots=False)
        assert len(remote["ran"]) == 2 and not remote["failed"]
        assert run_files(tmp_path / "remote") == run_files(tmp_path / "local")
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_schemes_are_a_table():
    assert scheme_options("sgd-pixel") == {"optimizer": "sgd", "conv_per_pixel": True}
    assert scheme_options("lrt-biased-nonorm") == {"optimizer": "lrt", "lrt": {"unbiased": 0, "maxnorm": 0}}
    assert scheme_options("bias") == SCHEMES["bias"]
    with pytest.raises(ArgumentError, match="unknown scheme 'adam'"):
        scheme_options("adam")


def test_grid_files_are_checked(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('task = "control"\nsample = 10\n')
    with pytest.raises(ArgumentError, match=r"unknown keys \['sample'\]"):
        Grid.from_toml(bad)
    with pytest.raises(ArgumentError, match="does not exist"):
        Grid.from_toml(tmp_path / "none.toml")
    with pytest.raises(ArgumentError, match="unknown task 'rain'"):
        Grid(tasks=["rain"]).check()
