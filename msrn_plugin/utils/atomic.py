"""Crash-safe file writing (temporary file beside the target, fsync, rename), behind every file the plugin writes.

A kill at any moment leaves the previous file or the complete new one; files get the mode a plain ``open()`` gives.
"""
import os
import stat
import tempfile
from contextlib import contextmanager
from typing import IO, Iterator, Optional

from msrn_plugin.utils.misc import PathType


def fsync_path(path: str) -> None:
    """Flush a file or a folder (its entries) to disk; a no-op where the platform cannot open it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def current_umask() -> int:
    """The process umask, read without changing it where the platform allows (``/proc/self/status``)."""
    try:
        with open('/proc/self/status', encoding='ascii') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # pragma: no cover - no procfs: the only portable way to read it is to set it
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


def _open_mode(path: str) -> int:
    """The permission bits ``open(path, 'w')`` would leave: an existing file's own, else ``0o666 & ~umask``."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


@contextmanager
def atomic_path(path: PathType) -> Iterator[str]:
    """Yield a temporary path beside ``path``; when the block ends without error, it replaces ``path``.

    For writers that want a file name (``torch.onnx.export``, ...). The folder must exist. The final file gets the
    permission bits a plain ``open(path, 'w')`` would give (``mkstemp``'s owner-only 0600 is not kept).

    Args:
        path (str | PathLike): Final file name.

    Yields:
        str: The temporary file name to write.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}.', suffix='.tmp', dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _open_mode(path))
        fsync_path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    fsync_path(folder)


@contextmanager
def atomic_write(path: PathType,
                 mode: str = 'wb',
                 encoding: Optional[str] = None,
                 newline: Optional[str] = None) -> Iterator[IO]:
    """``open(path, mode)`` that never leaves a partial file under ``path`` (see the module docstring).

    Args:
        path (str | PathLike): Final file name; its folder must exist.
        mode (str): 'wb' or 'w'. Default: 'wb'.
        encoding (str | None): Text encoding for mode 'w'. Default: None.
        newline (str | None): Passed to ``open`` for mode 'w'. Default: None.

    Yields:
        IO: The open temporary file.
    """
    if mode not in ('w', 'wb'):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}.")
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding, newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
