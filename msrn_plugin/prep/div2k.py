"""DIV2K as downloaded -> BasicSR LMDBs of overlapping sub-images, one HR database for every scale.

Input and output layout, sub-image grid and atomic writing: docs/data.md.
"""
import cv2
import logging
import multiprocessing
import multiprocessing.pool
import numpy as np
import os
import re
import shutil
import time
from contextlib import contextmanager
from tqdm import tqdm
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from msrn_plugin.data.lmdb_check import LmdbIntegrityError, check_lmdb, check_paired_lmdb
from msrn_plugin.prep import PrepError
from msrn_plugin.prep.bicubic import bicubic_downscale, mod_crop
from msrn_plugin.prep.lmdb_writer import Item, read_prep_info, write_lmdb_atomic
from msrn_plugin.prep.subimages import check_grid, scales_lcm, subimage_positions
from msrn_plugin.utils.image_io import ImageReadError, ImageTooLargeError, image_size, is_image_file, read_image
from msrn_plugin.utils.misc import format_examples

logger = logging.getLogger(__name__)

SPLITS = ('train', 'valid')
COMPRESS_LEVEL = 1
#: GT patch size of ``options/train_MSRN_x{s}.yml`` (64x64 LR patches, as in the paper).
TRAIN_GT_SIZE = {2: 128, 3: 192, 4: 256, 8: 512}
_KEY_SAFE = re.compile(r'^[A-Za-z0-9_-]+$')
# Settings that decide which sub-images a database holds; a rerun must match them to reuse a database.
_GRID_SETTINGS = ('crop_size', 'step', 'thresh_size', 'grid_multiple', 'split')


def hr_lmdb_name(split: str = 'train') -> str:
    """``DIV2K_{split}_HR_sub.lmdb``."""
    return f'DIV2K_{split}_HR_sub.lmdb'


def lr_lmdb_name(scale: int, split: str = 'train') -> str:
    """``DIV2K_{split}_LR_bicubic_X{scale}_sub.lmdb``."""
    return f'DIV2K_{split}_LR_bicubic_X{scale}_sub.lmdb'


def lr_folder_candidates(root: str, scale: int, split: str = 'train') -> List[str]:
    """LR folders of the official download for a scale, in order of preference."""
    folders = [os.path.join(root, f'DIV2K_{split}_LR_bicubic', f'X{scale}')]
    if scale == 8:
        folders.append(os.path.join(root, f'DIV2K_{split}_LR_x8'))
    return folders


def _size(path: str) -> Tuple[int, int]:
    """(height, width) of a DIV2K image, from its header (:func:`msrn_plugin.utils.image_io.image_size`).

    Raises:
        PrepError: If the file cannot be opened as an image, or declares more pixels than the limit.
    """
    try:
        return image_size(path)
    except ImageTooLargeError as err:
        raise PrepError(str(err)) from None
    except ImageReadError as err:
        raise PrepError(f'{path}: {err.reason or err}; re-download or remove it.') from None


def read_bgr(path: str) -> np.ndarray:
    """Read an 8-bit image as HxWx3 BGR (gray is replicated, alpha dropped).

    Raises:
        msrn_plugin.utils.image_io.ImageReadError: Missing, empty or undecodable file.
        PrepError: A 16-bit image.
    """
    img = read_image(path)
    if img.dtype != np.uint8:
        raise PrepError(f'{path}: {img.dtype} image; DIV2K preparation expects 8-bit images, convert it first.')
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


class _Image:
    """One HR image of the tree and what each database takes from it."""

    def __init__(self, stem: str, hr_path: str, size: Tuple[int, int]):
        self.stem = stem
        self.hr_path = hr_path
        self.size = size
        self.lr_paths: Dict[int, str] = {}
        self.positions: List[Tuple[int, int]] = []

    def keys(self) -> List[str]:
        return [f'{self.stem}_s{i:03d}' for i in range(1, len(self.positions) + 1)]


