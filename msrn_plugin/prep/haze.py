"""Synthetic hazy/clear pairs with the atmospheric scattering model, RESIDE-named (docs/restoration.md)."""
import csv
import cv2
import logging
import numpy as np
import os
import shutil
import zlib
from os import path as osp
from tqdm import tqdm
from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple

from msrn_plugin.prep import PrepError
from msrn_plugin.utils.image_io import is_image_file, read_image, write_image
from msrn_plugin.utils.misc import PathType
from msrn_plugin.utils.outputs import check_folder_not_replacing

logger = logging.getLogger(__name__)

AIRLIGHT_RANGE = (0.7, 1.0)
BETA_RANGE = (0.6, 1.8)
DEPTH_RANGE = (0.2, 1.0)
DEPTH_MODES = ('vertical', 'luminance', 'uniform')
PARAMS_FILE = 'haze_params.csv'


class HazeRecord(NamedTuple):
    """One synthesised hazy image: its file names (relative to the output folder) and parameters."""
    hazy: str
    clear: str
    airlight: float
    beta: float
    depth_mode: str
    t_min: float
    t_max: float


def depth_proxy(img: np.ndarray, mode: str = 'vertical', depth_range: Tuple[float, float] = DEPTH_RANGE) -> np.ndarray:
    """A relative depth map for an image without one.

    Args:
        img (np.ndarray): HxW or HxWxC image (only its size is used, except for 'luminance').
        mode (str): 'vertical', 'luminance' or 'uniform' (see the module docstring). Default: 'vertical'.
        depth_range (tuple[float, float]): ``(near, far)`` relative depth. Default: (0.2, 1.0).

    Returns:
        np.ndarray: HxW float32 depth in [near, far].
    """
    near, far = _check_range(depth_range, 'depth_range', low=0.)
    h, w = img.shape[:2]
    if mode == 'vertical':
        ramp = np.linspace(1., 0., h, dtype=np.float32) if h > 1 else np.ones(1, np.float32)
        rel = np.repeat(ramp[:, None], w, axis=1)
    elif mode == 'luminance':
        gray = img.astype(np.float32)
        if gray.ndim == 3:
            gray = gray[..., :3].mean(axis=2)
        gray = cv2.GaussianBlur(gray, (0, 0), sigmaX=max(min(h, w) / 8., 1.))
        span = float(gray.max() - gray.min())
        rel = (gray - gray.min()) / span if span > 0 else np.ones_like(gray)
    elif mode == 'uniform':
        rel = np.ones((h, w), np.float32)
    else:
        raise PrepError(f'depth_mode must be one of {DEPTH_MODES}, got {mode!r}.')
    return (near + (far - near) * rel).astype(np.float32)


def transmission(depth: np.ndarray, beta: float) -> np.ndarray:
    """Transmission ``t = exp(-beta d)``, in (0, 1] for ``beta >= 0`` and ``d >= 0`` (within float range).

    Args:
        depth (np.ndarray): Depth map (>= 0).
        beta (float): Scattering coefficient (>= 0).

    Returns:
        np.ndarray: Transmission, float32, same shape as ``depth``.
    """
    if beta < 0 or np.any(depth < 0):
        raise PrepError(f'transmission needs beta >= 0 and depth >= 0, got beta={beta} and depth min '
                        f'{float(depth.min())}.')
    return np.exp(-float(beta) * depth.astype(np.float64)).astype(np.float32)


def apply_haze(clear: np.ndarray, airlight: float, t: np.ndarray) -> np.ndarray:
    """The atmospheric scattering model ``I = J t + A (1 - t)``.

    Args:
        clear (np.ndarray): Clear image J, HxW or HxWxC, float in [0, 1].
        airlight (float): Global airlight A in [0, 1].
        t (np.ndarray): HxW transmission in (0, 1].

    Returns:
        np.ndarray: Hazy image, float32 in [0, 1], same shape as ``clear``.
    """
    t = t[..., None] if clear.ndim == 3 else t
    hazy = clear.astype(np.float32) * t + np.float32(airlight) * (1 - t)
    return np.clip(hazy, 0, 1)  # only float rounding can step outside: I is a convex combination of J and A


def _check_range(values: Sequence[float], name: str, low: float, high: Optional[float] = None) -> Tuple[float, float]:
    try:
        lo, hi = (float(v) for v in values)
    except (TypeError, ValueError):
        raise PrepError(f'{name} must be two numbers (low, high), got {values!r}.') from None
    upper = f' and <= {high}' if high is not None else ''
    if not (low <= lo <= hi) or (high is not None and hi > high):
        raise PrepError(f'{name} must satisfy {low} <= low <= high{upper}, got ({lo}, {hi}).')
    return lo, hi


