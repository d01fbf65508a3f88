"""cffi builder for ``edgetrain._core`` (out-of-line API mode).

The declarations handed to cffi are read from the public C headers themselves,
so the headers stay the one description of the C API. Headers are written in
the subset cffi parses: preprocessor lines other than integer ``#define``
constants are dropped here, and so are comments.

Environment switches (read at build time):
  EDGETRAIN_SANITIZE=1  build the core with -fsanitize=address,undefined, halting at the first
                        finding (-fno-sanitize-recover=all) and without CPython's -fwrapv
                        (-fno-wrapv comes after it), so that UBSan sees signed overflow
  EDGETRAIN_DEBUG=1     build with -O0 -g (default: -O3)
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"
INCLUDE = CSRC / "include"


def public_headers() -> list[str]:
    """The headers the umbrella edgetrain.h includes, in its order (dependency order)."""
    umbrella = (INCLUDE / "edgetrain" / "edgetrain.h").read_text()
    return re.findall(r'^#include "(et_\w+\.h)"', umbrella, flags=re.M)

HOST = CSRC / "host"


def host_headers() -> list[Path]:
    """Host-only headers (csrc/host/*.h, e.g. the emulator's accounting HAL): bound
    into the extension, never part of the public include list firmware sees."""
    return sorted(HOST.glob("*.h")) if HOST.is_dir() else []


# The core (portable, integer only) plus host-only helpers compiled into the extension.
SOURCE_DIRS = [CSRC / "src", HOST]

WARNINGS = ["-Wall", "-Wextra", "-Werror", "-Wshadow"]

# The sanitizer build. CPython's own CFLAGS (which setuptools puts first) carry -fwrapv, which
# defines signed overflow and hides it from UBSan; -fno-wrapv, given after them, restores C's rules.
SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
SANITIZE_CFLAGS = [*SANITIZE_FLAGS, "-fno-wrapv", "-g"]


def cdef_text(header: Path) -> str:
    text = header.read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    kept = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            # Integer constants become `#define NAME ...`: in API mode the C
            # compiler supplies the value. Guards, includes and conditionals go.
            m = re.match(r"#\s*define\s+(\w+)\s+\(?\s*-?\s*(0x[0-9A-Fa-f]+|\d+)[uUlL]*\s*\)?\s*$", stripped)
            if m:
                kept.append(f"#define {m.group(1)} ...")
            continue
        kept.append(line)
    text = "\n".join(kept)
    # Array lengths given by a macro are completed by the compiler too.
    return re.sub(r"\[\s*[A-Z_][A-Z0-9_]*\s*\]", "[...]", text)


def compile_args() -> tuple[list[str], list[str]]:
    cflags = ["-std=c99", *WARNINGS]
    ldflags: list[str] = []
    if os.environ.get("EDGETRAIN_DEBUG") == "1":
        cflags += ["-O0", "-g"]
    else:
        # -O3: gcc's -O2 vectorises only loops whose trip count is a known multiple of
        # the vector width, none of the core's MAC loops (docs/performance.md).
        cflags += ["-O3"]
    if os.environ.get("EDGETRAIN_SANITIZE") == "1":
        cflags += SANITIZE_CFLAGS
        ldflags += SANITIZE_FLAGS
    return cflags, ldflags


def sources() -> list[str]:
    found = []
    for d in SOURCE_DIRS:
        if d.is_dir():
            found += sorted(str(p.relative_to(ROOT)) for p in d.glob("*.c"))
    return found


ffibuilder = FFI()
ffibuilder.cdef(
    "\n".join([cdef_text(INCLUDE / "edgetrain" / h) for h in public_headers()] + [cdef_text(h) for h in host_headers()])
)
_cflags, _ldflags = compile_args()
ffibuilder.set_source(
    "edgetrain._core",
    '#include "edgetrain/edgetrain.h"\n' + "".join(f'#include "{h.name}"\n' for h in host_headers()),
    sources=sources(),
    include_dirs=[str(INCLUDE.relative_to(ROOT)), str(HOST.relative_to(ROOT))],
    extra_compile_args=_cflags,
    extra_link_args=_ldflags,
)

if __name__ == "__main__":
    os.chdir(ROOT)
    ffibuilder.compile(verbose=True)
