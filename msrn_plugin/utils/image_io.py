"""Reading and writing images with clear errors: gray, RGB, RGBA, 8- and 16-bit, unicode paths.

OpenCV's ``cv2.imread`` returns None (no reason) for missing, corrupt or non-image files and fails on some unicode
paths; these helpers read bytes with Python and decode them with ``cv2.imdecode``, and write through a temporary
file so a partial image never appears under its final name.
"""
import cv2
import numpy as np
import os
from os import PathLike
from typing import Tuple, Union

from msrn_plugin.utils.atomic import atomic_write

PathType = Union[str, PathLike]
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
SIXTEEN_BIT_EXTENSIONS = ('.png', '.tif', '.tiff', '.ppm', '.pgm')


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


def image_size(path: PathType) -> Tuple[int, int]:
    """Height and width of an image, from its header when Pillow can read it (no full decode).

    Args:
        path (str | PathLike): Image file.

    Returns:
        tuple[int, int]: ``(height, width)``.

    Raises:
        ImageReadError: If the file is missing, empty, or not an image.
    """
    path = os.fspath(path)
    try:
        from PIL import Image
        with Image.open(path) as im:
            width, height = im.size
        return height, width
    except Exception:  # Pillow missing, an unknown format or a bomb guard: fall back to a full decode
        img = read_image(path)
        return img.shape[0], img.shape[1]


def write_image(path: PathType, img: np.ndarray) -> None:
    """Write an image atomically (temporary file in the same folder, then rename); creates the folder.

    Args:
        path (str | PathLike): Output file; its extension selects the format.
        img (np.ndarray): HxW or HxWxC (BGR / BGRA), uint8 or uint16 (uint16 needs PNG or TIFF).

    Raises:
        OSError: If encoding or writing fails (nothing is left under ``path``, and a file already there is kept).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    ext = os.path.splitext(path)[1] or '.png'
    if img.dtype not in (np.uint8, np.uint16) or img.ndim not in (2, 3) or img.size == 0:
        raise OSError(f'{path}: cannot write a {img.dtype} image of shape {img.shape}; convert it to uint8 (or '
                      'uint16) HxW or HxWxC first.')
    if not is_image_file(path):
        raise OSError(f'{path}: unsupported extension {ext!r}; use one of {", ".join(IMAGE_EXTENSIONS)}.')
    if img.dtype == np.uint16 and ext.lower() not in SIXTEEN_BIT_EXTENSIONS:
        raise OSError(f'{path}: {ext} cannot hold 16-bit images (OpenCV would clip them to 8 bits); write .png or '
                      '.tif, or convert to uint8 first.')
    if img.ndim == 3 and img.shape[2] == 4 and ext.lower() in ('.jpg', '.jpeg', '.bmp', '.ppm', '.pgm'):
        raise OSError(f'{path}: {ext} has no alpha channel; write .png (or drop the alpha channel first).')
    try:
        ok, buf = cv2.imencode(ext, img)
    except cv2.error as err:
        ok, buf = False, str(err).strip().splitlines()[-1]
    if not ok:
        raise OSError(f'{path}: cannot encode a {img.dtype} image of shape {img.shape} as {ext}'
                      f'{f" ({buf})" if isinstance(buf, str) else ""}.')
    with atomic_write(path) as f:
        f.write(buf.tobytes())
