"""examples/train_one_sample.c, the firmware author's entry: it builds with the host compiler and
runs on the shipped model; csrc/CMakeLists.txt builds the core and the example on the host and with
cmake/arm-none-eabi.cmake."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from conftest import ROOT

EXAMPLE = ROOT / "examples" / "train_one_sample.c"
MODEL = ROOT / "edgetrain" / "model" / "pretrained" / "mcu-cnn.etm"
CORE = sorted(str(p) for p in (ROOT / "csrc" / "src").glob("*.c"))
CC = shutil.which("cc") or shutil.which("gcc")
LINE = re.compile(r"predicted (\d+) before the step, (\d+) after it, (\d+) after a reboot")


def check_output(binary, *args):
    proc = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    m = LINE.search(proc.stdout)
    assert m, proc.stdout
    before, after, rebooted = map(int, m.groups())
    assert 0 <= before < 10 and after == rebooted  # the reboot recovers what the step and checkpoint wrote
    return proc


@pytest.mark.skipif(CC is None, reason="no host C compiler (cc/gcc)")
def test_example_builds_and_runs(tmp_path):
    binary = tmp_path / "train_one_sample"
    subprocess.run([CC, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{ROOT / 'csrc' / 'include'}",
                    str(EXAMPLE), *CORE, "-o", str(binary)], check=True)
    check_output(binary, MODEL)
    bad = tmp_path / "bad.etm"
    bad.write_bytes(MODEL.read_bytes()[:100])
    proc = subprocess.run([str(binary), str(bad)], capture_output=True, text=True)
    assert proc.returncode == 1 and "ET_ERR_CORRUPT" in proc.stderr
    proc = subprocess.run([str(binary)], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage" in proc.stderr


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")
def test_cmake_host_build(tmp_path):
    subprocess.run(["cmake", "-S", str(ROOT / "csrc"), "-B", str(tmp_path), "-DCMAKE_BUILD_TYPE=Release"], check=True,
                   capture_output=True)
    subprocess.run(["cmake", "--build", str(tmp_path)], check=True, capture_output=True)
    assert (tmp_path / "libedgetrain.a").is_file()
    check_output(tmp_path / "train_one_sample", MODEL)


@pytest.mark.arm
@pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="cmake or arm-none-eabi-gcc not installed")
@pytest.mark.parametrize("cpu", ["cortex-m0plus", "cortex-m33"])
def test_cmake_arm_toolchain_build(tmp_path, cpu):
    subprocess.run(["cmake", "-S", str(ROOT / "csrc"), "-B", str(tmp_path),
                    f"-DCMAKE_TOOLCHAIN_FILE={ROOT / 'cmake' / 'arm-none-eabi.cmake'}", f"-DEDGETRAIN_CPU={cpu}",
                    "-DCMAKE_BUILD_TYPE=MinSizeRel"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(tmp_path)], check=True, capture_output=True)
    header = (tmp_path / "train_one_sample").read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and header[18] == 40  # e_machine EM_ARM
    nm = subprocess.run(["arm-none-eabi-nm", str(tmp_path / "libedgetrain.a")], capture_output=True, text=True,
                        check=True).stdout
    assert "T et_train_step" in nm and "__aeabi_f" not in nm and "__aeabi_d" not in nm


def test_cmake_add_subdirectory(tmp_path):
    """A firmware project pulls the core in with add_subdirectory and links it."""
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed")
    (tmp_path / "app.c").write_text('#include "edgetrain/edgetrain.h"\n'
                                    "int main(void) { et_train_config_t c; return et_train_config_default(&c); }\n")
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(app C)\n"
        f"add_subdirectory({ROOT / 'csrc'} edgetrain)\nadd_executable(app app.c)\n"
        "target_link_libraries(app PRIVATE edgetrain)\n")
    subprocess.run(["cmake", "-S", str(tmp_path), "-B", str(tmp_path / "b")], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(tmp_path / "b")], check=True, capture_output=True)
    assert subprocess.run([str(tmp_path / "b" / "app")]).returncode == 0
    assert not (tmp_path / "b" / "edgetrain" / "train_one_sample").exists()  # examples only when built alone
