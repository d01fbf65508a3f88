"""The training firmware on ARM (firmware_sim.firmware, firmware_sim.arm, firmware_sim.qemu): the ELF
in Unicorn gives the same predictions, weights and logical write counts as the C core on the host and
the NumPy twin, for Cortex-M0+ (built for v6-M, run on Unicorn's M0), M4 and M33, SGD and LRT; its NVM
programs go through the emulated region's accounting; a power loss inside a step leaves a state the
firmware recovers from NVM alone; QEMU's mps2-an386 is a second oracle."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from edgetrain.backends import CBackend, make_backend, tensor_spans
from edgetrain.config import OPT_LRT, OPT_SGD, LrtConfig, TrainConfig
from edgetrain.errors import ArgumentError, NvmIOError
from edgetrain.model.presets import preset

from conftest import ROOT

try:
    import elftools  # noqa: F401
    import unicorn  # noqa: F401
    HAVE_UNICORN = True
except ImportError:
    HAVE_UNICORN = False

pytestmark = [
    pytest.mark.arm,
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)"),
]
needs_unicorn = pytest.mark.skipif(not HAVE_UNICORN, reason="unicorn/pyelftools not installed (pip install 'edgetrain[arm]')")

CPUS = ("cortex-m0plus", "cortex-m4", "cortex-m33")


@pytest.fixture(scope="module")
def fw_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("firmware")


def samples(model, n, seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.integers(0, 256, size=(n, model.input_shape.size), dtype=np.uint8)
    return xs, rng.integers(0, model.n_classes, size=n)


def config(optimizer, seed=3, reorth=0, term_batch=0):
    # Small B so that LRT flushes (and writes) within a few samples.
    return TrainConfig(optimizer=optimizer, seed=seed,
                       lrt=replace(LrtConfig(), batch_conv=2, batch_dense=3, rho_min_ppm=0, reorth_terms=reorth,
                                   conv_term_batch=term_batch))


def train(backend, xs, ys):
    preds = [backend.step(x, y) for x, y in zip(xs, ys)]
    backend.checkpoint()
    return preds


@needs_unicorn
@pytest.mark.parametrize("cpu", CPUS)
@pytest.mark.parametrize("optimizer", [OPT_SGD, OPT_LRT], ids=["sgd", "lrt"])
def test_arm_matches_host_and_twin(fw_dir, cpu, optimizer):
    from firmware_sim.arm import ArmBackend

    model = preset("mlp", 1)
    cfg = config(optimizer)
    xs, ys = samples(model, 10)
    arm = ArmBackend(model, cfg, cpu=cpu, build_dir=fw_dir)
    runs = {"arm": arm, "c": make_backend("c", model, cfg), "numpy": make_backend("numpy", model, cfg)}
    preds = {name: train(b, xs, ys) for name, b in runs.items()}
    assert preds["arm"] == preds["c"] == preds["numpy"]
    sha = {name: b.weights_sha256() for name, b in runs.items()}
    assert sha["arm"] == sha["c"] == sha["numpy"]
    assert sha["arm"] != make_backend("c", model, cfg).weights_sha256()  # training changed the weights
    assert np.array_equal(arm.cell_writes, runs["c"].cell_writes)
    assert np.array_equal(arm.cell_writes, runs["numpy"].cell_writes)
    assert arm.cell_writes.sum() > 0
    if optimizer == OPT_LRT:
        assert arm.lrt_stats() == runs["c"].lrt_stats()
        assert any(s["applied"] for s in arm.lrt_stats().values())


@needs_unicorn
@pytest.mark.parametrize("optimizer, reorth, term_batch", [(OPT_SGD, 0, 0), (OPT_LRT, 0, 0), (OPT_LRT, 40, 0),
                                                          (OPT_LRT, 0, 16)],
                         ids=["sgd", "lrt", "lrt-reorth", "lrt-term-batch"])
def test_arm_mcu_cnn_on_m4(fw_dir, optimizer, reorth, term_batch):
    """With reorth, the conv layers' bases are re-orthonormalised every 40 terms; with term_batch, the conv
    layers' terms go to the batched accumulate 16 at a time (the INIT mailbox carries both)."""
    from firmware_sim.arm import ArmBackend

    model = preset("mcu-cnn", 0)
    cfg = config(optimizer, reorth=reorth, term_batch=term_batch)
    xs, ys = samples(model, 3 if optimizer == OPT_LRT else 4)
    arm = ArmBackend(model, cfg, cpu="cortex-m4", build_dir=fw_dir)
    c = make_backend("c", model, cfg)
    assert train(arm, xs, ys) == train(c, xs, ys)
    assert arm.weights_sha256() == c.weights_sha256()
    assert np.array_equal(arm.cell_writes, c.cell_writes)
    if reorth or term_batch:  # it reached the device: without it the weights come out otherwise
        plain = make_backend("c", model, config(optimizer))
        train(plain, xs, ys)
        assert arm.weights_sha256() != plain.weights_sha256()


