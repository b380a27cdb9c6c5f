"""Reading and writing images with clear errors: gray, RGB, RGBA, 8- and 16-bit, unicode paths, size limits.

What is refused and why: docs/reliability.md.
"""
import cv2
import io
import numpy as np
import os
import struct
from typing import IO, Optional, Tuple

from msrn_plugin.utils.atomic import atomic_write
from msrn_plugin.utils.misc import PathType

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
        openers = [Image.OPEN[fmt] for fmt in Image.ID if fmt in Image.OPEN]  # (factory, accept), as Image.open
    except (ImportError, AttributeError):  # pragma: no cover - Pillow missing or its plugin table renamed
        return None
    start = fp.tell()
    prefix = fp.read(16)
    for factory, accept in openers:
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


def _tiff_orientation(tiff: bytes) -> int:
    """The Orientation tag (0x0112) of IFD0 of an Exif/TIFF structure; 1 if absent or unreadable."""
    order = {b'II*\x00': '<', b'MM\x00*': '>'}.get(tiff[:4])
    if order is None:
        return 1
    try:
        offset = struct.unpack(order + 'I', tiff[4:8])[0]
        count = struct.unpack(order + 'H', tiff[offset:offset + 2])[0]
        for i in range(count):
            tag, kind = struct.unpack(order + 'HH', tiff[offset + 2 + 12 * i:offset + 6 + 12 * i])
            if tag == 0x0112 and kind == 3:  # SHORT
                value = struct.unpack(order + 'H', tiff[offset + 10 + 12 * i:offset + 12 + 12 * i])[0]
                return value if 1 <= value <= 8 else 1
    except struct.error:
        pass
    return 1


def _find_chunk(data: bytes, pos: int, tag: bytes, png: bool) -> bytes:
    """The payload of the first ``tag`` chunk from ``pos`` on; b'' if there is none.

    PNG chunks are (length, type, data, CRC), big-endian, ending at ``IEND``; RIFF (WebP) chunks are (type, length,
    data, pad byte to an even size), little-endian.
    """
    while pos + 8 <= len(data):
        if png:
            length, kind = struct.unpack('>I4s', data[pos:pos + 8])
        else:
            kind, length = struct.unpack('<4sI', data[pos:pos + 8])
        if kind == tag:
            return data[pos + 8:pos + 8 + length]
        if png and kind == b'IEND':
            break
        pos += 8 + length + (4 if png else length & 1)
    return b''


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation (1-8, 1 = as stored) of an encoded JPEG, PNG (``eXIf``) or WebP image.

    These are the formats whose orientation ``cv2.imdecode(..., IMREAD_UNCHANGED)`` ignores (OpenCV's TIFF decoder
    applies it itself). Only the container's segments are walked; nothing is decoded.

    Args:
        data (bytes): The encoded file.

    Returns:
        int: The orientation; 1 when there is none or it cannot be read.
    """
    exif = b''
    if data[:2] == b'\xff\xd8':  # JPEG: segments up to the start of scan
        pos = 2
        while pos + 4 <= len(data) and data[pos] == 0xFF:
            marker = data[pos + 1]
            if marker in (0xD9, 0xDA):
                break
            if marker == 0x01 or 0xD0 <= marker <= 0xD7 or marker == 0xFF:  # no length
                pos += 1 if marker == 0xFF else 2
                continue
            length = struct.unpack('>H', data[pos + 2:pos + 4])[0]
            if marker == 0xE1 and data[pos + 4:pos + 10] == b'Exif\x00\x00':
                exif = data[pos + 10:pos + 2 + length]
                break
            pos += 2 + length
    elif data[:8] == b'\x89PNG\r\n\x1a\n':
        exif = _find_chunk(data, 8, b'eXIf', png=True)
    elif data[:4] == b'RIFF' and data[8:12] == b'WEBP':
        exif = _find_chunk(data, 12, b'EXIF', png=False)
    if exif.startswith(b'Exif\x00\x00'):
        exif = exif[6:]
    return _tiff_orientation(exif)


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an image as stored into the upright image its EXIF orientation describes (as OpenCV's ``imread``).

    Args:
        img (np.ndarray): HxW or HxWxC, any dtype and channel count (depth and alpha are kept).
        orientation (int): EXIF orientation, 1-8.

    Returns:
        np.ndarray: The upright image (``img`` itself for orientation 1).
    """
    if orientation in (5, 6, 7, 8):  # OpenCV's ExifTransform: transpose, then flip
        img = img.swapaxes(0, 1)
    if orientation in (2, 6):
        img = img[:, ::-1]
    elif orientation in (3, 7):
        img = img[::-1, ::-1]
    elif orientation in (4, 8):
        img = img[::-1]
    return np.ascontiguousarray(img)


def read_image(path: PathType, max_pixels: Optional[int] = None) -> np.ndarray:
    """Read an image upright: HxW (gray) or HxWxC (BGR / BGRA), uint8 or uint16, with its depth and alpha.

    Unlike ``cv2.IMREAD_UNCHANGED``, the EXIF orientation of a JPEG, PNG or WebP is applied (a phone photo with
    orientation 6 comes out upright, as ``cv2.imread`` shows it).

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
    return apply_orientation(img, exif_orientation(data))


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
            turned = size is not None and exif_orientation(f.read(1 << 16)) >= 5  # as read_image returns it
    except OSError as err:
        raise ImageReadError(f'{path}: cannot read ({err.strerror}).', path=path, reason='cannot read') from None
    if size is None:  # a format Pillow cannot read: decode it (within the limit)
        return read_image(path, max_pixels).shape[:2]
    check_pixels(path, size, max_pixels)
    return (size[1], size[0]) if turned else size


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
