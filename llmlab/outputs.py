"""Output paths: check before any work that an output can be written (one line if not), and give
what llmlab writes the modes a plain mkdir/open would give under the user's umask.

A foundation module: it imports nothing from llmlab but errors, so every layer can use it.
"""

from __future__ import annotations

import os
from pathlib import Path

from llmlab.errors import OutputError


def check_writable(path: str | os.PathLike, *, kind: str = "dir", flag: str | None = None,
                   replaced: bool = False) -> Path:
    """Raise a one-line OutputError unless `path` can be written as a directory (kind="dir") or a
    file (kind="file"). Nothing is created: a command calls this before its work, so a path it cannot
    write fails in a second, not after the work.

    replaced: the output is built beside `path` and renamed over it, so the parent must be writable
    even when `path` exists."""
    if kind not in ("dir", "file"):
        raise ValueError(f"kind must be 'dir' or 'file', got {kind!r}")
    path = Path(path).expanduser()
    name = f"{flag} {path}" if flag else str(path)
    if path.exists():
        _check_kind(path, kind, name)
        if not _writable(path):
            raise OutputError(f"cannot write {name}: permission denied (or a read-only file system)")
        if not replaced:
            return path
    verb = "replace" if path.exists() else "create"
    folder = _nearest_existing(path.parent)
    if not folder.is_dir():
        raise OutputError(f"cannot {verb} {name}: {folder} is a file, not a directory")
    if not _writable(folder):
        raise OutputError(f"cannot {verb} {name}: {folder} is not writable (permission denied or read-only)")
    return path


def _check_kind(path: Path, kind: str, name: str) -> None:
    if kind == "dir" and not path.is_dir():
        raise OutputError(f"{name} is a file; a directory is expected there")
    if kind == "file" and path.is_dir():
        raise OutputError(f"{name} is a directory; give a file path")


def _nearest_existing(path: Path) -> Path:
    """`path` or its closest ancestor that exists (as a file or a directory)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _writable(path: Path) -> bool:
    mode = os.W_OK | os.X_OK if path.is_dir() else os.W_OK
    return os.access(path, mode)


# ---------------------------------------------------------------------------- modes
def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows (os.umask can only set it,
    which would briefly give files made by other threads the wrong mode)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(root: str | os.PathLike) -> None:
    """Give `root` and everything below it the modes a plain mkdir/open would have given.

    tempfile.mkdtemp makes 0700 directories, and some writers (safetensors) 0600 files, so an output
    built in a temporary directory would otherwise be private whatever the user's umask says."""
    mask = current_umask()
    root = Path(root)
    for p in [root, *root.rglob("*")]:
        if p.is_symlink():
            continue
        executable = p.is_dir() or p.stat().st_mode & 0o111
        os.chmod(p, (0o777 if executable else 0o666) & ~mask)
