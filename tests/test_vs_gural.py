"""bench/vs_gural.py: its argument and checkout errors, and the accumulator comparison's bookkeeping.

The authors' code is a checkout the user supplies, which CI does not have. The bookkeeping (settle
terms, timed blocks, each side's share of discarded terms) is checked against a stand-in `lr.sks`
whose kernel discards a known set of terms: the ones whose delta starts with a negative value.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT

from edgetrain.commands.bench import term_pool

SCRIPT = ROOT / "bench" / "vs_gural.py"

# Discards term n where Us[n][0] < 0, otherwise adds one to every Cx entry (a new array, as the real
# kernel assigns Cx after its kappa test). `offset` makes a block differ from the same terms run one
# at a time, which the script must refuse.
STAND_IN = """
import time

import numpy as np

SLOW = {slow}
calls = []

def apply_updates(Uhat, Vhat, Mult, Cx, Us, Vs, zerovar=0, kappa_th=10, qb=np.float32(16), rbits=None):
    assert Us.ndim == 2 and Vs.ndim == 2 and rbits.shape[1] == Us.shape[0]
    calls.append(Us.shape[0])
    if SLOW and calls.count(SLOW) == 1 and Us.shape[0] == SLOW:  # the first timed block only
        time.sleep(0.2)
    for n in range(Us.shape[0]):
        if Us[n][0] < 0:
            continue
        Cx = Cx + np.float32(1 + {offset} * (Us.shape[0] > 1))
    return Uhat, Vhat, Mult, Cx
"""


def run(args, cwd):
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def checkout(tmp_path, offset=0, slow=0):
    """A stand-in checkout; slow = B makes the first call with B terms (the first timed block) sleep."""
    (tmp_path / "lr").mkdir(parents=True)
    (tmp_path / "lr" / "__init__.py").write_text("")
    (tmp_path / "lr" / "sks.py").write_text(textwrap.dedent(STAND_IN.format(offset=offset, slow=slow)))
    return tmp_path


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: --gural"),
    (["--gural", ".", "--block", "0"], "--block must be at least 1 (got 0)"),
    (["--gural", ".", "--repeat", "0"], "--repeat must be at least 1 (got 0)"),
    (["--gural", ".", "--settle", "-1"], "--settle must be 0 or more (got -1)"),
    (["--gural", ".", "--rank", "9"], "--rank must be 8 or less (got 9)"),
    (["--gural", ".", "--parts", "acc,speed"], "--parts 'acc,speed': give acc, net or acc,net"),
    (["--gural", ".", "--shapes", "0x16"], "--shapes '0x16': give N x M"),
])
def test_bad_arguments_exit_2_saying_what_is_wrong(tmp_path, argv, message):
    out = run(argv, tmp_path)
    assert out.returncode == 2
    assert message in out.stderr


def test_a_missing_folder_and_a_folder_without_their_code_are_named(tmp_path):
    out = run(["--gural", str(tmp_path / "nowhere")], tmp_path)
    assert out.returncode == 2
    assert f"--gural {tmp_path / 'nowhere'}: no such folder" in out.stderr
    out = run(["--gural", str(tmp_path), "--parts", "acc"], tmp_path)
    assert out.returncode == 1
    assert "no lr/sks.py there; give the root of a low-rank-training checkout" in out.stderr


def test_timed_terms_and_each_sides_discards_are_counted_after_the_settle_terms(tmp_path):
    n, m, settle, block, repeat = 8, 16, 7, 5, 3
    src = checkout(tmp_path / "src")
    out_json = tmp_path / "out.json"
    out = run(["--gural", str(src), "--parts", "acc", "--shapes", f"{n}x{m}", "--settle", str(settle),
               "--block", str(block), "--repeat", str(repeat), "--json", str(out_json)], tmp_path)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out_json.read_text())["acc"]
    assert [r["mode"] for r in rows] == ["biased", "unbiased-k100"]
    pool = term_pool(n, m)
    timed = [pool[i % len(pool)][0][0] for i in range(settle, settle + block * repeat)]
    expected = sum(1 for v in timed if v < 0) / len(timed)
    assert 0 < expected < 1  # the stand-in both keeps and discards in this window
    for r in rows:
        assert (r["n"], r["m"], r["settle"], r["block"], r["repeat"]) == (n, m, settle, block, repeat)
        assert r["gural_skipped_fraction"] == expected
        assert r["gural_us_per_term"] > 0 and r["edgetrain_us_per_term"] > 0
        assert r["ratio"] == r["gural_us_per_term"] / r["edgetrain_us_per_term"]
    assert rows[0]["edgetrain_skipped_fraction"] == 0  # biased: the kappa rule is off
    assert 0 <= rows[1]["edgetrain_skipped_fraction"] <= 1
    assert f"discarded {expected:.0%} / 0%" in out.stdout


def test_a_kernel_whose_blocks_differ_from_single_terms_is_refused(tmp_path):
    src = checkout(tmp_path / "src", offset=1)
    out = run(["--gural", str(src), "--parts", "acc", "--shapes", "8x16", "--settle", "0", "--block", "4",
               "--repeat", "1"], tmp_path)
    assert out.returncode == 1
    assert "their kernel run term by term did not reproduce the block's state" in out.stderr


def test_time_per_term_is_the_mean_over_the_timed_terms(tmp_path):
    """Where the kappa rule's share of discards changes from block to block, the median block would
    compare one side's kept terms with the other's discarded ones: the reported time per term is the
    total over the timed blocks (here the first of three blocks takes 0.2 s more), the median block's
    is kept beside it."""
    block = 5
    src = checkout(tmp_path / "src", slow=block)
    out_json = tmp_path / "out.json"
    out = run(["--gural", str(src), "--parts", "acc", "--shapes", "8x16", "--settle", "7", "--block", str(block),
               "--repeat", "3", "--json", str(out_json)], tmp_path)
    assert out.returncode == 0, out.stderr
    row = json.loads(out_json.read_text())["acc"][0]
    assert row["gural_us_per_term"] >= 1e6 * 0.2 / (3 * block)
    assert row["gural_us_per_term_median_block"] < row["gural_us_per_term"] / 10
    assert row["edgetrain_us_per_term_median_block"] > 0
