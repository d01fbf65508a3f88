"""Only what pyproject.toml cannot say: the cffi extension, its build flavours, shipping the C headers."""
import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HEADERS = Path(__file__).resolve().parent / "csrc" / "include" / "edgetrain"


class build_py_with_headers(build_py):
    """Copy the public C headers into the package (edgetrain/include/edgetrain)."""

    def run(self):
        super().run()
        dest = Path(self.build_lib) / "edgetrain" / "include" / "edgetrain"
        dest.mkdir(parents=True, exist_ok=True)
        for header in sorted(HEADERS.glob("*.h")):
            shutil.copy2(header, dest / header.name)


class build_ext_per_flavour(build_ext):
    """Keep objects of sanitized/debug/release builds apart: setuptools reuses
    up-to-date objects and does not notice changed compiler flags."""

    def finalize_options(self):
        super().finalize_options()
        if os.environ.get("EDGETRAIN_SANITIZE") == "1":
            flavour = "sanitize"
        elif os.environ.get("EDGETRAIN_DEBUG") == "1":
            flavour = "debug"
        else:
            flavour = "release"
        self.build_temp = os.path.join(self.build_temp, flavour)
        # The linked extension lands at the same build/lib path for every flavour, and
        # setuptools skips the link when it is newer than the objects: a sanitized
        # install could then ship the release library (or the other way round).
        # The core is a few small files: always rebuild.
        self.force = True


setup(
    cffi_modules=["edgetrain/_build.py:ffibuilder"],
    cmdclass={"build_py": build_py_with_headers, "build_ext": build_ext_per_flavour},
)
