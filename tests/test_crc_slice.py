"""The CRC built both ways (ET_CRC_SLICE=8, the default, and 4: et_crc.h): a small C program compiled
with the host compiler from csrc/src/crc.c prints et_crc32 and et_crc32_xor over sparse differences
(the commit's zero-word step included) and et_crc32_combine; each figure must equal zlib's."""
from __future__ import annotations

import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
CC = shutil.which("cc") or shutil.which("gcc")

DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "edgetrain/et_crc.h"
int main(int argc, char **argv)
{
    static uint8_t a[4096], b[4096];
    FILE *f = fopen(argv[1], "rb");
    size_t n = fread(a, 1, sizeof a, f);
    size_t m = fread(b, 1, sizeof b, f);
    uint32_t off, len;
    (void)argc;
    fclose(f);
    if (n != sizeof a || m != sizeof b) return 2;
    printf("%d\n", ET_CRC_SLICE);
    for (off = 0; off < 9; off++) {
        for (len = 0; len + off <= sizeof a; len = len < 40 ? len + 1 : len * 3 + 1) {
            uint32_t c1 = 0, c2 = 0, c3 = 0;
            (void)et_crc32(&c1, a + off, len);
            (void)et_crc32_xor(&c2, a + off, b + off, len);
            c3 = c1;
            (void)et_crc32_combine(&c3, c2, len);
            printf("%u %u %u %u %u\n", off, len, c1, c2, c3);
        }
    }
    return 0;
}
"""


@pytest.mark.skipif(CC is None, reason="no host C compiler (cc or gcc) on PATH")
@pytest.mark.parametrize("slice_,flags", [(4, []), (8, []), (8, ["-DET_CLZ_PORTABLE"])],
                         ids=["slice4", "slice8", "slice8-portable-low-bit"])
def test_crc_built_with_either_slice_equals_zlib(tmp_path, slice_, flags):
    """-DET_CLZ_PORTABLE: the combine's lowest-set-bit loop that Cortex-M0+ builds use."""
    rng = np.random.default_rng(slice_)
    a = rng.integers(0, 256, 4096, dtype=np.uint8)
    b = a.copy()
    changed = rng.random(4096) < 0.02  # sparse: most eight-byte words of a XOR b are zero
    b[changed] ^= rng.integers(1, 256, int(changed.sum()), dtype=np.uint8)
    b[1000:1013] ^= 0x5A  # and a run that crosses words
    data = tmp_path / "data.bin"
    data.write_bytes(a.tobytes() + b.tobytes())
    src = tmp_path / "drive.c"
    src.write_text(DRIVER)
    exe = tmp_path / "drive"
    subprocess.run([CC, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-DET_CRC_SLICE={slice_}", *flags,
                    f"-I{ROOT / 'csrc' / 'include'}", str(src), str(ROOT / "csrc" / "src" / "crc.c"), "-o", str(exe)],
                   check=True)
    out = subprocess.run([str(exe), str(data)], check=True, capture_output=True, text=True).stdout.split("\n")
    assert int(out[0]) == slice_
    x = a ^ b
    rows = [line.split() for line in out[1:] if line]
    assert len(rows) > 300
    for off, length, c1, c2, c3 in (map(int, r) for r in rows):
        seg = slice(off, off + length)
        assert c1 == zlib.crc32(a[seg].tobytes()), (slice_, off, length)
        assert c2 == zlib.crc32(x[seg].tobytes()), (slice_, off, length)
        assert c3 == zlib.crc32(a[seg].tobytes() + x[seg].tobytes()), (slice_, off, length)


@pytest.mark.skipif(CC is None, reason="no host C compiler (cc or gcc) on PATH")
def test_other_slice_values_do_not_compile(tmp_path):
    res = subprocess.run([CC, "-std=c99", "-DET_CRC_SLICE=16", f"-I{ROOT / 'csrc' / 'include'}", "-c",
                          str(ROOT / "csrc" / "src" / "crc.c"), "-o", str(tmp_path / "crc.o")],
                         capture_output=True, text=True, check=False)
    assert res.returncode != 0 and "ET_CRC_SLICE must be 4 or 8" in res.stderr
