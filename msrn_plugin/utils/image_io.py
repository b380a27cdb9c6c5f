"""Reading and writing images with clear errors: gray, RGB, RGBA, 8- and 16-bit, unicode paths.

OpenCV's ``cv2.imread`` returns None (no reason) for missing, corrupt or non-image files and fails on some unicode
paths; these helpers read bytes with Python and decode them with ``cv2.imdecode``, and write through a temporary
file so a partial image never appears under its final name.
"""
import cv2
import io
import numpy as np
import os
from os import PathLike
from typing import IO, Optional, Tuple, Union

from msrn_plugin.utils.atomic import atomic_write

PathType = Union[str, PathLike]
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
SIXTEEN_BIT_EXTENSIONS = ('.png', '.tif', '.tiff', '.ppm', '.pgm')


#: Largest image, in pixels, the plugin reads by default (100 megapixels: about 300 MB as 8-bit RGB, 1.2 GB as the
#: float32 tensor a network sees). Files declaring more are refused from their header, before decoding.
DEFAULT_MAX_PIXELS = 100_000_000
#: Environment variable that overrides :data:`DEFAULT_MAX_PIXELS` (0: no limit); ``--max-pixels`` sets it per run.
MAX_PIXELS_ENV = 'MSRN_MAX_PIXELS'


class ImageReadError(ValueError):
    """An image file cannot be decoded; the message names the file and the reason.

    Args:
        message (str): The whole message (file, reason and fix).
        path (str | None): The file. Default: None.
        reason (str | None): The reason alone, for callers that give their own fix. Default: None.
    """

    def __init__(self, message: str, path: Optional[str] = None, reason: Optional[str] = None) -> None:
        super().__init__(message)
        self.path, self.reason = path, reason


class ImageTooLargeError(ImageReadError):
    """An image declares more pixels than the limit (see :func:`max_pixels_limit`); refused before decoding."""


def max_pixels_limit(max_pixels: Optional[int] = None) -> Optional[int]:
    """The pixel limit in force.

    Args:
        max_pixels (int | None): An explicit limit (0: none). None: ``$MSRN_MAX_PIXELS`` if set, else
            :data:`DEFAULT_MAX_PIXELS`. Default: None.

    Returns:
        int | None: The limit, or None for no limit.

    Raises:
        ValueError: If ``max_pixels`` or ``$MSRN_MAX_PIXELS`` is not a non-negative whole number.
    """
    if max_pixels is None:
        text = os.environ.get(MAX_PIXELS_ENV, '').strip()
        if not text:
            return DEFAULT_MAX_PIXELS
        max_pixels = int(text) if text.isdigit() else -1
        if max_pixels < 0:
            raise ValueError(f'{MAX_PIXELS_ENV}={text!r}: not a number of pixels; use a whole number such as '
                             f'{DEFAULT_MAX_PIXELS} (0: no limit), or unset it.')
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 0:
        raise ValueError(f'max_pixels must be a whole number >= 0 (0: no limit), got {max_pixels!r}.')
    return max_pixels or None


def _header_size(fp: IO[bytes], name: str = '') -> Optional[Tuple[int, int]]:
    """``(height, width)`` from an image header, read by Pillow without its own size guard; None if unknown.

    Pillow's ``Image.open`` refuses headers above its ``MAX_IMAGE_PIXELS`` without saying the size, so each format
    plugin's reader is tried directly, as ``Image.open`` does; only the header is read, nothing is decoded.
    """
    try:
        from PIL import Image
        Image.init()
        formats = [(fmt, Image.OPEN[fmt]) for fmt in Image.ID if fmt in Image.OPEN]
    except (ImportError, AttributeError):  # pragma: no cover - Pillow missing or its plugin table renamed
        return None
    start = fp.tell()
    prefix = fp.read(16)
    for _, (factory, accept) in formats:
        try:
            accepted = accept(prefix) if accept is not None else True
            if isinstance(accepted, str) or not accepted:  # a str is Pillow's "maybe, with a warning"
                continue
            fp.seek(start)
            im = factory(fp, name)
            width, height = im.size
            if width > 0 and height > 0:
                return int(height), int(width)
        except Exception:  # noqa: B902  (any plugin failure just means: not this format)
            continue
        finally:
            fp.seek(start)
    return None


