#!/usr/bin/env python3
"""ARM portability gate for the C core (csrc/src).

For each CPU (cortex-m0plus, cortex-m4, cortex-m33 by default) every core C file
is compiled with arm-none-eabi-gcc at -Os, -std=c99 -Wall -Wextra -Werror
-ffreestanding, soft-float ABI (so any floating-point use shows up as a helper
call). The gate fails when

  * a file does not compile cleanly,
  * an object needs a floating-point helper (__aeabi_f*, __aeabi_d*, *2f, *2d),
    or malloc/free/printf and friends,
  * an object needs any external symbol outside the core itself, <string.h>'s
    mem* functions and libgcc's integer helpers (an allowlist),
  * the objects do not link together with newlib-nano and libgcc.

It prints text/data/bss per CPU (and per file with --verbose); --json writes
the same figures. Exit status 0 = pass, 1 = gate failed, 2 = no compiler.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CPUS = ("cortex-m0plus", "cortex-m4", "cortex-m33")
CFLAGS = ["-mthumb", "-mfloat-abi=soft", "-Os", "-std=c99", "-Wall", "-Wextra", "-Werror", "-Wshadow",
          "-ffreestanding", "-ffunction-sections", "-fdata-sections"]

FORBIDDEN = [
    re.compile(r"^__aeabi_[fd]"),  # soft-float arithmetic, compares, conversions
    re.compile(r"^__aeabi_.*2[fd]$"),  # integer -> float/double conversions
    re.compile(r"2[fd]$"),  # libgcc conversion helpers (__floatsisf ... named *2f/*2d)
    re.compile(r"^(__)?(add|sub|mul|div|neg|cmp|fix|float|extend|trunc)[sdt]f[23]"),  # libgcc soft-float
    re.compile(r"^(malloc|calloc|realloc|free|printf|fprintf|sprintf|snprintf|puts|putchar|abort|exit)$"),
]
ALLOWED_EXTERNAL = re.compile(
    r"^(memcpy|memset|memmove|memcmp"
    r"|__aeabi_(memcpy|memcpy4|memcpy8|memset|memset4|memset8|memclr|memclr4|memclr8|memmove|memmove4|memmove8)"
    r"|__aeabi_(u?idiv|u?idivmod|u?ldivmod|lmul|llsl|llsr|lasr|u?lcmp)"
    r"|__(clz|ctz|popcount)[sd]i2|__gnu_thumb1_case_\w+)$"
)


def find_tool(name: str) -> str | None:
    return shutil.which(name)


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True)


def symbols(nm: str, obj: Path) -> tuple[set[str], set[str]]:
    """(defined globals, undefined) symbols of one object."""
    out = run([nm, "-g", str(obj)]).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            undefined.add(parts[1])
        elif len(parts) == 3:
            defined.add(parts[2])
    return defined, undefined


def size_of(size_tool: str, obj: Path) -> dict[str, int]:
    lines = run([size_tool, str(obj)]).stdout.splitlines()
    text, data, bss = (int(v) for v in lines[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def gate_cpu(cpu: str, sources: list[Path], include: Path, tools: dict[str, str], work: Path) -> dict:
    result = {"cpu": cpu, "ok": True, "errors": [], "files": {}, "total": {"text": 0, "data": 0, "bss": 0}}
    objects = []
    for src in sources:
        obj = work / f"{cpu}-{src.stem}.o"
        proc = run([tools["gcc"], f"-mcpu={cpu}", *CFLAGS, f"-I{include}", "-c", str(src), "-o", str(obj)])
        if proc.returncode != 0:
            result["ok"] = False
            result["errors"].append(f"{src.name}: does not compile for {cpu}:\n{proc.stderr.strip()}")
            continue
        objects.append((src, obj))
    defined_anywhere: set[str] = set()
    needs: dict[str, set[str]] = {}
    for src, obj in objects:
        defined, undefined = symbols(tools["nm"], obj)
        defined_anywhere |= defined
        needs[src.name] = undefined
        sizes = size_of(tools["size"], obj)
        result["files"][src.name] = sizes
        for key in sizes:
            result["total"][key] += sizes[key]
    for name, undefined in needs.items():
        for sym in sorted(undefined):
            if any(p.search(sym) for p in FORBIDDEN):
                result["ok"] = False
                result["errors"].append(f"{name}: forbidden symbol {sym} on {cpu} (float, allocation or stdio in the core)")
            elif sym not in defined_anywhere and not ALLOWED_EXTERNAL.match(sym):
                result["ok"] = False
                result["errors"].append(f"{name}: needs {sym} on {cpu}, which is neither in the core nor allowed (mem*, libgcc integer helpers)")
    if objects and result["ok"]:
        elf = work / f"{cpu}.elf"
        proc = run([tools["gcc"], f"-mcpu={cpu}", "-mthumb", "-mfloat-abi=soft", "-nostartfiles",
                    "-specs=nano.specs", "-specs=nosys.specs", "-Wl,-e,0", "-Wl,--unresolved-symbols=report-all",
                    "-o", str(elf), *(str(o) for _, o in objects)])
        if proc.returncode != 0:
            result["ok"] = False
            result["errors"].append(f"objects do not link for {cpu}:\n{proc.stderr.strip()}")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", action="append", choices=CPUS, help="CPU to check (repeatable; default: all)")
    ap.add_argument("--src", type=Path, default=ROOT / "csrc" / "src", help="folder of core C files")
    ap.add_argument("--include", type=Path, default=ROOT / "csrc" / "include", help="public header folder")
    ap.add_argument("--json", type=Path, help="write the results as JSON to this file")
    ap.add_argument("--verbose", action="store_true", help="print sizes per file")
    args = ap.parse_args(argv)

    tools = {k: find_tool(f"arm-none-eabi-{k}") for k in ("gcc", "nm", "size")}
    missing = [f"arm-none-eabi-{k}" for k, v in tools.items() if v is None]
    if missing:
        print(f"arm gate: {', '.join(missing)} not found; install gcc-arm-none-eabi and "
              "libnewlib-arm-none-eabi (apt-get install -y --no-install-recommends ...)", file=sys.stderr)
        return 2
    sources = sorted(args.src.glob("*.c"))
    if not sources:
        print(f"arm gate: no C files in {args.src}", file=sys.stderr)
        return 1

    results = []
    with tempfile.TemporaryDirectory(prefix="et-arm-gate-") as tmp:
        for cpu in args.cpu or CPUS:
            results.append(gate_cpu(cpu, sources, args.include, tools, Path(tmp)))

    print(f"{'cpu':<15}{'text':>8}{'data':>8}{'bss':>8}  result")
    for r in results:
        t = r["total"]
        print(f"{r['cpu']:<15}{t['text']:>8}{t['data']:>8}{t['bss']:>8}  {'ok' if r['ok'] else 'FAIL'}")
        if args.verbose:
            for name, s in r["files"].items():
                print(f"  {name:<13}{s['text']:>8}{s['data']:>8}{s['bss']:>8}")
    for r in results:
        for err in r["errors"]:
            print(f"error: {err}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"files": [s.name for s in sources], "cpus": results}, indent=2) + "\n")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