def odd_length_model():
    """Dot products of every length mod 4, on unsigned (conv, dense after ReLU) and signed (conv and dense
    after BN) activations: conv windows k*k*ic = 27, 45 and 63 with 5, 7 and 6 output channels (the
    four-channel pass and single ones), dense inputs 5*5*... (odd)."""
    from edgetrain.model.description import Shape
    from edgetrain.model.presets import _Builder
    from edgetrain.reference.fixed import FMT_INPUT

    b = _Builder("odd", Shape(9, 9, 3, FMT_INPUT), 5)
    b.conv("conv1", 5)
    b.conv("conv2", 7)
    b.batchnorm("bn")
    b.conv("conv3", 6)
    b.batchnorm("bn2")
    b.flatten()
    b.dense("fc1", 13)
    b.dense("fc2", 10, relu=False)
    return b.head()


def disassembly(elf, function):
    from firmware_sim.firmware import tool

    out = subprocess.run([tool("objdump"), "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    start = out.index(f"<{function}>:")
    return out[start:out.find("\n\n", start)]


@needs_unicorn
@pytest.mark.parametrize("optimizer", [OPT_SGD, OPT_LRT], ids=["sgd", "lrt"])
def test_dsp_dot_product_on_m4_matches_the_host(fw_dir, optimizer):
    """The M4 build's MAC loops run the SMLAD path (layers.c, __ARM_FEATURE_DSP) and give the host's bytes,
    for lengths of every residue mod 4 and both activation signednesses."""
    from firmware_sim.arm import ArmBackend

    model = odd_length_model()
    cfg = config(optimizer)
    xs, ys = samples(model, 6)
    arm = ArmBackend(model, cfg, cpu="cortex-m4", build_dir=fw_dir)
    code = disassembly(arm.fw.elf, "et_dot")
    assert "smlad" in code and "sxtb16" in code and "uxtb16" in code
    c = make_backend("c", model, cfg)
    assert train(arm, xs, ys) == train(c, xs, ys)
    assert arm.weights_sha256() == c.weights_sha256()
    assert [arm.predict(x) for x in xs] == [c.predict(x) for x in xs]


def wide_model():
    """The backward kernels' other paths: conv2's weight rows of 3*3*19 = 171 bytes (the wide weight
    gradient, above the 128-byte window) and input rows of 7*19 = 133 values (the blocked input gradient),
    on unsigned activations; conv3 the same on signed (BN) ones; a dense layer on 3*3*6 = 54 signed inputs."""
    from edgetrain.model.description import Shape
    from edgetrain.model.presets import _Builder
    from edgetrain.reference.fixed import FMT_INPUT

    b = _Builder("wide", Shape(9, 9, 3, FMT_INPUT), 7)
    b.conv("conv1", 19)
    b.conv("conv2", 19)
    b.batchnorm("bn")
    b.conv("conv3", 6)
    b.batchnorm("bn2")
    b.flatten()
    b.dense("fc1", 10, relu=False)
    return b.head()


@needs_unicorn
@pytest.mark.parametrize("which", ["odd", "wide"])
def test_dsp_backward_kernels_on_m4_match_the_host(fw_dir, which):
    """The M4 build's backward loops (layers.c: et_axpy, et_axpy2 under __ARM_FEATURE_DSP) multiply
    SXTB16/UXTB16 pairs by packed int16 gradients with SMLAxy, and SGD training on it (the conv weight
    gradient every sample, the input gradients of conv and dense layers, windowed and wide, row-wise and
    blocked, every run length mod 4, unsigned and signed activations) gives the host's bytes."""
    from firmware_sim.arm import ArmBackend
    from firmware_sim.firmware import tool

    model = odd_length_model() if which == "odd" else wide_model()
    cfg = config(OPT_SGD)
    xs, ys = samples(model, 4)
    arm = ArmBackend(model, cfg, cpu="cortex-m4", build_dir=fw_dir)
    out = subprocess.run([tool("objdump"), "-d", str(arm.fw.elf)], capture_output=True, text=True, check=True).stdout
    # the kernels and whichever of their loops gcc kept out of line
    names = ("et_conv2d_weight_grad", "et_conv2d_backward_input_n", "et_dense_backward_input_n", "et_axpy", "et_axpy2",
             "et_grad_rows", "et_conv2d_weight_grad_windows", "et_conv2d_weight_grad_wide")
    kernels = "".join(out[out.index(f"<{f}>:"):out.find("\n\n", out.index(f"<{f}>:"))] for f in names if f"<{f}>:" in out)
    for insn in ("smlabb", "smlatb", "smlatt", "sxtb16", "uxtb16"):  # gcc writes SMLABT a, b as SMLATB b, a
        assert insn in kernels, insn
    c = make_backend("c", model, cfg)
    assert train(arm, xs, ys) == train(c, xs, ys)
    assert arm.weights_sha256() == c.weights_sha256()
    assert np.array_equal(arm.cell_writes, c.cell_writes)
    assert [arm.predict(x) for x in xs] == [c.predict(x) for x in xs]


@needs_unicorn
def test_nvm_programs_go_through_the_region_accounting(fw_dir):
    """Same device operations and bytes as the C backend over an emulated region of the same map."""
    from firmware_sim.arm import ArmBackend
    from firmware_sim.memory_map import MemoryMap

    model = preset("mlp", 2)
    cfg = config(OPT_SGD)
    xs, ys = samples(model, 5)
    mmap = MemoryMap.preset("rram-mcu")
    arm = ArmBackend(model, cfg, region=mmap.make_nvm(), build_dir=fw_dir)
    host = CBackend(model, cfg, region=mmap.make_nvm())
    train(arm, xs, ys)
    train(host, xs, ys)
    a, h = arm.region.totals(), host.cm.region.totals()
    for key in ("program_calls", "bytes_programmed", "device_ops"):
        assert a[key] == h[key] > 0, key
    assert arm.region.energy_j > 0
    assert arm.nvm_stats()["commits"] == host.nvm_stats()["commits"]
    assert int(arm.region.writes.max()) >= 1


@needs_unicorn
@pytest.mark.parametrize("where", [0.0, 0.5, 1.0], ids=["first", "middle", "last"])
@pytest.mark.parametrize("optimizer, k", [(OPT_SGD, 3), (OPT_LRT, 2)], ids=["sgd", "lrt-flush"])
def test_power_loss_inside_a_step_recovers_from_nvm(fw_dir, where, optimizer, k):
    """Cut power at a device operation of step k+1 (the first, one in the middle, the last; SGD's update,
    or an LRT flush); after a reboot of the firmware (new core, SRAM lost) every tensor is the one of k
    or of k+1 steps, and training goes on."""
    from firmware_sim.arm import ArmBackend

    model = preset("mlp", 4)
    cfg = config(optimizer)  # lrt: B = 3, so step k + 1 = 3 is a flush
    xs, ys = samples(model, 4)
    dry = ArmBackend(model, cfg, build_dir=fw_dir)
    for x, y in zip(xs[:k], ys[:k]):
        dry.step(x, y)
    ops = dry.region.totals()["device_ops"]
    dry.step(xs[k], ys[k])
    ops = dry.region.totals()["device_ops"] - ops
    assert ops > 2
    cut = 1 + round(where * (ops - 1))
    before, after = make_backend("c", model, cfg), make_backend("c", model, cfg)
    for x, y in zip(xs[:k], ys[:k]):
        before.step(x, y)
        after.step(x, y)
    after.step(xs[k], ys[k])
    arm = ArmBackend(model, cfg, build_dir=fw_dir)
    for x, y in zip(xs[:k], ys[:k]):
        arm.step(x, y)
    assert np.array_equal(arm.image(), before.image())
    arm.region.arm_power_loss(cut)
    with pytest.raises(NvmIOError):
        arm.step(xs[k], ys[k])
    assert arm.region.totals()["power_losses"] == 1
    arm.region.reboot()
    arm.boot()  # the firmware starts again over the NVM alone
    got, old, new = arm.image(), before.image(), after.image()
    for tensor, off, size in tensor_spans(model, arm.offsets):
        part = got[off:off + size]
        assert np.array_equal(part, old[off:off + size]) or np.array_equal(part, new[off:off + size]), tensor
    assert not np.array_equal(old, new)
    arm.step(xs[0], ys[0])  # training goes on after the reboot


@needs_unicorn
def test_instruction_counts_per_phase(fw_dir):
    from firmware_sim.arm import ArmBackend

    model = preset("mlp", 0)
    xs, ys = samples(model, 3)
    arm = ArmBackend(model, config(OPT_LRT), build_dir=fw_dir, count=True)
    start = arm.instruction_counts()
    train(arm, xs, ys)
    counts = arm.instruction_counts()
    for phase in ("forward", "backward", "accumulate", "update"):
        assert counts[phase] > start[phase], phase
    with pytest.raises(ArgumentError, match="count=True"):
        ArmBackend(model, config(OPT_SGD), build_dir=fw_dir).instruction_counts()


@needs_unicorn
def test_instruction_profile_sums_to_the_phase_counts(fw_dir):
    """The per-function profile splits each phase's count among the firmware's functions: the parts add
    up to the phase, and the accumulator's own functions carry the accumulate phase."""
    from firmware_sim.arm import ArmBackend

    model = preset("mlp", 0)
    xs, ys = samples(model, 3)
    arm = ArmBackend(model, config(OPT_LRT), build_dir=fw_dir, profile=True)
    train(arm, xs, ys)
    counts, prof = arm.instruction_counts(), arm.instruction_profile()
    for phase, total in counts.items():
        assert sum(prof[phase].values()) == total, phase
    acc = prof["accumulate"]
    assert sum(n for f, n in acc.items() if f.startswith(("lrt_", "et_lrt_"))) > 0.5 * counts["accumulate"]
    assert "lrt_mgs_pass_cols" in acc and "et_dense_forward_n" in prof["forward"]
    with pytest.raises(ArgumentError, match="profile=True"):
        ArmBackend(model, config(OPT_SGD), build_dir=fw_dir, count=True).instruction_profile()


@needs_unicorn
def test_firmware_reports_a_too_small_arena(fw_dir):
    from edgetrain.errors import NoMemoryError
    from firmware_sim.arm import ArmBackend
    from firmware_sim.memory_map import MemoryMap

    tiny = MemoryMap.from_dict({"name": "tiny", "region": [
        {"name": "rram", "kind": "nvm", "technology": "rram", "base": 0x08000000, "size": "512 KiB"},
        {"name": "sram", "kind": "sram", "base": 0x20000000, "size": "16 KiB"}]})
    with pytest.raises(NoMemoryError, match="arena"):
        ArmBackend(preset("mcu-cnn", 0), config(OPT_LRT), memory_map=tiny, build_dir=fw_dir)


def test_linker_script_follows_the_memory_map():
    from firmware_sim.firmware import linker_script
    from firmware_sim.memory_map import MemoryMap

    for name in ("rram-mcu", "flash-mcu"):
        mmap = MemoryMap.preset(name)
        text = linker_script(mmap)
        assert f"NVM (r)   : ORIGIN = {mmap.nvm.base:#010x}, LENGTH = {mmap.nvm.size:#x}" in text
        assert f"SRAM (rwx): ORIGIN = {mmap.sram.base:#010x}, LENGTH = {mmap.sram.size:#x}" in text
    clash = MemoryMap.from_dict({"name": "clash", "region": [
        {"name": "rram", "kind": "nvm", "technology": "rram", "base": 0x0, "size": "512 KiB"},
        {"name": "sram", "kind": "sram", "base": 0x20000000, "size": "128 KiB"}]})
    with pytest.raises(ArgumentError, match="overlaps the firmware's code flash"):
        linker_script(clash)


@pytest.mark.parametrize("cpu", CPUS)
def test_firmware_command_builds_an_elf(tmp_path, cpu):
    proc = subprocess.run([sys.executable, "-m", "edgetrain", "firmware", "--cpu", cpu, "-o", str(tmp_path), "--json"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["cpu"] == cpu and report["flash"] == report["text"] + report["data"] > 10_000
    elf = tmp_path / f"edgetrain-{cpu}-emu.elf"
    assert elf.read_bytes()[:4] == b"\x7fELF"
    nm = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    assert "et_train_step" in nm and "et_port_wait" in nm
    assert not [line for line in nm.splitlines() if " __aeabi_f" in line or " __aeabi_d" in line]


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None,
                    reason="qemu-system-arm not installed (apt-get install --no-install-recommends qemu-system-arm)")
@pytest.mark.parametrize("optimizer", [OPT_SGD, OPT_LRT], ids=["sgd", "lrt"])
def test_qemu_mps2_an386_is_a_second_oracle(tmp_path, optimizer):
    from firmware_sim.qemu import train_dump

    model = preset("mlp", 5)
    cfg = config(optimizer)
    xs, ys = samples(model, 12, seed=9)
    dump = train_dump(model, cfg, xs, ys, tmp_path)
    host = make_backend("c", model, cfg)
    for x, y in zip(xs, ys):
        host.step(x, y)
    assert hashlib.sha256(dump).hexdigest() == host.weights_sha256()
    assert host.weights_sha256() != make_backend("c", model, cfg).weights_sha256()


@needs_unicorn
def test_run_command_backend_arm(mnist_dir, tmp_path):
    """edgetrain run --backend arm --cpu ... reports what --backend c and numpy report."""
    from edgetrain.cli import main

    reports = {}
    for backend in ("arm", "c", "numpy"):
        out = tmp_path / f"{backend}.json"
        extra = ["--cpu", "cortex-m33"] if backend == "arm" else []
        assert main(["run", "--model", "mlp", "--optimizer", "lrt", "--batch-dense", "5", "--samples", "40",
                     "--backend", backend, "--data-dir", str(mnist_dir), "--no-progress", "--json", str(out),
                     *extra]) == 0
        reports[backend] = json.loads(out.read_text())
    assert reports["arm"]["backend"] == "arm"
    assert main(["run", "--model", "mlp", "--samples", "3", "--cpu", "cortex-m4", "--data-dir", str(mnist_dir)]) == 2
    for key in ("weights_sha256", "accuracy", "total_cell_writes", "max_writes_per_cell", "write_density"):
        assert reports["arm"][key] == reports["c"][key] == reports["numpy"][key], key


@needs_unicorn
def test_flash_map_needs_its_staging_buffer_and_then_matches(fw_dir):
    """On flash (erase unit 2 KiB) the commit stages whole pages; the same firmware reads the geometry from
    the NVM controller and stays bit-exact."""
    from firmware_sim.arm import ArmBackend
    from firmware_sim.commit import commit_stage_bytes

    model = preset("mlp", 6)
    with pytest.raises(ArgumentError, match="commit_stage_bytes=2048"):
        ArmBackend(model, config(OPT_SGD), memory_map="flash-mcu", build_dir=fw_dir)
    arm = ArmBackend(model, replace(config(OPT_SGD), commit_stage_bytes=2048), memory_map="flash-mcu", build_dir=fw_dir)
    assert commit_stage_bytes(arm.region) == 2048
    xs, ys = samples(model, 4)
    host = make_backend("c", model, config(OPT_SGD))
    assert train(arm, xs, ys) == train(host, xs, ys)
    assert arm.weights_sha256() == host.weights_sha256()
    assert arm.region.totals()["erase_calls"] > 0
