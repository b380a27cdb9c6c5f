"""Crash-safe file writing: the one mechanism behind every file the plugin writes under a final name.

A temporary file ``.<name>.<random>.tmp`` is written in the destination folder, flushed and fsync-ed, then renamed over
the final name, and the folder is fsync-ed. A kill at any moment leaves either the previous file or the complete new
one under the final name; an error removes the temporary file.
"""
import os
import tempfile
from contextlib import contextmanager
from os import PathLike
from typing import IO, Iterator, Optional, Union

PathType = Union[str, PathLike]


def _fsync(path: str, flags: int = os.O_RDONLY) -> None:
    try:
        fd = os.open(path, flags)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: PathType) -> Iterator[str]:
    """Yield a temporary path beside ``path``; when the block ends without error, it replaces ``path``.

    For writers that want a file name (``torch.onnx.export``, ...). The folder must exist.

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
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _fsync(folder)


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
