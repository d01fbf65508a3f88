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


def run_sample(tmp_path, sample=SAMPLE, **env):
    (tmp_path / "test_sample.py").write_text(sample)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EDGETRAIN_")}
    full_env.update(env, PYTHONPATH=str(ROOT / "tests"))
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-q", "-p", "no:cacheprovider",
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
