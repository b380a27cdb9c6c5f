"""Integrity checks of BasicSR LMDBs at dataset start-up, and the one ``meta_info.txt`` parser (docs/data.md)."""
import cv2
import lmdb
import numpy as np
import os
import re
import struct
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

from msrn_plugin.utils.misc import format_examples

Shape = Tuple[int, int, int]
_META_LINE = re.compile(r'^(?P<key>.+)\.[A-Za-z]\w* \((?P<h>\d+),(?P<w>\d+),(?P<c>\d+)\) \d+$')
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}
DEFAULT_TOOL = 'scripts/prepare_div2k.py'


class LmdbIntegrityError(ValueError):
    """An LMDB database is missing, incomplete or inconsistent; the message names it and the fix."""


def _recreate(tool: Optional[str]) -> str:
    return f'delete it and re-create it with {tool or DEFAULT_TOOL}'


def read_meta_info(lmdb_path: str, tool: Optional[str] = None) -> 'OrderedDict[str, Shape]':
    """Parse ``meta_info.txt`` of a BasicSR LMDB: the one parser of the package (BasicSR's own cuts keys at the
    first dot).

    Args:
        lmdb_path (str): The ``.lmdb`` folder.
        tool (str | None): What re-creates the database, for the advice in errors. Default: None
            (scripts/prepare_div2k.py).

    Returns:
        OrderedDict[str, tuple[int, int, int]]: key -> (h, w, c), in file order.

    Raises:
        LmdbIntegrityError: If the file is missing, a line is malformed, or a key repeats.
    """
    meta_path = os.path.join(lmdb_path, 'meta_info.txt')
    if not os.path.isfile(meta_path):
        raise LmdbIntegrityError(f'{lmdb_path}: no meta_info.txt, so this is not a complete BasicSR LMDB (missing '
                                 f'folder, wrong path, or an interrupted writer); check the path or '
                                 f'{_recreate(tool)}.')
    meta = OrderedDict()
    with open(meta_path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            m = _META_LINE.match(line)
            if m is None:
                raise LmdbIntegrityError(f'{meta_path}:{lineno}: malformed line {line!r} (expected '
                                         f"'KEY.png (H,W,C) LEVEL'); {_recreate(tool)}.")
            key = m.group('key')
            if key in meta:
                raise LmdbIntegrityError(f'{meta_path}:{lineno}: key {key!r} is listed twice; {_recreate(tool)}.')
            meta[key] = (int(m.group('h')), int(m.group('w')), int(m.group('c')))
    if not meta:
        raise LmdbIntegrityError(f'{meta_path}: lists no image; {_recreate(tool)}.')
    return meta


def lmdb_keys(lmdb_path: str, tool: Optional[str] = None) -> List[str]:
    """The keys of a BasicSR LMDB in ``meta_info.txt`` order (BasicSR's ``paths_from_lmdb``, dotted keys kept).

    Args:
        lmdb_path (str): The ``.lmdb`` folder.
        tool (str | None): What re-creates the database, for the advice in errors. Default: None.

    Returns:
        list[str]: The keys.

    Raises:
        LmdbIntegrityError: As :func:`read_meta_info`.
    """
    return list(read_meta_info(lmdb_path, tool))


def is_raw_lmdb(lmdb_path: str) -> bool:
    """Whether ``meta_info.txt`` lists raw values (``KEY.raw (H,W,C) 0``: HxWxC uint8 bytes, from
    ``scripts/prepare_div2k.py --format raw``) rather than encoded images."""
    try:
        with open(os.path.join(lmdb_path, 'meta_info.txt'), encoding='utf-8') as f:
            line = next((line for line in f if line.strip()), '')
    except OSError:
        return False
    return '.raw (' in line


def encoded_shape(data: bytes) -> Shape:
    """(h, w, c) of an encoded image: read from the PNG header when it is a PNG, decoded otherwise."""
    if data[:8] == b'\x89PNG\r\n\x1a\n' and data[12:16] == b'IHDR':
        w, h = struct.unpack('>II', data[16:24])
        return h, w, _PNG_CHANNELS.get(data[25], 3)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError('not a decodable image')
    return img.shape[0], img.shape[1], 1 if img.ndim == 2 else img.shape[2]


def check_lmdb(lmdb_path: str, check_shapes: bool = False, tool: Optional[str] = None) -> 'OrderedDict[str, Shape]':
    """Check that an LMDB holds exactly the keys its ``meta_info.txt`` lists.

    Args:
        lmdb_path (str): The ``.lmdb`` folder.
        check_shapes (bool): Also read every value and compare its image size with ``meta_info.txt`` (reads the
            whole database; PNG sizes come from the header). Default: False.
        tool (str | None): What re-creates the database, for the advice in errors (a haze set is not made by
            scripts/prepare_div2k.py). Default: None (scripts/prepare_div2k.py).

    Returns:
        OrderedDict[str, tuple[int, int, int]]: The parsed ``meta_info.txt``.

    Raises:
        LmdbIntegrityError: Naming the database, what disagrees, and the fix.
    """
    if not os.path.isdir(lmdb_path):
        raise LmdbIntegrityError(f'{lmdb_path}: LMDB folder not found; check dataroot_gt/dataroot_lq, or create it '
                                 f'with {tool or DEFAULT_TOOL}.')
    if not os.path.isfile(os.path.join(lmdb_path, 'data.mdb')):
        raise LmdbIntegrityError(f'{lmdb_path}: no data.mdb (not an LMDB, or written incompletely); {_recreate(tool)}.')
    meta = read_meta_info(lmdb_path, tool)
    try:
        env = lmdb.open(lmdb_path, readonly=True, lock=False, readahead=False, meminit=False)
    except lmdb.Error as err:
        if 'already open' in str(err):  # py-lmdb opens an environment once per process
            raise LmdbIntegrityError(f'{lmdb_path}: already opened for reading in this process; check it before '
                                     'reading from it.') from None
        raise LmdbIntegrityError(f'{lmdb_path}: cannot open the database ({err}); {_recreate(tool)}.') from None
    try:
        with env.begin(write=False) as txn:
            if check_shapes:
                db_keys, bad = set(), []
                raw = is_raw_lmdb(lmdb_path)
                for key_b, value in txn.cursor():
                    key = key_b.decode('ascii', 'replace')
                    db_keys.add(key)
                    if key in meta and raw:  # raw values carry no header: their length must match
                        h, w, c = meta[key]
                        if len(value) != h * w * c:
                            bad.append(f'{key} (meta_info {meta[key]} = {h * w * c} bytes, stored {len(value)})')
                    elif key in meta:
                        try:
                            shape = encoded_shape(value)
                        except ValueError:
                            bad.append(f'{key} (undecodable)')
                            continue
                        if shape != meta[key]:
                            bad.append(f'{key} (meta_info {meta[key]}, stored {shape})')
                if bad:
                    raise LmdbIntegrityError(f'{lmdb_path}: {len(bad)} image(s) differ from meta_info.txt: '
                                             f'{format_examples(bad, 5)}; {_recreate(tool)}.')
            else:
                db_keys = {k.decode('ascii', 'replace') for k in txn.cursor().iternext(keys=True, values=False)}
    finally:
        env.close()
    missing = sorted(set(meta) - db_keys)
    extra = sorted(db_keys - set(meta))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f'{len(missing)} key(s) listed in meta_info.txt are not in the database: '
                         f'{format_examples(missing, 5)}')
        if extra:
            parts.append(f'{len(extra)} key(s) in the database are not listed in meta_info.txt: '
                         f'{format_examples(extra, 5)}')
        raise LmdbIntegrityError(f'{lmdb_path}: written incompletely or modified: {"; ".join(parts)}; '
                                 f'{_recreate(tool)}.')
    return meta


