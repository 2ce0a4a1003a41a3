"""Atomic file writes: nothing the user trained is ever half-written."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_file(path, mode: str = "wb"):
    """Yield a handle on a temporary file in ``path``'s folder; on success it is flushed,
    fsynced and renamed over ``path`` (then the folder is fsynced), so a crash at any
    point leaves the previous ``path`` intact. On failure the temporary file is removed.

    The file ends with the permissions a plain ``open(path, "w")`` would give it: those
    of the file it replaces, or ``0o666`` minus the umask for a new file (the temporary
    file is created private, 0600, and widened only once complete).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    permissions = _permissions_for(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, permissions)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _permissions_for(path: Path) -> int:
    """The permission bits ``open(path, "w")`` would leave ``path`` with."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)  # open() keeps an existing file's mode
    except OSError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows
    (``/proc/self/status`` on Linux); elsewhere set and immediately restored."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(folder: Path) -> None:
    """Make the rename itself durable (where the platform allows opening folders)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_json_atomic(path, data) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    with atomic_file(path, "w") as handle:
        json.dump(data, handle, indent=2)