def _to_unit(img: np.ndarray, name: str) -> Tuple[np.ndarray, float]:
    if img.dtype == np.uint8:
        peak = 255.
    elif img.dtype == np.uint16:
        peak = 65535.
    else:
        raise PrepError(f'{name}: expected an 8- or 16-bit image, got {img.dtype}.')
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]  # alpha is not part of the scene
    return img.astype(np.float32) / peak, peak


def _params_for(stem: str, index: int, seed: int, airlight_range, beta_range, used: set) -> Tuple[float, float]:
    rng = np.random.RandomState((seed + zlib.crc32(f'{stem}#{index}'.encode('utf-8'))) % 2**32)
    for _ in range(1000):
        airlight = round(float(rng.uniform(*airlight_range)), 2)
        beta = round(float(rng.uniform(*beta_range)), 3)
        if (airlight, beta) not in used:
            used.add((airlight, beta))
            return airlight, beta
    raise PrepError(f'{stem}: cannot draw distinct (A, beta) pairs for every hazy image; widen airlight_range / '
                    'beta_range or lower num_per_image.')


def synthesize_haze_pairs(images: Iterable[Tuple[str, np.ndarray]],
                          output_folder: PathType,
                          num_per_image: int = 1,
                          airlight_range: Tuple[float, float] = AIRLIGHT_RANGE,
                          beta_range: Tuple[float, float] = BETA_RANGE,
                          depth_mode: str = 'vertical',
                          depth_range: Tuple[float, float] = DEPTH_RANGE,
                          seed: int = 0,
                          overwrite: bool = False,
                          total: Optional[int] = None) -> List[HazeRecord]:
    """Write RESIDE-named hazy/clear pairs for clear images (layout in the module docstring).

    A and beta are drawn per hazy image from a RandomState seeded with ``seed`` and the image stem, so the output
    does not depend on the order or the number of the other images; they are rounded to the precision of the file
    name before use, so the name records the exact parameters.

    Args:
        images (Iterable[tuple[str, np.ndarray]]): ``(stem, image)`` pairs; 8- or 16-bit, gray, BGR or BGRA (alpha is
            dropped). Stems must be unique.
        output_folder (str | PathLike): Output folder; must not exist or be empty unless ``overwrite``.
        num_per_image (int): Hazy versions per clear image (RESIDE ITS has 10). Default: 1.
        airlight_range (tuple[float, float]): Range of A, within (0, 1]. Default: (0.7, 1.0).
        beta_range (tuple[float, float]): Range of beta, >= 0. Default: (0.6, 1.8).
        depth_mode (str): 'vertical', 'luminance' or 'uniform'. Default: 'vertical'.
        depth_range (tuple[float, float]): ``(near, far)`` relative depth, >= 0. Default: (0.2, 1.0).
        seed (int): Base seed. Default: 0.
        overwrite (bool): Replace an existing non-empty output folder. Default: False.
        total (int | None): Number of images, for the progress bar. Default: None.

    Returns:
        list[HazeRecord]: One record per hazy image, in writing order.

    Raises:
        PrepError: On a bad argument, a duplicate stem, a non-empty output without ``overwrite``, or no images.
            Nothing is left under ``output_folder`` (or its old content is kept) when anything fails.
    """
    airlight_range = _check_range(airlight_range, 'airlight_range', low=0., high=1.)
    if airlight_range[0] <= 0:
        raise PrepError(f'airlight_range must be within (0, 1], got {airlight_range}.')
    beta_range = _check_range(beta_range, 'beta_range', low=0.)
    depth_range = _check_range(depth_range, 'depth_range', low=0.)
    if depth_mode not in DEPTH_MODES:
        raise PrepError(f'depth_mode must be one of {DEPTH_MODES}, got {depth_mode!r}.')
    if int(num_per_image) < 1:
        raise PrepError(f'num_per_image must be >= 1, got {num_per_image}.')
    output_folder = osp.abspath(os.fspath(output_folder))
    if osp.exists(output_folder) and (not osp.isdir(output_folder) or os.listdir(output_folder)) and not overwrite:
        raise PrepError(f'{output_folder} already exists and is not empty; choose another output folder or pass '
                        'overwrite (--overwrite) to replace it.')

    partial = f'{output_folder}.partial-{os.getpid()}'
    shutil.rmtree(partial, ignore_errors=True)
    records: List[HazeRecord] = []
    try:
        seen = set()
        for stem, img in tqdm(images, total=total, unit='image', desc='haze'):
            if stem in seen:
                raise PrepError(f'two clear images share the name {stem!r}; rename one (outputs are named by stem).')
            seen.add(stem)
            clear, peak = _to_unit(img, stem)
            depth = depth_proxy(clear, depth_mode, depth_range)
            clear_name = f'clear/{stem}.png'
            write_image(osp.join(partial, clear_name), img[..., :3] if img.ndim == 3 else img)
            used = set()
            for index in range(int(num_per_image)):
                airlight, beta = _params_for(stem, index, seed, airlight_range, beta_range, used)
                t = transmission(depth, beta)
                hazy = apply_haze(clear, airlight, t)
                hazy_name = f'hazy/{stem}_{airlight:.2f}_{beta:.3f}.png'
                write_image(osp.join(partial, hazy_name), np.round(hazy * peak).astype(img.dtype))
                records.append(HazeRecord(hazy_name, clear_name, airlight, beta, depth_mode, float(t.min()),
                                          float(t.max())))
        if not records:
            raise PrepError('no clear images to synthesise haze from.')
        with open(osp.join(partial, PARAMS_FILE), 'w', newline='', encoding='utf-8') as f:
            writer = csv.writer(f)
            writer.writerow(['hazy', 'clear', 'airlight', 'beta', 'depth_mode', 'depth_near', 'depth_far', 't_min',
                             't_max', 'seed'])
            for r in records:
                writer.writerow([r.hazy, r.clear, f'{r.airlight:.2f}', f'{r.beta:.3f}', r.depth_mode, depth_range[0],
                                 depth_range[1], f'{r.t_min:.4f}', f'{r.t_max:.4f}', seed])
        if osp.isdir(output_folder):
            shutil.rmtree(output_folder)
        elif osp.exists(output_folder):
            os.remove(output_folder)
        os.replace(partial, output_folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    logger.info(f'Wrote {len(records)} hazy images for {len(seen)} clear images to {output_folder}.')
    return records


def synthesize_haze_folder(input_folder: PathType,
                           output_folder: PathType,
                           num_per_image: int = 1,
                           airlight_range: Tuple[float, float] = AIRLIGHT_RANGE,
                           beta_range: Tuple[float, float] = BETA_RANGE,
                           depth_mode: str = 'vertical',
                           depth_range: Tuple[float, float] = DEPTH_RANGE,
                           seed: int = 0,
                           overwrite: bool = False) -> List[HazeRecord]:
    """:func:`synthesize_haze_pairs` for every image file in a folder (not recursive, sorted by name).

    Args:
        input_folder (str | PathLike): Folder of clear images.
        output_folder (str | PathLike): Output folder; must not exist or be empty unless ``overwrite``.
        num_per_image (int): Hazy versions per clear image. Default: 1.
        airlight_range (tuple[float, float]): Range of A, within (0, 1]. Default: (0.7, 1.0).
        beta_range (tuple[float, float]): Range of beta, >= 0. Default: (0.6, 1.8).
        depth_mode (str): 'vertical', 'luminance' or 'uniform'. Default: 'vertical'.
        depth_range (tuple[float, float]): ``(near, far)`` relative depth, >= 0. Default: (0.2, 1.0).
        seed (int): Base seed. Default: 0.
        overwrite (bool): Replace an existing non-empty output folder. Default: False.

    Returns:
        list[HazeRecord]: One record per hazy image.

    Raises:
        PrepError: If the folder is missing or holds no image, or as :func:`synthesize_haze_pairs`.
        ImageReadError: If an image cannot be read (nothing is written).
    """
    input_folder = os.fspath(input_folder)
    if not osp.isdir(input_folder):
        raise PrepError(f'{input_folder}: not a folder; give the folder of clear images.')
    names = sorted(n for n in os.listdir(input_folder) if is_image_file(n) and osp.isfile(osp.join(input_folder, n)))
    if not names:
        raise PrepError(f'{input_folder}: no image files (.png, .jpg, .bmp, .tif, ...) found.')
    check_folder_not_replacing(output_folder, [input_folder], error=PrepError,
                               hint='Choose an output folder outside the folder of clear images.')
    images = ((osp.splitext(n)[0], read_image(osp.join(input_folder, n))) for n in names)
    return synthesize_haze_pairs(images, output_folder, num_per_image=num_per_image, airlight_range=airlight_range,
                                 beta_range=beta_range, depth_mode=depth_mode, depth_range=depth_range, seed=seed,
                                 overwrite=overwrite, total=len(names))


__all__ = ['AIRLIGHT_RANGE', 'BETA_RANGE', 'DEPTH_MODES', 'DEPTH_RANGE', 'HazeRecord', 'apply_haze', 'depth_proxy',
           'synthesize_haze_folder', 'synthesize_haze_pairs', 'transmission']
