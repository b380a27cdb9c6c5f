"""read_image honours EXIF orientation (JPEG, PNG eXIf, WebP) as cv2.imread does, keeping depth and alpha."""
import cv2
import numpy as np
import pytest
import struct
import zlib

from msrn_plugin.prep.benchmark import prepare_benchmark
from msrn_plugin.utils.image_io import apply_orientation, exif_orientation, read_image


def exif_tiff(orientation: int, order: str = '<') -> bytes:
    """A minimal Exif (TIFF) block: IFD0 with one entry, Orientation (0x0112, SHORT) = ``orientation``."""
    header = (b'II*\x00' if order == '<' else b'MM\x00*') + struct.pack(order + 'I', 8)
    entry = struct.pack(order + 'HHIH', 0x0112, 3, 1, orientation) + b'\x00\x00'
    return header + struct.pack(order + 'H', 1) + entry + struct.pack(order + 'I', 0)


def jpeg_with_orientation(img: np.ndarray, orientation: int, order: str = '<') -> bytes:
    """A cv2-encoded JPEG with an APP1 Exif segment spliced in right after SOI, as cameras write it."""
    data = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    payload = b'Exif\x00\x00' + exif_tiff(orientation, order)
    return data[:2] + b'\xff\xe1' + struct.pack('>H', len(payload) + 2) + payload + data[2:]


def png_with_orientation(img: np.ndarray, orientation: int) -> bytes:
    """A cv2-encoded PNG with an eXIf chunk after IHDR."""
    data = cv2.imencode('.png', img)[1].tobytes()
    body = exif_tiff(orientation, '>')
    chunk = struct.pack('>I', len(body)) + b'eXIf' + body + struct.pack('>I', zlib.crc32(b'eXIf' + body))
    return data[:33] + chunk + data[33:]


@pytest.fixture
def photo(photo_bgr):
    return np.ascontiguousarray(photo_bgr[100:164, 50:146])  # 64x96, landscape


def test_phone_jpeg_with_orientation_6_comes_out_upright(tmp_path, photo):
    path = tmp_path / 'phone.jpg'
    path.write_bytes(jpeg_with_orientation(photo, 6))
    stored = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
    assert stored.shape == (64, 96, 3)  # what read_image returned before: sideways
    img = read_image(path)
    assert img.shape == (96, 64, 3)
    np.testing.assert_array_equal(img, cv2.rotate(stored, cv2.ROTATE_90_CLOCKWISE))
    np.testing.assert_array_equal(img, cv2.imread(str(path)))  # what cv2.imread shows


@pytest.mark.parametrize('order', ['<', '>'])
@pytest.mark.parametrize('orientation', range(1, 9))
def test_every_orientation_matches_opencv(tmp_path, photo, orientation, order):
    path = tmp_path / 'x.jpg'
    path.write_bytes(jpeg_with_orientation(photo, orientation, order))
    assert exif_orientation(path.read_bytes()) == orientation
    np.testing.assert_array_equal(read_image(path), cv2.imread(str(path), cv2.IMREAD_COLOR))


def test_gray_jpeg_orientation_8(tmp_path, photo):
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    path = tmp_path / 'gray.jpg'
    path.write_bytes(jpeg_with_orientation(gray, 8))
    img = read_image(path)
    assert img.shape == (96, 64)
    np.testing.assert_array_equal(img, cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))


def test_16_bit_png_with_alpha_keeps_depth_and_alpha(tmp_path, photo):
    rgba16 = np.dstack([photo, np.arange(64 * 96, dtype=np.uint16).reshape(64, 96) % 256]).astype(np.uint16) * 257
    rgba16[0, 0] = (1, 2, 3, 65535)  # a value 8 bits cannot hold
    path = tmp_path / 'rgba16.png'
    path.write_bytes(png_with_orientation(rgba16, 6))
    img = read_image(path)
    assert img.dtype == np.uint16 and img.shape == (96, 64, 4)
    np.testing.assert_array_equal(img, np.rot90(rgba16, k=-1))  # clockwise, exact
    assert tuple(img[0, -1]) == (1, 2, 3, 65535)


def test_tiff_is_not_turned_twice(tmp_path, photo):
    """OpenCV's TIFF decoder applies the orientation tag itself, even with IMREAD_UNCHANGED."""
    Image = pytest.importorskip('PIL.Image')
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / 'x.tif'
    Image.fromarray(photo[..., ::-1]).save(path, exif=exif.tobytes())
    np.testing.assert_array_equal(read_image(path), cv2.rotate(photo, cv2.ROTATE_90_CLOCKWISE))  # lossless


def test_no_or_broken_exif_is_orientation_1(photo):
    assert exif_orientation(cv2.imencode('.jpg', photo)[1].tobytes()) == 1
    assert exif_orientation(cv2.imencode('.png', photo)[1].tobytes()) == 1
    assert exif_orientation(b'\xff\xd8\xff\xe1\x00\x10Exif\x00\x00II*\x00\xff\xff\xff\xff') == 1  # IFD out of range
    assert exif_orientation(b'not an image') == 1
    assert apply_orientation(photo, 1) is photo


def test_benchmark_preparation_reads_photos_upright(tmp_path, photo):
    (tmp_path / 'HR').mkdir()
    (tmp_path / 'HR' / 'phone.jpg').write_bytes(jpeg_with_orientation(photo, 6))
    prepare_benchmark(str(tmp_path / 'HR'), str(tmp_path / 'out'), scales=[2], progress=False)
    gt = cv2.imread(str(tmp_path / 'out' / 'GTmod2' / 'phone.png'))
    np.testing.assert_array_equal(gt, cv2.imread(str(tmp_path / 'HR' / 'phone.jpg')))


def test_webp_orientation_matches_opencv(tmp_path, photo):
    Image = pytest.importorskip('PIL.Image')
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / 'x.webp'
    Image.fromarray(photo[..., ::-1]).save(path, 'WEBP', exif=exif.tobytes())
    img = read_image(path)
    assert img.shape == (96, 64, 3)
    np.testing.assert_array_equal(img, cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR))


def test_image_size_agrees_with_read_image(tmp_path, photo):
    from msrn_plugin.utils.image_io import image_size

    for orientation in (1, 3, 6, 8):
        path = tmp_path / f'o{orientation}.jpg'
        path.write_bytes(jpeg_with_orientation(photo, orientation))
        assert image_size(path) == read_image(path).shape[:2]
