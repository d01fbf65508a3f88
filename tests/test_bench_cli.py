"""`edgetrain bench`: the JSON it writes and the errors it raises (figures are measured, never asserted)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgetrain import cli
from edgetrain.commands.bench import core_clones, forward_macs, parse_shapes
from edgetrain.core import library_path
from edgetrain.errors import ArgumentError


def test_bench_writes_the_documented_keys(tmp_path):
    out = tmp_path / "bench.json"
    status = cli.main(["bench", "--parts", "lrt,train", "--shapes", "8x12", "--models", "mlp", "--optimizers", "sgd",
                       "--terms", "3", "--samples", "2", "--repeat", "1", "--no-instructions", "--json", str(out)])
    assert status == 0
    report = json.loads(out.read_text())
    assert [(r["n"], r["m"], r["mode"]) for r in report["lrt"]] == [(8, 12, "biased"), (8, 12, "unbiased-k100"),
                                                                      (8, 12, "biased-batch16"),
                                                                      (8, 12, "unbiased-k100-batch16")]
    assert [r["terms_per_call"] for r in report["lrt"]] == [1, 1, 16, 16]
    # a batch mode times whole batches: 3 terms round up to one call of 16
    assert [r["terms_timed"] for r in report["lrt"]] == [3, 3, 16, 16]
    assert all(r["us_per_term"] > 0 and r["us_per_reorthonormalize"] > 0 for r in report["lrt"])
    assert "instructions_per_term" not in report["lrt"][0]
    assert [(r["model"], r["optimizer"]) for r in report["train"]] == [("mlp", "sgd")]
    assert report["train"][0]["ms_per_sample"] > 0
    assert "phases" not in report
    assert set(report["machine"]["core_clones"]) == {"built", "native", "callgrind", "forward_vnni", "conv_forward_lanes"}


V4_FLAGS = "flags\t\t: fpu sse2 avx2 bmi2 fma avx512f avx512bw avx512cd avx512dq avx512vl\n"


def test_core_clones_says_which_copy_runs(tmp_path):
    cloned = tmp_path / "cloned.so"
    cloned.write_bytes(b"\0et_dot.arch_x86_64_v4\0et_dot.avx2\0et_dot.resolver\0")
    vnni = tmp_path / "vnni.so"
    vnni.write_bytes(b"\0et_dot.arch_x86_64_v4\0et_dot.avx2\0et_conv2d_forward_n_vnni\0et_conv2d_forward_lanes\0")
    plain = tmp_path / "plain.so"
    plain.write_bytes(b"\0et_dot\0")
    v4 = {"built": True, "native": "x86-64-v4", "callgrind": "avx2"}
    none = {"forward_vnni": False, "conv_forward_lanes": False}
    assert core_clones(str(cloned), V4_FLAGS) == {**v4, **none}
    assert core_clones(str(cloned), V4_FLAGS + " avx512_vnni\n") == {**v4, **none}
    assert core_clones(str(vnni), V4_FLAGS.rstrip() + " avx512_vnni\n") == \
        {**v4, "forward_vnni": True, "conv_forward_lanes": True}
    assert core_clones(str(vnni), V4_FLAGS) == {**v4, "forward_vnni": False, "conv_forward_lanes": True}
    assert core_clones(str(vnni), "flags\t\t: fpu sse2 avx2 bmi2 fma avx512_vnni\n") == \
        {"built": True, "native": "avx2", "callgrind": "avx2", "forward_vnni": False, "conv_forward_lanes": True}
    assert core_clones(str(vnni), "flags\t\t: fpu sse2\n") == \
        {"built": True, "native": "default", "callgrind": "default", **none}
    assert core_clones(str(cloned), "flags\t\t: fpu sse2\n") == \
        {"built": True, "native": "default", "callgrind": "default", **none}
    assert core_clones(str(plain), V4_FLAGS) == \
        {"built": False, "native": "portable", "callgrind": "portable", **none}
    # the real library is the one the bindings loaded
    assert Path(library_path()).is_file() and Path(library_path()).name.startswith("_core")


def test_forward_macs_of_the_mlp_is_the_sum_of_its_dense_layers():
    assert forward_macs("mlp") == 784 * 64 + 64 * 10


def test_forward_macs_of_the_mcu_cnn_counts_every_valid_window():
    # two VALID 3x3 convs (26x26x8 from 1 channel, 11x11x16 from 8), dense 400-64 and 64-10
    assert forward_macs("mcu-cnn") == 26 * 26 * 9 * 1 * 8 + 11 * 11 * 9 * 8 * 16 + 400 * 64 + 64 * 10


def test_parse_shapes():
    assert parse_shapes("128x1152, 512 x 2048") == [(128, 1152), (512, 2048)]
    for bad in ("128", "0x5", "5x70000", "axb"):
        with pytest.raises(ArgumentError, match="--shapes"):
            parse_shapes(bad)


@pytest.mark.parametrize("argv, message", [
    (["--parts", "lrt,speed"], "unknown part"),
    (["--models", "resnet"], "unknown preset"),
    (["--optimizers", "adam"], "unknown optimizer"),
    (["--terms", "0"], "--terms must be at least 1"),
])
def test_bench_rejects_bad_options(capsys, argv, message):
    assert cli.main(["bench", "--no-instructions", *argv]) == 2
    assert message in capsys.readouterr().err


def test_unknown_part_names_the_choices(capsys):
    assert cli.main(["bench", "--parts", "lrt,gpu", "--no-instructions"]) == 2
    assert "unknown part(s) gpu; choose from lrt, train, phases, firmware" in capsys.readouterr().err


@pytest.mark.arm
@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs arm-none-eabi-gcc (apt-get install -y --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi)")
def test_the_firmware_part_comes_from_the_firmware_sim_plug_in(tmp_path):
    pytest.importorskip("unicorn", reason="the ARM emulator needs unicorn: pip install 'edgetrain[arm]'")
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--quick", "--parts", "firmware", "--no-instructions", "--json", str(out)]) == 0
    fw = json.loads(out.read_text())["firmware"]
    m4 = fw["sizes"]["cortex-m4"]
    assert m4["flash"] == m4["text"] + m4["data"] > 0
    assert m4["ram"]["mlp/sgd"] == m4["data"] + m4["bss"] + m4["stack"] + m4["arena"]["mlp/sgd"]
    counts = {r["optimizer"]: r["instructions_per_sample"] for r in fw["instructions"]}
    assert counts["sgd"]["accumulate"] == 0 < counts["lrt"]["accumulate"]  # only LRT feeds the accumulators
    assert all(c["total"] > c["forward"] > 0 for c in counts.values())


def test_reorthonormalize_is_counted_per_call():
    """The bench's callgrind count of et_lrt_reorthonormalize (the `lrt-reorth` workload): a positive
    figure per call, below a term's at this size (its fixed part, the Cholesky and an r x r SVD, is smaller)."""
    from edgetrain.commands.bench import per_unit

    if __import__("os").environ.get("EDGETRAIN_EXPECT_SANITIZED") == "1":
        pytest.skip("only in the main pass: callgrind cannot run the AddressSanitizer build")
    if shutil.which("valgrind") is None:
        pytest.skip("valgrind not installed (the bench counts instructions with callgrind)")
    spec = {"kind": "lrt", "n": 16, "m": 72, "rank": 4, "mode": "biased"}
    reorth = per_unit(dict(spec, kind="lrt-reorth"), "et_lrt_reorthonormalize", 3)["et_lrt_reorthonormalize"]
    term = per_unit(spec, "et_lrt_accumulate_u8", 40)["et_lrt_accumulate_u8"]
    assert 0 < reorth < term
    # the batch mode's count is per term too: 32 terms are two calls of 16 (the pool cycles, so the
    # difference of 32 and 64 terms is four calls' worth over 32 terms)
    batched = per_unit(dict(spec, mode="biased-batch16"), "et_lrt_accumulate_batch_u8", 32)["et_lrt_accumulate_batch_u8"]
    assert term / 4 < batched < 4 * term