def _scan_hr(root: str, split: str) -> List[_Image]:
    hr_dir = os.path.join(root, f'DIV2K_{split}_HR')
    if not os.path.isdir(hr_dir):
        raise PrepError(f'{hr_dir}: HR folder not found. --root must be the folder that contains DIV2K_{split}_HR/ '
                        f'(with 0001.png, ...), as extracted from DIV2K_{split}_HR.zip.')
    images = []
    for name in sorted(os.listdir(hr_dir)):
        path = os.path.join(hr_dir, name)
        if not (os.path.isfile(path) and is_image_file(name)):
            continue
        stem = os.path.splitext(name)[0]
        if not _KEY_SAFE.match(stem):
            raise PrepError(f'{path}: the name {stem!r} cannot be an LMDB key (use letters, digits, _ and -); '
                            'rename the file.')
        if images and images[-1].stem == stem:
            raise PrepError(f'{path}: two HR images named {stem!r} (different extensions); keep one.')
        images.append(_Image(stem, path, _size(path)))
    if not images:
        raise PrepError(f'{hr_dir}: no HR image found; expected 0001.png, 0002.png, ...')
    return images


def _scan_lr(root: str, split: str, scale: int, images: List[_Image]) -> Optional[str]:
    """Attach the official LR files of one scale to ``images``; None (generate from HR) when there is no folder."""
    lr_dir = next((d for d in lr_folder_candidates(root, scale, split) if os.path.isdir(d)), None)
    if lr_dir is None:
        return None
    by_stem = {img.stem: img for img in images}
    pattern = re.compile(rf'^(?P<stem>.+)x{scale}\.\w+$')
    for name in sorted(os.listdir(lr_dir)):
        path = os.path.join(lr_dir, name)
        if not (os.path.isfile(path) and is_image_file(name)):
            continue
        m = pattern.match(name)
        img = by_stem.get(m.group('stem')) if m else None
        if img is None:
            raise PrepError(f'{path}: LR file without its HR partner (expected DIV2K_{split}_HR/'
                            f'{m.group("stem") if m else os.path.splitext(name)[0]}.png, named like 0001x{scale}.png '
                            f'for 0001.png); restore the HR image or remove this file.')
        h, w = img.size
        lh, lw = _size(path)
        if (lh, lw) != (h // scale, w // scale):
            raise PrepError(f'{path}: LR size {lw}x{lh}, expected {w // scale}x{h // scale} (its HR {img.hr_path} '
                            f'is {w}x{h}, divided by {scale}); is it in the right X{scale} folder? Re-download it, '
                            f'or delete {lr_dir} to generate x{scale} LR from HR.')
        img.lr_paths[scale] = path
    missing = [img for img in images if scale not in img.lr_paths]
    if missing:
        img = missing[0]
        raise PrepError(f'{img.hr_path} has no x{scale} LR partner {os.path.join(lr_dir, f"{img.stem}x{scale}.png")} '
                        f'({len(missing)} HR image(s) lack one); complete {lr_dir} from the official download, or '
                        f'delete that folder to generate x{scale} LR from HR.')
    return lr_dir


def _subimage_task(task: tuple) -> List[Item]:
    """Worker: the encoded sub-images of one image for one database."""
    stem, path, scale, generate, positions, crop_size = task
    img = read_bgr(path)
    if generate:
        img = bicubic_downscale(mod_crop(img, scale), scale)
    size = crop_size // scale
    items = []
    for i, (y, x) in enumerate(positions, 1):
        patch = img[y // scale:y // scale + size, x // scale:x // scale + size]
        if patch.shape[:2] != (size, size):
            raise PrepError(f'{path}: too small for sub-image {i} at ({y}, {x}); re-download it.')
        ok, buf = cv2.imencode('.png', np.ascontiguousarray(patch), [cv2.IMWRITE_PNG_COMPRESSION, COMPRESS_LEVEL])
        if not ok:
            raise PrepError(f'{path}: PNG encoding of sub-image {i} failed.')
        items.append((f'{stem}_s{i:03d}', buf.tobytes(), (size, size, 3)))
    return items


def _worker_init() -> None:
    import torch
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _existing(path: str, settings: dict, keys: List[str]) -> bool:
    """True if ``path`` is a finished database for these settings and keys; raise if it exists but is not."""
    if not os.path.exists(path):
        return False
    try:
        meta = check_lmdb(path)
    except LmdbIntegrityError as err:
        raise PrepError(f'{path} exists but is incomplete or damaged: {err}') from None
    info = read_prep_info(path)
    if info is None:
        raise PrepError(f'{path} exists but has no prep_info.json (written by another tool?), so it cannot be '
                        'matched to these settings; delete it to re-create it, or pass another --output.')
    diff = [f'{k}={info.get(k)!r} (asked {settings[k]!r})' for k in settings if info.get(k) != settings[k]]
    if diff:
        raise PrepError(f'{path} exists with other settings: {", ".join(diff)}; rerun with those settings, or delete '
                        'it (and the databases made with it) to re-create it.')
    if list(meta) != keys:
        raise PrepError(f'{path} exists but holds other sub-images ({len(meta)} keys, {len(keys)} expected; the HR '
                        'images changed?); delete it to re-create it.')
    return True


def _disk_bytes(path: str) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            st = os.stat(os.path.join(dirpath, name))
            total += min(st.st_size, st.st_blocks * 512)
    return total


@contextmanager
def _worker_pool(workers: int) -> Iterator[Optional[multiprocessing.pool.Pool]]:
    """A pool of ``workers`` processes (None for 1: work in this process), terminated on exit."""
    # 'spawn', not 'fork': a process forked after torch/OpenMP started its thread pool can hang in its first
    # parallel call (seen here in the test suite: set_num_threads never returned in the forked worker).
    pool = multiprocessing.get_context('spawn').Pool(workers, initializer=_worker_init) if workers > 1 else None
    try:
        yield pool
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _write_tasks(path: str, task: Callable[[tuple], List[Item]], tasks: List[tuple],
                 pool: Optional[multiprocessing.pool.Pool], progress: bool, **write_options) -> int:
    """Run ``task`` over ``tasks`` (in ``pool`` when given) with a progress bar over images, and write the items it
    returns to ``path`` with :func:`msrn_plugin.prep.lmdb_writer.write_lmdb_atomic` (``write_options``); the count."""
    results = pool.imap(task, tasks) if pool else map(task, tasks)
    bar = tqdm(results, total=len(tasks), unit='image', desc=os.path.basename(path), disable=not progress)

    def items() -> Iterator[Item]:
        for image_items in bar:
            yield from image_items

    try:
        return write_lmdb_atomic(path, items(), **write_options)
    finally:
        bar.close()


def prepare_div2k(root: str,
                  output: str,
                  scales: Sequence[int] = (2, 3, 4, 8),
                  workers: int = 1,
                  crop_size: int = 576,
                  step: int = 288,
                  thresh_size: int = 0,
                  split: str = 'train',
                  progress: bool = True,
                  gt_size: Optional[int] = None,
                  data_format: str = 'png') -> dict:
    """Turn a DIV2K tree into the sub-image LMDBs the training options read (or one raw LMDB of whole images).

    Every input is checked before anything is written (HR folder, LR partners and sizes, image headers, existing
    outputs, free disk space). Finished databases with the same settings are skipped.

    Args:
        root (str): Folder containing ``DIV2K_{split}_HR/`` and, optionally, the official LR folders.
        output (str): Folder for the ``.lmdb`` databases (created), e.g. ``datasets/DIV2K``.
        scales (Sequence[int]): Scales to prepare. Default: (2, 3, 4, 8).
        workers (int): Processes that read, resize and encode images (1: in this process). Default: 1.
        crop_size (int): Sub-image size in HR pixels; a multiple of every scale, at least the training GT patch
            (512 for x8). Default: 576.
        step (int): Sub-image grid step in HR pixels; a multiple of every scale. Default: 288.
        thresh_size (int): Add a last row/column flush with the border when more than this many pixels are left
            over. Default: 0.
        split (str): 'train' or 'valid'. Default: 'train'.
        progress (bool): Show progress bars. Default: True.
        gt_size (int | None): The training GT patch size the sub-images must hold; a warning is logged when
            ``crop_size`` is smaller. Default: None, the paper options' 64 x scale (``options/train_MSRN_x{s}.yml``).
        data_format (str): 'png' (BasicSR's sub-image LMDBs, above) or 'raw': :func:`prepare_div2k_raw` (whole
            uncompressed images; ``crop_size``/``step`` then only size the PNG estimate it reports). Default: 'png'.

    Returns:
        dict: ``num_images``, ``num_subimages``, ``small_images`` (stems smaller than ``crop_size``, not used) and
        ``databases``: {'hr': info, 2: info, ...} with ``path``, ``status`` ('written' or 'skipped'), ``source``
        ('hr', 'official' or 'generated'), ``seconds``, ``disk_bytes``, ``num_images``.

    Raises:
        PrepError: Bad input or output, naming the file and the fix (also for a full disk).
        msrn_plugin.utils.image_io.ImageReadError: An image whose header reads but whose data does not decode.
    """
    if data_format == 'raw':
        return prepare_div2k_raw(root, output, scales=scales, workers=workers, split=split, progress=progress,
                                 png_crop_size=crop_size, png_step=step)
    if data_format != 'png':
        raise PrepError(f"format must be 'png' or 'raw', got {data_format!r}.")
    if split not in SPLITS:
        raise PrepError(f"split must be 'train' or 'valid', got {split!r}.")
    scales = sorted(set(int(s) for s in scales))
    check_grid(crop_size, step, thresh_size, scales)
    if workers < 1:
        raise PrepError(f'workers must be >= 1, got {workers}.')
    multiple = scales_lcm(scales)
    for s in scales:
        if gt_size is not None and crop_size < gt_size:
            logger.warning('crop_size %d is smaller than the %dx%d GT patches asked for: use a larger crop_size.',
                           crop_size, gt_size, gt_size)
        elif gt_size is None and crop_size < TRAIN_GT_SIZE.get(s, 0):
            logger.warning('crop_size %d is smaller than the %dx%d GT patches of options/train_MSRN_x%d.yml: lower '
                           'gt_size there or use a larger crop_size.', crop_size, TRAIN_GT_SIZE[s], TRAIN_GT_SIZE[s], s)

    # 1. Scan and check every input before writing anything.
    images = _scan_hr(root, split)
    lr_dirs = {s: _scan_lr(root, split, s, images) for s in scales}
    small = []
    for img in images:
        h, w = img.size
        img.positions = subimage_positions(h - h % multiple, w - w % multiple, crop_size, step, thresh_size)
        if not img.positions:
            small.append(img.stem)
    if small:
        logger.warning('%d image(s) smaller than crop_size %d are not used: %s', len(small), crop_size,
                       format_examples(small, 10))
    used = [img for img in images if img.positions]
    if not used:
        raise PrepError(f'{os.path.join(root, f"DIV2K_{split}_HR")}: no image is at least {crop_size}x{crop_size} '
                        f'(after cropping to a multiple of {multiple}); use a smaller crop_size.')
    keys = [k for img in used for k in img.keys()]

    # 2. Decide what is left to do; existing outputs must be complete and match.
    grid = dict(crop_size=crop_size, step=step, thresh_size=thresh_size, grid_multiple=multiple, split=split)
    plan = [('hr', 1, os.path.join(output, hr_lmdb_name(split)), 'hr')]
    plan += [(s, s, os.path.join(output, lr_lmdb_name(s, split)), 'official' if lr_dirs[s] else 'generated')
             for s in scales]
    todo = [p for p in plan if not _existing(p[2], dict(grid, scale=p[1]), keys)]

    # 3. Free space: raw size of the sub-images times the PNG ratio of a sample.
    os.makedirs(output, exist_ok=True)
    if todo:
        sample = _subimage_task((used[0].stem, used[0].hr_path, 1, False, used[0].positions[:1], crop_size))[0]
        ratio = len(sample[1]) / (crop_size * crop_size * 3)
        raw = {name: len(keys) * (crop_size // s)**2 * 3 for name, s, _, _ in todo}
        needed = int(sum(raw.values()) * ratio) + 8192 * len(keys) * len(todo)
        free = shutil.disk_usage(output).free
        if free < needed:
            raise PrepError(f'{output}: not enough disk space: {free / 2**20:.1f} MiB free, about {needed / 2**20:.1f} '
                            f'MiB needed for {len(todo)} database(s); free some space or pass another --output.')

    result = {'num_images': len(images), 'num_subimages': len(keys), 'small_images': small, 'databases': {}}
    with _worker_pool(workers) as pool:
        for name, s, path, source in plan:
            entry = {'path': path, 'source': source}
            result['databases'][name] = entry
            if all(p[2] != path for p in todo):
                entry.update(status='skipped', seconds=0.0, disk_bytes=_disk_bytes(path), num_images=len(keys))
                logger.info('%s: complete, skipped.', path)
                continue
            tasks = [(img.stem, img.lr_paths[s] if source == 'official' else img.hr_path, s, source == 'generated',
                      img.positions, crop_size) for img in used]
            start = time.perf_counter()
            hr_path = result['databases']['hr']['path']
            verify = None if name == 'hr' else (lambda tmp, s=s, hr_path=hr_path: check_paired_lmdb(tmp, hr_path, s))
            info = dict(grid, scale=s, source=source, compress_level=COMPRESS_LEVEL)
            count = _write_tasks(path, _subimage_task, tasks, pool, progress,
                                 map_size=int(raw[name] * 1.1) + 8192 * len(keys) + 2**26, info=info, verify=verify,
                                 compress_level=COMPRESS_LEVEL)
            entry.update(status='written', seconds=time.perf_counter() - start, disk_bytes=_disk_bytes(path),
                         num_images=count)
            logger.info('%s: %d sub-images (from %s) in %.1f s, %.1f MiB.', path, count,
                        {'hr': 'HR', 'official': 'official LR', 'generated': 'HR, MATLAB bicubic'}[source],
                        entry['seconds'], entry['disk_bytes'] / 2**20)
    return result


# ---------------------------------------------------------------- --format raw: whole images, uncompressed


def raw_lmdb_name(split: str = 'train') -> str:
    """``DIV2K_{split}_raw.lmdb``: HR and the LR of every scale, whole and uncompressed (``--format raw``)."""
    return f'DIV2K_{split}_raw.lmdb'


def _raw_task(task: tuple) -> List[Item]:
    """Worker: HR (mod-cropped to ``multiple``) and each scale's LR of one image, as raw HxWx3 uint8 BGR bytes."""
    from msrn_plugin.data.raw_lmdb_dataset import raw_key
    stem, hr_path, lr_paths, scales, multiple = task
    hr = read_bgr(hr_path)
    h, w = hr.shape[0] - hr.shape[0] % multiple, hr.shape[1] - hr.shape[1] % multiple
    items = [(raw_key(stem, 1), np.ascontiguousarray(hr[:h, :w]).tobytes(), (h, w, 3))]
    for s in scales:
        lr = read_bgr(lr_paths[s]) if s in lr_paths else bicubic_downscale(mod_crop(hr, s), s)
        lr = lr[:h // s, :w // s]
        if lr.shape[:2] != (h // s, w // s):
            raise PrepError(f'{lr_paths.get(s, hr_path)}: x{s} LR is {lr.shape[1]}x{lr.shape[0]}, smaller than '
                            f'{w // s}x{h // s}; re-download it.')
        items.append((raw_key(stem, s), np.ascontiguousarray(lr).tobytes(), (h // s, w // s, 3)))
    return items


def _png_comparison(output: str, split: str, scales: Sequence[int], used: List[_Image], crop_size: int,
                    step: int) -> dict:
    """Disk use of the PNG sub-image LMDBs for the same images and scales: measured when they are in ``output``
    (with exactly these images), estimated otherwise (sub-image pixels x the PNG ratio of one sub-image)."""
    paths = [os.path.join(output, hr_lmdb_name(split))] + [os.path.join(output, lr_lmdb_name(s, split)) for s in scales]
    stems = {img.stem for img in used}
    if all(os.path.isdir(p) for p in paths):
        info = read_prep_info(paths[0]) or {}
        try:
            held = {key.rsplit('_s', 1)[0] for key in check_lmdb(paths[0])}
        except LmdbIntegrityError:
            held = set()
        if held == stems and info.get('grid_multiple') == scales_lcm(scales):
            return {'bytes': sum(_disk_bytes(p) for p in paths), 'measured': True, 'paths': paths,
                    'crop_size': info.get('crop_size'), 'step': info.get('step')}
    multiple = scales_lcm(scales)
    try:
        check_grid(crop_size, step, 0, scales)
    except PrepError:
        return {'bytes': None, 'measured': False, 'paths': paths, 'crop_size': crop_size, 'step': step}
    count, sample = 0, None
    for img in used:
        h, w = img.size
        positions = subimage_positions(h - h % multiple, w - w % multiple, crop_size, step)
        count += len(positions)
        if sample is None and positions:
            sample = _subimage_task((img.stem, img.hr_path, 1, False, positions[:1], crop_size))[0]
    if sample is None:
        return {'bytes': None, 'measured': False, 'paths': paths, 'crop_size': crop_size, 'step': step}
    ratio = len(sample[1]) / (crop_size * crop_size * 3)
    pixels = count * sum((crop_size // s)**2 for s in (1, *scales)) * 3
    return {'bytes': int(pixels * ratio), 'measured': False, 'paths': paths, 'crop_size': crop_size, 'step': step}


def prepare_div2k_raw(root: str,
                      output: str,
                      scales: Sequence[int] = (2, 3, 4, 8),
                      workers: int = 1,
                      split: str = 'train',
                      progress: bool = True,
                      png_crop_size: int = 576,
                      png_step: int = 288) -> dict:
    """Write ``output/DIV2K_{split}_raw.lmdb``: every HR image whole (mod-cropped to the scales' least common
    multiple) and its LR at each scale, as uncompressed HxWx3 uint8 BGR values (keys ``STEM_hr``, ``STEM_x{s}``;
    ``meta_info.txt`` lines ``KEY.raw (H,W,3) 0``), read by :class:`msrn_plugin.data.raw_lmdb_dataset.RawLMDBDataset`.

    LR comes from the official folders when present (cropped to HR size / scale), from HR by MATLAB bicubic
    otherwise, as for the PNG format. Inputs and free space are checked before anything is written; the database is
    written atomically (:func:`msrn_plugin.prep.lmdb_writer.write_lmdb_atomic`) and checked for every scale; a
    finished database with the same scales is skipped.

    Args:
        root (str): Folder containing ``DIV2K_{split}_HR/`` and, optionally, the official LR folders.
        output (str): Folder for the database (created).
        scales (Sequence[int]): LR scales to store. Default: (2, 3, 4, 8).
        workers (int): Processes that read and resize images (1: in this process). Default: 1.
        split (str): 'train' or 'valid'. Default: 'train'.
        progress (bool): Show a progress bar. Default: True.
        png_crop_size (int): Sub-image size of the PNG format it is compared with. Default: 576.
        png_step (int): Sub-image step of the PNG format it is compared with. Default: 288.

    Returns:
        dict: ``format`` ('raw'), ``num_images``, ``small_images``, ``databases`` ({'raw': info with ``path``,
        ``status``, ``seconds``, ``disk_bytes``, ``num_images``, ``sources``}) and ``png``: the PNG sub-image LMDBs'
        disk use for the same images (``bytes``, ``measured``: True when they exist in ``output``, else estimated).

    Raises:
        PrepError: Bad input or output (names the file and the fix), or a full disk.
    """
    from msrn_plugin.data.raw_lmdb_dataset import check_raw_lmdb, raw_key
    if split not in SPLITS:
        raise PrepError(f"split must be 'train' or 'valid', got {split!r}.")
    if not scales or any(int(s) != s or s < 2 for s in scales):
        raise PrepError(f'scales must be integers >= 2, got {list(scales)}.')
    if workers < 1:
        raise PrepError(f'workers must be >= 1, got {workers}.')
    scales = sorted(set(int(s) for s in scales))
    multiple = scales_lcm(scales)
    images = _scan_hr(root, split)
    lr_dirs = {s: _scan_lr(root, split, s, images) for s in scales}
    small = [img.stem for img in images if min(img.size) < multiple * 2]
    if small:
        logger.warning('%d image(s) too small for x%d are not used: %s', len(small), max(scales),
                       format_examples(small, 10))
    used = [img for img in images if img.stem not in small]
    if not used:
        raise PrepError(f'{os.path.join(root, f"DIV2K_{split}_HR")}: no image is large enough for x{max(scales)}.')
    keys = [raw_key(img.stem, s) for img in used for s in (1, *scales)]
    path = os.path.join(output, raw_lmdb_name(split))
    settings = dict(format='raw', scales=scales, grid_multiple=multiple, split=split)
    sources = {str(s): 'official' if lr_dirs[s] else 'generated' for s in scales}
    entry = {'path': path, 'sources': sources}
    result = {'format': 'raw', 'num_images': len(images), 'small_images': small, 'databases': {'raw': entry}}
    if _existing(path, settings, keys):
        entry.update(status='skipped', seconds=0.0, disk_bytes=_disk_bytes(path), num_images=len(used))
        logger.info('%s: complete, skipped.', path)
    else:
        sizes = [((h - h % multiple), (w - w % multiple)) for h, w in (img.size for img in used)]
        raw = sum(h * w * 3 // (s * s) for h, w in sizes for s in (1, *scales))
        needed = raw + 8192 * len(keys) + 2**20
        os.makedirs(output, exist_ok=True)
        free = shutil.disk_usage(output).free
        if free < needed:
            raise PrepError(f'{output}: not enough disk space: {free / 2**20:.1f} MiB free, {needed / 2**20:.1f} MiB '
                            'needed for the raw database; free some space or pass another --output.')
        tasks = [(img.stem, img.hr_path, {s: img.lr_paths[s] for s in scales if lr_dirs[s]}, scales, multiple)
                 for img in used]

        def verify(tmp: str) -> None:
            for s in scales:
                check_raw_lmdb(tmp, s)

        with _worker_pool(workers) as pool:
            start = time.perf_counter()
            count = _write_tasks(path, _raw_task, tasks, pool, progress,
                                 map_size=int(raw * 1.1) + 8192 * len(keys) + 2**26,
                                 info=dict(settings, sources=sources, compress_level=0), verify=verify,
                                 compress_level=0, extension='raw')
        entry.update(status='written', seconds=time.perf_counter() - start, disk_bytes=_disk_bytes(path),
                     num_images=count // (1 + len(scales)))
        logger.info('%s: %d images (HR + x%s) in %.1f s, %.1f MiB.', path, entry['num_images'],
                    ', x'.join(map(str, scales)), entry['seconds'], entry['disk_bytes'] / 2**20)
    result['png'] = _png_comparison(output, split, scales, used, png_crop_size, png_step)
    return result
