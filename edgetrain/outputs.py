"""Writing the files the tool produces: output paths checked before any work, writes atomic.

``check_output_file`` and ``check_output_dir`` run before a command computes anything, so a bad
path costs nothing; ``write_atomic`` writes a temporary file in the target's folder and renames it
over the target (``os.replace``), so a reader sees the old file or the whole new one, never a mix,
and two writers of one path leave one complete file.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import ArgumentError


def _folder_writable(folder: Path, what: str) -> None:
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".edgetrain-probe-")
    except OSError as exc:
        raise ArgumentError(f"{what}: cannot create files in folder '{folder}' ({exc.strerror}); "
                            "give a path in a writable folder") from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(path, what: str = "output file") -> Path:
    """``path`` as a Path if a regular file can be written there; ArgumentError saying why not otherwise.

    An existing target must be a regular file (a directory, /dev/full or a FIFO are refused: the
    write replaces the target); its folder must exist and take new files."""
    text = os.fspath(path)
    if not text or not text.strip():
        raise ArgumentError(f"{what}: the path is empty; give a file name such as report.json")
    p = Path(text)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise ArgumentError(f"{what} '{p}': {exc.strerror}; give another path") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise ArgumentError(f"{what} '{p}' is a folder; give a file path inside it, e.g. '{p / 'report.json'}'")
    if mode is not None and not stat.S_ISREG(mode):
        raise ArgumentError(f"{what} '{p}' is not a regular file (a device or pipe); give a file path")
    folder = p.parent
    if not folder.is_dir():
        raise ArgumentError(f"{what} '{p}': folder '{folder}' does not exist; create it first (mkdir -p '{folder}')")
    _folder_writable(folder, f"{what} '{p}'")
    return p


def check_output_dir(path, what: str = "output folder") -> Path:
    """``path`` as a Path if it is (or can be made as) a writable folder; ArgumentError otherwise."""
    text = os.fspath(path)
    if not text or not text.strip():
        raise ArgumentError(f"{what}: the path is empty; give a folder name such as plots")
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise ArgumentError(f"{what} '{p}' exists and is not a folder; give a folder path (it is created if missing)")
    existing = p
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ArgumentError(f"{what} '{p}': '{existing}' is not a folder; give another path")
    _folder_writable(existing, f"{what} '{p}'")
    return p


def write_atomic(path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    On failure the target keeps its previous contents, the temporary file is removed, and
    ArgumentError says what went wrong."""
    p = Path(path)
    payload = data.encode() if isinstance(data, str) else bytes(data)
    try:
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    except OSError as exc:
        raise ArgumentError(f"cannot write '{p}': {exc.strerror}; give a path in a writable folder") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ArgumentError(f"cannot write '{p}': {exc.strerror}; free space or give another path") from None
    return p


def write_report(path, text: str) -> Path:
    """``write_atomic`` for a report already computed: if the write fails, the report goes to stdout
    before the error, so the work is never lost."""
    try:
        return write_atomic(path, text)
    except ArgumentError as exc:
        print(text, flush=True)
        raise ArgumentError(f"{exc} (the report was printed to stdout instead)") from None


def write_figure(fig, path, dpi: int = 100) -> Path:
    """A matplotlib figure as a PNG at ``path``: rendered to memory, then written with ``write_atomic``
    (a reader never sees half a PNG); the figure is closed."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return write_atomic(path, buf.getvalue())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
