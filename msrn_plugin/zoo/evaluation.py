"""Benchmark data and metrics: (HR, LR) pairs made with MATLAB-style bicubic, the bicubic baseline, Y-channel PSNR /
SSIM (BasicSR's metrics) and evaluating an upscaler over a benchmark."""
import cv2
import numpy as np
import os
import torch
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils.matlab_functions import imresize
from collections import OrderedDict
from torch import nn
from tqdm import tqdm
from typing import Callable, Dict, Mapping, Optional, Tuple, Union

from msrn_plugin.inference import MSRNer
from msrn_plugin.prep.bicubic import bicubic_downscale, mod_crop
from msrn_plugin.utils.image_io import is_image_file, read_image
from msrn_plugin.utils.misc import PathType
from msrn_plugin.utils.photos import HELD_OUT_PHOTOS, load_photo


def bicubic_upscale(img: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic baseline: MATLAB-style bicubic upscaling (BasicSR's ``imresize``) of a uint8 image."""
    return np.clip(imresize(img.astype(np.float32), scale), 0, 255).round().astype(np.uint8)


def make_pair(hr: np.ndarray, scale: int, crop: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """(HR, LR) from an HR photo: optional centre crop to ``crop`` pixels, mod-crop, MATLAB bicubic downscale
    (:mod:`msrn_plugin.prep.bicubic`, the benchmark preparation's own functions)."""
    if crop:
        h, w = hr.shape[:2]
        top, left = max((h - crop) // 2, 0), max((w - crop) // 2, 0)
        hr = hr[top:top + crop, left:left + crop]
    hr = mod_crop(hr, scale)
    return hr, bicubic_downscale(hr, scale)


def load_benchmark(scale: int,
                   hr_dir: Optional[PathType] = None,
                   lr_dir: Optional[PathType] = None,
                   crop: int = 0) -> 'OrderedDict[str, Tuple[np.ndarray, np.ndarray]]':
    """Evaluation pairs ``{name: (hr, lr)}`` (BGR uint8).

    Args:
        scale (int): Upscaling factor.
        hr_dir (str | PathLike | None): Folder of HR (ground-truth) images, e.g. a benchmark prepared by
            ``scripts/prepare_benchmark.py``. None: the bundled held-out photos (:data:`HELD_OUT_PHOTOS`).
            Default: None.
        lr_dir (str | PathLike | None): Matching LR images (same file stem, optionally with an ``x{scale}`` suffix);
            None: made from HR by MATLAB bicubic. Default: None.
        crop (int): Centre-crop HR images to this size first (0: whole images; ignored with ``lr_dir``). Default: 0.

    Raises:
        FileNotFoundError: If a folder is missing or empty, or an LR image is missing.
        ValueError: If an LR image does not have the HR size divided by the scale.
    """
    pairs = OrderedDict()
    if hr_dir is None:
        for name in HELD_OUT_PHOTOS:
            pairs[os.path.splitext(name)[0]] = make_pair(load_photo(name), scale, crop)
        return pairs
    hr_dir = os.fspath(hr_dir)
    if not os.path.isdir(hr_dir):
        raise FileNotFoundError(f'{hr_dir}: benchmark HR folder not found; check --hr_dir.')
    files = sorted(f for f in os.listdir(hr_dir) if is_image_file(f))
    if not files:
        raise FileNotFoundError(f'{hr_dir}: no images in the benchmark HR folder.')
    lr_files = {}
    if lr_dir is not None:
        lr_dir = os.fspath(lr_dir)
        if not os.path.isdir(lr_dir):
            raise FileNotFoundError(f'{lr_dir}: benchmark LR folder not found; check --lr_dir.')
        lr_files = {os.path.splitext(f)[0]: f for f in os.listdir(lr_dir) if is_image_file(f)}
    for f in files:
        stem = os.path.splitext(f)[0]
        hr = read_image(os.path.join(hr_dir, f))
        hr = cv2.cvtColor(hr, cv2.COLOR_GRAY2BGR) if hr.ndim == 2 else hr[:, :, :3]
        if lr_dir is None:
            pairs[stem] = make_pair(hr, scale, crop)
            continue
        lr_name = lr_files.get(stem) or lr_files.get(f'{stem}x{scale}')
        if lr_name is None:
            raise FileNotFoundError(f'{lr_dir}: no LR image for {f} (expected {stem}.* or {stem}x{scale}.*).')
        lr = read_image(os.path.join(lr_dir, lr_name))
        lr = cv2.cvtColor(lr, cv2.COLOR_GRAY2BGR) if lr.ndim == 2 else lr[:, :, :3]
        hr = mod_crop(hr, scale)
        if (lr.shape[0] * scale, lr.shape[1] * scale) != hr.shape[:2]:
            raise ValueError(f'{os.path.join(lr_dir, lr_name)}: LR size {lr.shape[:2]} x{scale} does not match the '
                             f'mod-cropped HR size {hr.shape[:2]} of {f}; check --scale and the folders.')
        pairs[stem] = (hr, lr)
    return pairs


def psnr_ssim(sr: np.ndarray, hr: np.ndarray, scale: int) -> Tuple[float, float]:
    """Y-channel PSNR / SSIM with ``scale`` border pixels cropped (BasicSR's metrics; BGR uint8 inputs)."""
    return (float(calculate_psnr(sr, hr, crop_border=scale, test_y_channel=True)),
            float(calculate_ssim(sr, hr, crop_border=scale, test_y_channel=True)))


def evaluate(upscale: Callable[[np.ndarray], np.ndarray],
             pairs: Mapping[str, Tuple[np.ndarray, np.ndarray]],
             scale: int,
             desc: str = 'eval') -> Tuple[float, float, Dict[str, np.ndarray]]:
    """Mean PSNR / SSIM of ``upscale(lr)`` against ``hr`` over ``pairs``, and the outputs by name."""
    psnrs, ssims, outputs = [], [], {}
    for name, (hr, lr) in tqdm(pairs.items(), desc=desc, unit='img', leave=False):
        sr = upscale(lr)
        psnr, ssim = psnr_ssim(sr, hr, scale)
        psnrs.append(psnr)
        ssims.append(ssim)
        outputs[name] = sr
    return float(np.mean(psnrs)), float(np.mean(ssims)), outputs


def make_upscaler(net: nn.Module, scale: int, tile: int = 0, tile_pad: Optional[int] = None,
                  device: Union[str, torch.device] = 'cpu') -> Callable[[np.ndarray], np.ndarray]:
    """BGR uint8 -> BGR uint8 through :class:`msrn_plugin.inference.MSRNer` (tiling needs ``tile_pad`` for
    non-MSRN models; RCAN's channel attention pools the whole input, so no finite pad makes its tiles exact)."""
    return MSRNer(net, scale, tile=tile, tile_pad=tile_pad, device=device).enhance
