"""The skip ledger of tests/conftest.py: skips are listed and logged, EDGETRAIN_REQUIRE_ALL=1 (CI)
fails them, and a skip that belongs to another pass ("only in ...") or an opt-in test ("opt-in: ...")
stays a skip."""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT

SAMPLE = '''
import pytest

def test_runs():
    assert True

def test_needs_a_tool():
    pytest.skip("frobnicator not installed (apt-get install frobnicator)")

@pytest.mark.skipif(True, reason="only in the sanitizer pass (make test-asan)")
def test_other_pass():
    pass
'''


OPT_IN_SAMPLE = '''
import pytest

def test_runs():
    assert True

def test_needs_a_peer_checkout():
    pytest.skip("opt-in: needs a checkout of the frobnicator library: set FROB_DIR")
'''


TWIN_SAMPLE = '''
import pytest

def test_compares(twin):
    twin.equal(3, 3)
    twin.equal(b"x", b"x")

def test_needs_a_tool():
    pytest.skip("frobnicator not installed (apt-get install frobnicator)")
'''


def run_sample(tmp_path, sample=SAMPLE, files=1, pytest_args=(), **env):
    for k in range(files):
        (tmp_path / f"test_sample{k}.py").write_text(sample)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EDGETRAIN_")}
    full_env.update(env, PYTHONPATH=str(ROOT / "tests"))
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-q", "-p", "no:cacheprovider", *pytest_args,
                           "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
                          capture_output=True, text=True, env=full_env, cwd=tmp_path)


def test_skips_are_listed_and_logged(tmp_path):
    log = tmp_path / "skips.txt"
    proc = run_sample(tmp_path, EDGETRAIN_SKIP_LOG=str(log))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = "pytest: 1 skipped: frobnicator not installed (apt-get install frobnicator)"
    assert line in proc.stdout
    assert log.read_text() == line + "\n"


def test_require_all_turns_a_tool_skip_into_a_failure(tmp_path):
    proc = run_sample(tmp_path, EDGETRAIN_REQUIRE_ALL="1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 1 passed, 1 skipped" in proc.stdout
    assert "skipped under EDGETRAIN_REQUIRE_ALL=1, where every test must run: frobnicator" in proc.stdout


def test_an_opt_in_skip_is_listed_but_never_fails(tmp_path):
    log = tmp_path / "skips.txt"
    proc = run_sample(tmp_path, OPT_IN_SAMPLE, EDGETRAIN_REQUIRE_ALL="1", EDGETRAIN_SKIP_LOG=str(log))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 1 skipped" in proc.stdout
    line = "pytest: 1 skipped: opt-in: needs a checkout of the frobnicator library: set FROB_DIR"
    assert line in proc.stdout
    assert log.read_text() == line + "\n"


def test_xdist_workers_hand_their_counts_to_the_controller(tmp_path):
    """`make test` runs pytest with -n (pytest-xdist): skips and twin comparisons counted on the
    workers are summed by the controller, which alone prints the summary and writes the log once."""
    log = tmp_path / "skips.txt"
    proc = run_sample(tmp_path, TWIN_SAMPLE, files=3, pytest_args=("-n", "2", "--dist", "loadfile"),
                      EDGETRAIN_SKIP_LOG=str(log))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed, 3 skipped" in proc.stdout
    assert "C-vs-twin exact comparisons: 6" in proc.stdout
    line = "pytest: 3 skipped: frobnicator not installed (apt-get install frobnicator)"
    assert proc.stdout.count(line) == 1, proc.stdout
    assert log.read_text() == line + "\n"


def test_xdist_workers_fail_a_tool_skip_under_require_all(tmp_path):
    proc = run_sample(tmp_path, TWIN_SAMPLE, files=2, pytest_args=("-n", "2", "--dist", "loadfile"),
                      EDGETRAIN_REQUIRE_ALL="1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "2 failed, 2 passed" in proc.stdout
    assert "skipped under EDGETRAIN_REQUIRE_ALL=1, where every test must run: frobnicator" in proc.stdout
