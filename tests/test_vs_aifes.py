"""bench/vs_aifes.py: its argument and checkout errors without AIfES, and a short run with it.

The run needs a checkout of AIfES for Arduino named by $EDGETRAIN_AIFES_DIR; CI has none (AIfES is a
peer library the user points to, not a dependency), so those tests are opt-in skips in the ledger.
Figures are measured, never asserted.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

SCRIPT = ROOT / "bench" / "vs_aifes.py"
CC = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
AIFES_DIR = os.environ.get("EDGETRAIN_AIFES_DIR")
needs_aifes = pytest.mark.skipif(
    not AIFES_DIR, reason="opt-in: needs an AIfES for Arduino checkout: set EDGETRAIN_AIFES_DIR to its root "
    "(git clone https://github.com/Fraunhofer-IMS/AIfES_for_Arduino)")


@pytest.fixture(scope="module")
def vs_aifes():
    spec = importlib.util.spec_from_file_location("vs_aifes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: --aifes"),
    (["--aifes", ".", "--samples", "0"], "--samples must be at least 1"),
    (["--aifes", ".", "--block", "0"], "--block must be at least 1"),
    (["--aifes", ".", "--warmup", "-1"], "--warmup must be 0 or more"),
    (["--aifes", ".", "--samples", "10", "--block", "20"], "--block 20 is more than --samples 10"),
])
def test_bad_arguments_exit_2_saying_what_is_wrong(vs_aifes, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        vs_aifes.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_a_folder_that_is_not_aifes_is_named_with_what_is_missing(vs_aifes, tmp_path, capsys):
    (tmp_path / "src").mkdir()
    assert vs_aifes.main(["--aifes", str(tmp_path), "--samples", "2", "--block", "1"]) == 2
    err = capsys.readouterr().err
    assert f"--aifes {tmp_path}: not an AIfES checkout (no src/aifes.h there)" in err


def test_a_missing_folder_is_named(vs_aifes, tmp_path, capsys):
    assert vs_aifes.main(["--aifes", str(tmp_path / "nowhere")]) == 2
    assert f"--aifes {tmp_path / 'nowhere'}: no such folder" in capsys.readouterr().err


def fake_checkout(root: Path, broken: str) -> Path:
    """The three marker files of an AIfES checkout; `broken` goes into the training source."""
    src = root / "src"
    for name, text in (("aifes.h", ""), ("basic/base/aialgo/aialgo_sequential_training.c", broken),
                       ("basic/default/ailayer/ailayer_dense_default.c", "int dense_placeholder;\n")):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    return root


def test_the_checkout_is_found_from_its_root_or_its_src(vs_aifes, tmp_path):
    fake_checkout(tmp_path, "")
    assert vs_aifes.source_root(tmp_path) == tmp_path / "src"
    assert vs_aifes.source_root(tmp_path / "src") == tmp_path / "src"


@pytest.mark.skipif(CC is None, reason="no host C compiler (cc/gcc)")
def test_a_compile_failure_names_the_file_and_the_flags(vs_aifes, tmp_path, capsys):
    fake_checkout(tmp_path, "this is not C;\n")
    assert vs_aifes.main(["--aifes", str(tmp_path), "--samples", "2", "--block", "1"]) == 2
    err = capsys.readouterr().err
    assert f"compiling {tmp_path / 'src/basic/base/aialgo/aialgo_sequential_training.c'} failed" in err
    assert "-O3 -fPIC -std=gnu99" in err


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_the_commit_of_a_git_checkout_is_recorded(vs_aifes, tmp_path):
    fake_checkout(tmp_path, "")
    (tmp_path / "library.properties").write_text("name=AIfES for Arduino\nversion=9.8.7\n")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    info = vs_aifes.describe_checkout(tmp_path, tmp_path / "src")
    assert (info["version"], info["commit"]) == ("9.8.7", head)
    # a folder inside someone else's repository is not that repository's commit
    assert "commit" not in vs_aifes.describe_checkout(tmp_path / "src", tmp_path / "src")


@needs_aifes
def test_a_short_run_writes_both_sides(vs_aifes, tmp_path):
    out = tmp_path / "vs_aifes.json"
    assert vs_aifes.main(["--aifes", AIFES_DIR, "--samples", "6", "--block", "3", "--warmup", "2",
                          "--keep-build", str(tmp_path / "build"), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    t = report["time"]
    assert (t["samples_timed"], t["blocks"]) == (6, 2)
    assert t["aifes_us_per_sample"] > 0 and t["edgetrain_us_per_sample"] > 0
    assert t["ratio"] == t["aifes_us_per_sample"] / t["edgetrain_us_per_sample"]
    assert report["aifes"]["path"] == str(Path(AIFES_DIR).resolve())
    assert "basic/base/aialgo/aialgo_sequential_training.c" in report["build"]["sources"]
    assert "instructions" not in report


@needs_aifes
def test_the_driver_trains(vs_aifes, tmp_path):
    """AIfES's loss on a few samples falls after training on them: the driver runs a real SGD step."""
    root = vs_aifes.source_root(Path(AIFES_DIR).resolve())
    lib, _ = vs_aifes.build(root, tmp_path)
    x, y, _ = vs_aifes.samples(None, 20)
    xf = vs_aifes.as_float(x)
    aifes = vs_aifes.Aifes(lib)
    before = sum(aifes.loss(xf[i], int(y[i])) for i in range(20))
    for _ in range(5):
        for i in range(20):
            aifes.train(xf[i], int(y[i]))
    assert sum(aifes.loss(xf[i], int(y[i])) for i in range(20)) < before / 2


@needs_aifes
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="opt-in: the AIfES instruction counts need valgrind")
def test_instruction_counts_of_both_sides(vs_aifes, tmp_path):
    out = tmp_path / "vs_aifes.json"
    assert vs_aifes.main(["--aifes", AIFES_DIR, "--samples", "2", "--block", "1", "--warmup", "0",
                          "--instructions", "--count", "2", "--json", str(out)]) == 0
    counts = json.loads(out.read_text())["instructions"]
    assert counts["aifes_instructions_per_sample"] > 0 and counts["edgetrain_instructions_per_sample"] > 0