def check_paired_lmdb(lq_path: str, gt_path: str, scale: int) -> Dict[str, Tuple[Shape, Shape]]:
    """Check an LQ/GT pair of LMDBs: each complete, identical key sets, and LQ size x scale == GT size for every key.

    Args:
        lq_path (str): LQ (LR) ``.lmdb`` folder.
        gt_path (str): GT (HR) ``.lmdb`` folder.
        scale (int): Upscaling factor.

    Returns:
        dict[str, tuple]: key -> (lq shape, gt shape).

    Raises:
        LmdbIntegrityError: Naming both databases, the offending keys, and the fix.
    """
    gt_meta = check_lmdb(gt_path)
    lq_meta = check_lmdb(lq_path)
    only_gt = sorted(set(gt_meta) - set(lq_meta))
    only_lq = sorted(set(lq_meta) - set(gt_meta))
    if only_gt or only_lq:
        raise LmdbIntegrityError(f'{lq_path} and {gt_path} hold different keys ({len(only_lq)} only in the LQ one: '
                                 f'{format_examples(only_lq, 5) or "none"}; {len(only_gt)} only in the GT one: '
                                 f'{format_examples(only_gt, 5) or "none"}); prepare both from the same images and '
                                 'settings with scripts/prepare_div2k.py.')
    bad = [f'{k} (LQ {lq_meta[k][0]}x{lq_meta[k][1]}, GT {gt_meta[k][0]}x{gt_meta[k][1]})' for k in gt_meta
           if (lq_meta[k][0] * scale, lq_meta[k][1] * scale) != gt_meta[k][:2]]
    if bad:
        raise LmdbIntegrityError(f'{lq_path}: {len(bad)} LQ image(s) are not GT size / {scale}: '
                                 f'{format_examples(bad, 5)}; check the scale (is this the x{scale} database?) or '
                                 're-create the pair with scripts/prepare_div2k.py.')
    return {k: (lq_meta[k], gt_meta[k]) for k in gt_meta}