def check_pixels(path: str, size: Tuple[int, int], max_pixels: Optional[int] = None) -> None:
    """Refuse an image whose ``(height, width)`` exceeds the pixel limit.

    Args:
        path (str): The file, for the message.
        size (tuple[int, int]): ``(height, width)``.
        max_pixels (int | None): See :func:`max_pixels_limit`. Default: None.

    Raises:
        ImageTooLargeError: Naming the file, its size, the limit and how to raise it.
    """
    limit = max_pixels_limit(max_pixels)
    height, width = size
    if limit is not None and height * width > limit:
        reason = (f'the image declares {width}x{height} = {height * width:,} pixels, more than the limit of '
                  f'{limit:,} (it would need about {height * width * 3 / 2**30:.1f} GiB as 8-bit RGB)')
        raise ImageTooLargeError(f'{path}: {reason}; refused before decoding. If the image is genuine, raise the '
                                 f'limit (--max-pixels N, or {MAX_PIXELS_ENV}=N; 0: no limit) or split it.',
                                 path=path, reason=reason)


def is_image_file(path: PathType) -> bool:
    """Whether ``path`` has an image extension (case-insensitive)."""
    return os.fspath(path).lower().endswith(IMAGE_EXTENSIONS)


def read_image(path: PathType, max_pixels: Optional[int] = None) -> np.ndarray:
    """Read an image as stored: HxW (gray) or HxWxC (BGR / BGRA), uint8 or uint16.

    The size in the header is checked against the pixel limit before anything is decoded.

    Args:
        path (str | PathLike): Image file.
        max_pixels (int | None): Pixel limit; see :func:`max_pixels_limit`. Default: None (``$MSRN_MAX_PIXELS`` or
            :data:`DEFAULT_MAX_PIXELS`).

    Returns:
        np.ndarray: The image, OpenCV channel order.

    Raises:
        ImageReadError: If the file is missing, empty, or cannot be decoded.
        ImageTooLargeError: If it declares more pixels than the limit (nothing decoded).
    """
    path = os.fspath(path)
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as err:
        raise ImageReadError(f'{path}: cannot read ({err.strerror}).', path=path, reason='cannot read') from None
    if not data:
        raise ImageReadError(f'{path}: empty file (0 bytes); re-copy or remove it.', path=path,
                             reason='empty file (0 bytes)')
    size = _header_size(io.BytesIO(data), path)
    if size is not None:
        check_pixels(path, size, max_pixels)
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:  # e.g. OpenCV's own size limit, or an allocation that failed
        img = None
    if img is None or img.size == 0:
        reason = 'not a readable image (corrupt, truncated or another file type)'
        raise ImageReadError(f'{path}: {reason}; re-copy or remove it.', path=path, reason=reason)
    if size is None:  # a header Pillow does not know: check what OpenCV decoded
        check_pixels(path, img.shape[:2], max_pixels)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    return img


def image_size(path: PathType, max_pixels: Optional[int] = None) -> Tuple[int, int]:
    """Height and width of an image, from its header (nothing decoded when Pillow knows the format).

    Args:
        path (str | PathLike): Image file.
        max_pixels (int | None): Pixel limit; see :func:`max_pixels_limit`. Default: None (``$MSRN_MAX_PIXELS`` or
            :data:`DEFAULT_MAX_PIXELS`).

    Returns:
        tuple[int, int]: ``(height, width)``.

    Raises:
        ImageReadError: If the file is missing, empty, or not an image.
        ImageTooLargeError: If it declares more pixels than the limit.
    """
    path = os.fspath(path)
    try:
        with open(path, 'rb') as f:
            size = _header_size(f, path)
    except OSError as err:
        raise ImageReadError(f'{path}: cannot read ({err.strerror}).', path=path, reason='cannot read') from None
    if size is None:  # a format Pillow cannot read: decode it (within the limit)
        return read_image(path, max_pixels).shape[:2]
    check_pixels(path, size, max_pixels)
    return size


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
