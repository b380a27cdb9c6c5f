"""Reading and writing images with clear errors: gray, RGB, RGBA, 8- and 16-bit, unicode paths.

OpenCV's ``cv2.imread`` returns None (no reason) for missing, corrupt or non-image files and fails on some unicode
paths; these helpers read bytes with Python and decode them with ``cv2.imdecode``, and write through a temporary
file so a partial image never appears under its final name.
"""
import os
from os import PathLike
from typing import Union

import cv2
import numpy as np

PathType = Union[str, PathLike]
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


class ImageReadError(ValueError):
    """An image file cannot be decoded; the message names the file and the reason."""


def is_image_file(path: PathType) -> bool:
    """Whether ``path`` has an image extension (case-insensitive)."""
    return os.fspath(path).lower().endswith(IMAGE_EXTENSIONS)


def read_image(path: PathType) -> np.ndarray:
    """Read an image as stored: HxW (gray) or HxWxC (BGR / BGRA), uint8 or uint16.

    Args:
        path (str | PathLike): Image file.

    Returns:
        np.ndarray: The image, OpenCV channel order.

    Raises:
        ImageReadError: If the file is missing, empty, or cannot be decoded.
    """
    path = os.fspath(path)
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as err:
        raise ImageReadError(f'{path}: cannot read ({err.strerror}).') from None
    if not data:
        raise ImageReadError(f'{path}: empty file (0 bytes); re-copy or remove it.')
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ImageReadError(f'{path}: not a readable image (corrupt, truncated or another file type); '
                             're-copy or remove it.')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    return img


def write_image(path: PathType, img: np.ndarray) -> None:
    """Write an image atomically (temporary file in the same folder, then rename); creates the folder.

    Args:
        path (str | PathLike): Output file; its extension selects the format.
        img (np.ndarray): HxW or HxWxC (BGR / BGRA), uint8 or uint16.

    Raises:
        OSError: If encoding or writing fails (nothing is left under ``path``).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    ext = os.path.splitext(path)[1] or '.png'
    ok, buf = cv2.imencode(ext, img)
    if not ok:
        raise OSError(f'{path}: cannot encode a {img.dtype} image of shape {img.shape} as {ext}.')
    tmp = os.path.join(folder, f'.{os.path.basename(path)}.tmp')
    try:
        with open(tmp, 'wb') as f:
            f.write(buf.tobytes())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
