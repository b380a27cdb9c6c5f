"""Atomic BasicSR LMDB writing: ``NAME.partial.lmdb``, checked, then renamed to ``NAME.lmdb`` (see docs/data.md)."""
import errno
import json
import lmdb
import logging
import os
import shutil
from basicsr.utils.lmdb_util import LmdbMaker
from typing import Callable, Iterable, Optional, Tuple

from msrn_plugin.data.lmdb_check import check_lmdb
from msrn_plugin.prep import PrepError
from msrn_plugin.utils.atomic import fsync_path

logger = logging.getLogger(__name__)
Item = Tuple[str, bytes, Tuple[int, int, int]]
INFO_FILE = 'prep_info.json'


def partial_path(lmdb_path: str) -> str:
    """Where :func:`write_lmdb_atomic` writes before the rename: ``X.lmdb`` -> ``X.partial.lmdb``."""
    return lmdb_path[:-len('.lmdb')] + '.partial.lmdb'


def _free_bytes(folder: str) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def _is_disk_full(err: BaseException, folder: str) -> bool:
    """Whether a write error means "no space": LMDB reports ENOSPC at commit as a bare I/O error, so an LMDB error
    while less than 16 MiB are free counts too (checked before the partial database is removed)."""
    if isinstance(err, (lmdb.DiskError, lmdb.MapFullError)):
        return True
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(err, lmdb.Error) and _free_bytes(folder) < 2**24


def _quietly(*actions: Callable[[], object]) -> None:
    """Run clean-up actions, each even if an earlier one fails (e.g. flushing a file on a full disk)."""
    for action in actions:
        try:
            action()
        except Exception:  # noqa: BLE001  (clean-up after the error that is being raised)
            pass


def disk_full_error(lmdb_path: str, err: BaseException) -> PrepError:
    """The error raised when a database does not fit: names the folder, the free space and the fix."""
    folder = os.path.dirname(os.path.abspath(lmdb_path))
    free = _free_bytes(folder)
    return PrepError(f'{lmdb_path}: disk full ({err}); {free / 2**20:.1f} MiB free in {folder}. Free some space or '
                     'pass another --output; the unfinished database was removed, finished ones are kept.')


def _maker_for(extension: str) -> type:
    """``LmdbMaker`` whose ``meta_info.txt`` lines name ``extension`` instead of png."""

    class _Maker(LmdbMaker):

        def __init__(self, lmdb_path: str, map_size: int, compress_level: int) -> None:
            # whole uncompressed images are large: commit every 16 (a transaction keeps its pages in memory)
            super().__init__(lmdb_path, map_size=map_size, batch=16, compress_level=compress_level)

        def put(self, img_byte: bytes, key: str, img_shape: Tuple[int, int, int]) -> None:
            self.counter += 1
            self.txn.put(key.encode('ascii'), img_byte)
            h, w, c = img_shape
            self.txt_file.write(f'{key}.{extension} ({h},{w},{c}) {self.compress_level}\n')
            if self.counter % self.batch == 0:
                self.txn.commit()
                self.txn = self.env.begin(write=True)

    return _Maker


def write_lmdb_atomic(lmdb_path: str,
                      items: Iterable[Item],
                      map_size: int,
                      info: dict,
                      verify: Optional[Callable[[str], None]] = None,
                      compress_level: int = 1,
                      extension: str = 'png') -> int:
    """Write ``items`` to the LMDB ``lmdb_path`` atomically.

    Args:
        lmdb_path (str): Final ``.lmdb`` folder; must not exist.
        items (Iterable[tuple[str, bytes, tuple]]): (key, encoded PNG, (h, w, c)) in the order to write.
        map_size (int): LMDB map size in bytes (an upper bound of the data size; the file grows as needed).
        info (dict): JSON-serialisable settings, saved as ``prep_info.json`` in the database folder.
        verify (Callable[[str], None] | None): Extra check run on the finished temporary database (raises to refuse
            it). Default: None.
        compress_level (int): PNG compression level recorded in ``meta_info.txt``. Default: 1.
        extension (str): Value format named in ``meta_info.txt`` (``KEY.EXT (H,W,C) LEVEL``): 'png', or 'raw' for
            uncompressed HxWxC uint8 bytes (``prepare_div2k.py --format raw``). Default: 'png'.

    Returns:
        int: Number of images written.

    Raises:
        PrepError: Disk full (the temporary folder is removed), or whatever ``items``/``verify`` raise.
    """
    if os.path.exists(lmdb_path):
        raise PrepError(f'{lmdb_path}: already exists; delete it first.')
    tmp = partial_path(lmdb_path)
    if os.path.exists(tmp):
        logger.warning('Removing %s, left by an interrupted run.', tmp)
        shutil.rmtree(tmp)
    os.makedirs(os.path.dirname(os.path.abspath(lmdb_path)), exist_ok=True)
    maker = None
    count = 0
    try:
        maker = (LmdbMaker if extension == 'png' else _maker_for(extension))(tmp, map_size=map_size,
                                                                            compress_level=compress_level)
        for key, data, shape in items:
            maker.put(data, key, shape)
            count += 1
        maker.close()
        maker = None
        if count == 0:
            raise PrepError(f'{lmdb_path}: no image to write.')
        check_lmdb(tmp, check_shapes=True)
        if verify is not None:
            verify(tmp)
        with open(os.path.join(tmp, INFO_FILE), 'w', encoding='utf-8') as f:
            json.dump(dict(info, num_images=count), f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        fsync_path(os.path.join(tmp, 'meta_info.txt'))
        os.rename(tmp, lmdb_path)
        fsync_path(os.path.dirname(os.path.abspath(lmdb_path)))
    except BaseException as err:
        full = _is_disk_full(err, os.path.dirname(os.path.abspath(lmdb_path)))
        if maker is not None:
            _quietly(maker.txn.abort, maker.env.close, maker.txt_file.close)
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise disk_full_error(lmdb_path, err) from err
        raise
    return count


def read_prep_info(lmdb_path: str) -> Optional[dict]:
    """The ``prep_info.json`` of a database written by :func:`write_lmdb_atomic`, or None if it has none."""
    path = os.path.join(lmdb_path, INFO_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
