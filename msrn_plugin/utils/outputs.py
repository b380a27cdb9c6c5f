"""Where a run may write: no planned output may replace one of the run's own inputs (real paths, links resolved)."""
import os
from typing import Dict, Iterable, List, Tuple, Type, Union

from msrn_plugin.utils.misc import PathType


def _real(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def _inode(path: str) -> Union[Tuple[int, int], None]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def find_overwrites(outputs: Iterable[PathType], inputs: Iterable[PathType]) -> List[Tuple[str, str]]:
    """The planned outputs that would replace an input.

    An output replaces an input when both resolve to the same real path (``os.path.realpath``: symbolic links to the
    file or to any folder above it, ``..``, relative paths) or are the same file (hard links, ``os.path.samefile``).

    Args:
        outputs (Iterable[str | PathLike]): Files the run will write (they may not exist yet).
        inputs (Iterable[str | PathLike]): Files the run reads.

    Returns:
        list[tuple[str, str]]: ``(output, input)`` for each clash, in the order of ``outputs``.
    """
    by_path: Dict[str, str] = {}
    by_inode: Dict[Tuple[int, int], str] = {}
    for path in map(os.fspath, inputs):
        by_path.setdefault(_real(path), path)
        inode = _inode(path)
        if inode is not None:
            by_inode.setdefault(inode, path)
    clashes = []
    for out in map(os.fspath, outputs):
        real = _real(out)
        hit = by_path.get(real)
        if hit is None:
            hit = by_inode.get(_inode(real))
        if hit is not None:
            clashes.append((out, hit))
    return clashes


def check_no_overwrite(outputs: Iterable[PathType],
                       inputs: Iterable[PathType],
                       error: Type[Exception] = ValueError,
                       hint: str = 'Choose another output folder.') -> None:
    """Refuse, before anything is written, a run that would replace one of its own inputs.

    Args:
        outputs (Iterable[str | PathLike]): Files the run will write.
        inputs (Iterable[str | PathLike]): Files the run reads.
        error (type): The exception to raise (each caller's own input error). Default: ValueError.
        hint (str): The fix, appended to the message. Default: 'Choose another output folder.'.

    Raises:
        error: Naming the first output and the input it would replace (and how many more clash).
    """
    clashes = find_overwrites(outputs, inputs)
    if not clashes:
        return
    out, inp = clashes[0]
    same = 'the same path' if os.path.abspath(out) == os.path.abspath(inp) else 'the same file, through a link'
    more = f' ({len(clashes) - 1} more output(s) would too)' if len(clashes) > 1 else ''
    raise error(f'{out}: the output would overwrite the input {inp} ({same}){more}; nothing was written. {hint}')


def check_folder_not_replacing(folder: PathType,
                               inputs: Iterable[PathType],
                               error: Type[Exception] = ValueError,
                               hint: str = 'Choose an output folder outside the input.') -> None:
    """Refuse to replace ``folder`` as a whole when an input lies in it (or is it), links resolved.

    Args:
        folder (str | PathLike): A folder the run deletes or replaces.
        inputs (Iterable[str | PathLike]): Files or folders the run reads.
        error (type): The exception to raise. Default: ValueError.
        hint (str): The fix, appended to the message. Default: 'Choose an output folder outside the input.'.

    Raises:
        error: Naming the folder and the input inside it.
    """
    root = _real(os.fspath(folder))
    for path in map(os.fspath, inputs):
        real = _real(path)
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            raise error(f'{folder}: the output folder is replaced as a whole, and it holds the input {path}; nothing '
                        f'was written. {hint}')


__all__ = ['check_folder_not_replacing', 'check_no_overwrite', 'find_overwrites']
