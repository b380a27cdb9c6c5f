"""Mod-crop and MATLAB-compatible bicubic downscaling (BasicSR's ``imresize`` with MATLAB's uint8 rounding)."""
import numpy as np
from basicsr.utils.matlab_functions import imresize


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so that height and width are multiples of ``scale`` (MATLAB ``modcrop``).

    Args:
        img (np.ndarray): HxW or HxWxC image.
        scale (int): Scale factor.

    Returns:
        np.ndarray: A view of ``img`` of size (H - H % scale, W - W % scale).
    """
    h, w = img.shape[:2]
    return img[:h - h % scale, :w - w % scale, ...]


def bicubic_downscale(img: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB ``imresize(img, 1/scale, 'bicubic')`` of a uint8 image, rounded and clipped like MATLAB.

    The image is used as given: mod-crop it first (:func:`mod_crop`) so that the output is exactly
    (H / scale, W / scale).

    Args:
        img (np.ndarray): HxW or HxWxC uint8 image (any channel order; channels are resized independently).
        scale (int): Integer downscaling factor (2, 3, 4, 8, ...).

    Returns:
        np.ndarray: uint8 image of size ceil(H / scale) x ceil(W / scale), same number of dimensions as ``img``.
    """
    if img.dtype != np.uint8:
        raise TypeError(f'bicubic_downscale expects a uint8 image, got {img.dtype}.')
    # imresize is linear, so resizing 0..255 floats and rounding once is MATLAB's uint8 result.
    out = imresize(img.astype(np.float32), 1 / scale)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
