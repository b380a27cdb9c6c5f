"""SR benchmarks (Set5, Set14, B100, Urban100, Manga109, any HR folder) as ``GTmod{s}``/``LRbicx{s}``, as in MSRN.

The protocol and its files: docs/data.md.
"""
import logging
import numpy as np
import os
from tqdm import tqdm
from typing import Dict, List, Sequence

from msrn_plugin.prep import PrepError
from msrn_plugin.prep.bicubic import bicubic_downscale, mod_crop
from msrn_plugin.utils.image_io import is_image_file, read_image, write_image
from msrn_plugin.utils.outputs import check_no_overwrite

logger = logging.getLogger(__name__)


def gt_folder(output: str, scale: int) -> str:
    """``OUT/GTmod{scale}``."""
    return os.path.join(output, f'GTmod{scale}')


def lr_folder(output: str, scale: int) -> str:
    """``OUT/LRbicx{scale}``."""
    return os.path.join(output, f'LRbicx{scale}')


def list_hr_images(input_dir: str) -> List[str]:
    """Sorted image files of a folder (not recursive).

    Raises:
        PrepError: Missing folder, no image, or two images with the same name (e.g. ``a.png`` and ``a.bmp``).
    """
    if not os.path.isdir(input_dir):
        raise PrepError(f'{input_dir}: input folder not found; pass the folder that holds the HR images '
                        '(e.g. Set5/HR or Set5/original).')
    paths = [os.path.join(input_dir, n) for n in sorted(os.listdir(input_dir))
             if is_image_file(n) and os.path.isfile(os.path.join(input_dir, n))]
    if not paths:
        raise PrepError(f'{input_dir}: no image file found (.png, .bmp, .jpg, ...); pass the folder that holds the HR '
                        'images.')
    stems: Dict[str, str] = {}
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in stems:
            raise PrepError(f'{path} and {stems[stem]} would both become {stem}.png; keep one.')
        stems[stem] = path
    return paths


def prepare_benchmark(input_dir: str, output: str, scales: Sequence[int] = (2, 3, 4, 8), progress: bool = True) -> dict:
    """Write ``GTmod{s}`` and ``LRbicx{s}`` for every scale from a folder of HR images.

    Args:
        input_dir (str): Folder of HR images (png, bmp, jpg, ...).
        output (str): Benchmark folder, e.g. ``datasets/Set5``.
        scales (Sequence[int]): Scales. Default: (2, 3, 4, 8).
        progress (bool): Show a progress bar. Default: True.

    Returns:
        dict: ``images`` (names written), and per scale ``{s: {'gt': folder, 'lr': folder}}`` under ``folders``.

    Raises:
        PrepError: Bad input (named), e.g. an image smaller than a scale or a 16-bit image, or an output that would
            replace an input image (checked on real paths before anything is written).
        msrn_plugin.utils.image_io.ImageReadError: An unreadable image (named).
    """
    scales = sorted(set(int(s) for s in scales))
    if not scales or scales[0] < 1:
        raise PrepError(f'scales must be positive integers, got {scales}.')
    paths = list_hr_images(input_dir)
    names = [os.path.splitext(os.path.basename(path))[0] for path in paths]
    planned = [os.path.join(folder(output, s), f'{name}.png') for s in scales for folder in (gt_folder, lr_folder)
               for name in names]
    check_no_overwrite(planned, paths, error=PrepError,
                       hint='Write the benchmark to another --output folder (the HR images must stay as they are).')
    # Read and check everything first, so a bad image stops the run before anything is written.
    images = {}
    for path in tqdm(paths, unit='image', desc='read', disable=not progress):
        img = read_image(path)
        if img.dtype != np.uint8:
            raise PrepError(f'{path}: {img.dtype} image; the benchmark protocol uses 8-bit images, convert it first.')
        if img.ndim == 3 and img.shape[2] == 4:
            logger.warning('%s: alpha channel dropped.', path)
            img = img[:, :, :3]
        h, w = img.shape[:2]
        if h < scales[-1] or w < scales[-1]:
            raise PrepError(f'{path}: {w}x{h} is smaller than the x{scales[-1]} scale; remove it or drop that scale.')
        images[os.path.splitext(os.path.basename(path))[0]] = img
    for s in tqdm(scales, unit='scale', desc='write', disable=not progress):
        for name, img in images.items():
            hr = mod_crop(img, s)
            write_image(os.path.join(gt_folder(output, s), f'{name}.png'), hr)
            write_image(os.path.join(lr_folder(output, s), f'{name}.png'), bicubic_downscale(hr, s))
    logger.info('%s: %d image(s) x scales %s.', output, len(images), scales)
    return {'images': list(images), 'folders': {s: {'gt': gt_folder(output, s), 'lr': lr_folder(output, s)}
                                                for s in scales}}
