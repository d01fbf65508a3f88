"""Shared test plumbing: the C core handle, a count of C-vs-twin comparisons, and the skip ledger.

Skip ledger: every skipped test (a missing optional tool, package or data set) is listed at the end
of the run with its reason, and appended to the file $EDGETRAIN_SKIP_LOG when set (`make test`
prints that file as its closing summary). With EDGETRAIN_REQUIRE_ALL=1 (CI) a skip is a failure,
except a skip whose reason starts with "only in " (a test that belongs to another pass of `make
test`, e.g. "only in the sanitizer pass"), which is not listed, and one whose reason starts with
"opt-in: " (a test of something CI deliberately does not install, such as a peer library the user
points to, e.g. EDGETRAIN_AIFES_DIR), which is listed and logged but stays a skip.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent

# Hypothesis profiles: the default is thorough enough for CI; "quick" for the
# sanitizer pass, which runs every C call an order of magnitude slower.
settings.register_profile("default", max_examples=300, deadline=None)
settings.register_profile("quick", max_examples=60, deadline=None)
settings.load_profile(os.environ.get("EDGETRAIN_HYPOTHESIS", "default"))


class TwinCounter:
    """Counts every C-vs-twin equality check, reported at the end of the run."""

    def __init__(self) -> None:
        self.cases = 0

    def equal(self, c_value, twin_value, what: str = "") -> None:
        self.cases += 1
        assert c_value == twin_value, f"C and twin differ{' in ' + what if what else ''}: C={c_value!r} twin={twin_value!r}"


TWIN = TwinCounter()


@pytest.fixture(scope="session")
def twin() -> TwinCounter:
    return TWIN


@pytest.fixture(scope="session")
def core():
    from edgetrain.core import ffi, lib

    return ffi, lib


REQUIRE_ALL = os.environ.get("EDGETRAIN_REQUIRE_ALL") == "1"
OTHER_PASS = "only in "
OPT_IN = "opt-in: "
SKIPPED: dict[str, int] = {}


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def _ledger(report) -> None:
    """Count a skip; under EDGETRAIN_REQUIRE_ALL=1 turn it into a failure."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if reason.startswith(OTHER_PASS):
        return
    SKIPPED[reason] = SKIPPED.get(reason, 0) + 1
    if REQUIRE_ALL and not reason.startswith(OPT_IN):
        report.outcome = "failed"
        report.longrepr = f"skipped under EDGETRAIN_REQUIRE_ALL=1, where every test must run: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _ledger(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _ledger(outcome.get_result())


def pytest_sessionfinish(session):
    """Under pytest-xdist (`make test` runs with -n): a worker hands its counts to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["edgetrain"] = {"twin_cases": TWIN.cases, "skipped": dict(SKIPPED)}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """The controller adds up what each worker counted (the summary below is printed once, by it)."""
    counted = getattr(node, "workeroutput", {}).get("edgetrain")
    if counted:
        TWIN.cases += counted["twin_cases"]
        for reason, n in counted["skipped"].items():
            SKIPPED[reason] = SKIPPED.get(reason, 0) + n


def pytest_terminal_summary(terminalreporter, config):
    if hasattr(config, "workeroutput"):  # an xdist worker: the controller reports for all of them
        return
    if TWIN.cases:
        terminalreporter.write_line(f"C-vs-twin exact comparisons: {TWIN.cases}")
    lines = [f"pytest: {n} skipped: {reason}" for reason, n in sorted(SKIPPED.items())]
    for line in lines:
        terminalreporter.write_line(line)
    log = os.environ.get("EDGETRAIN_SKIP_LOG")
    if log and lines:
        with open(log, "a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))


def import_tensorflow():
    """(tensorflow, keras) for a test module that needs them; skips the module where TensorFlow is not
    installed, unless EDGETRAIN_REQUIRE_TF=1 (CI), which turns a missing TensorFlow into a failure."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import keras
        import tensorflow
    except ImportError:  # pragma: no cover - depends on the install
        if os.environ.get("EDGETRAIN_REQUIRE_TF") == "1":
            raise
        if os.environ.get("EDGETRAIN_EXPECT_SANITIZED") == "1":
            pytest.skip("only in the main pass: the sanitizer pass installs no TensorFlow", allow_module_level=True)
        pytest.skip("TensorFlow is not installed (pip install 'edgetrain[tf]'); CI installs it", allow_module_level=True)
    return tensorflow, keras


def find_mnist_dir() -> Path | None:
    """$EDGETRAIN_DATA_DIR, else ../shared/data/mnist beside the checkout; None when absent."""
    for candidate in (os.environ.get("EDGETRAIN_DATA_DIR"), ROOT.parent / "shared" / "data" / "mnist"):
        if candidate and (Path(candidate) / "train-images-idx3-ubyte.gz").is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The full MNIST directory where there is one, else the subset shipped in the package
    (3,000 test images, no training split: use ``stream_split``)."""
    from edgetrain.data import mnist

    return find_mnist_dir() or mnist.SUBSET_DIR


@pytest.fixture(scope="session")
def full_mnist_dir() -> Path:
    """The full MNIST directory, for tests marked ``full_mnist``; they skip, saying why, where it is absent."""
    found = find_mnist_dir()
    if found is None:
        pytest.skip("needs the full MNIST set: set EDGETRAIN_DATA_DIR to it (CI does; ../shared/data/mnist also works)")
    return found


def stream_split(folder: Path) -> str:
    """'train' where the folder holds the training split, else 'test' (the packaged subset)."""
    from edgetrain.data import mnist

    return "train" if "train" in mnist.splits(folder) else "test"
