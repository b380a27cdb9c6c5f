"""Catalogue of bad images for msrn_plugin.utils.image_io and the folder runner msrn_plugin.inference.batch.

Bad files are refused with a message naming the file; grayscale, RGBA, 16-bit, unicode and spaces round-trip
exactly; a write never leaves a partial file under its final name; a folder run reports every failure, finishes the
rest and has a non-zero exit code.
"""
import cv2
import numpy as np
import os
import pytest

from msrn_plugin.inference.batch import BatchReport, collect_inputs, process_folder
from msrn_plugin.utils import image_io
from msrn_plugin.utils.image_io import ImageReadError, image_size, is_image_file, read_image, write_image


@pytest.fixture
def crop(photo_bgr):
    return np.ascontiguousarray(photo_bgr[40:73, 60:101])  # 33x41: odd, not divisible by 2, 3, 4 or 8


def _encoded(img, ext):
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def _bad_files(folder, crop):
    """The unreadable inputs of the catalogue, by name: (file, expected message after '<path>: ')."""
    png, jpg = _encoded(crop, '.png'), _encoded(crop, '.jpg')
    files = {
        'zero_byte.png': (b'', 'empty file (0 bytes); re-copy or remove it.'),
        'truncated.png': (png[:len(png) // 2], 'not a readable image'),
        'truncated.jpg': (jpg[:len(jpg) * 2 // 3], 'not a readable image'),
        'corrupt.png': (b'\x89PNG\r\n\x1a\n' + bytes(range(256)) * 4, 'not a readable image'),
        'text_named.png': (b'this is not an image\n', 'not a readable image'),
    }
    for name, (data, _) in files.items():
        with open(os.path.join(folder, name), 'wb') as f:
            f.write(data)
    return {name: message for name, (_, message) in files.items()}


def test_bad_files_are_refused_naming_the_file(tmp_path, crop):
    for name, message in _bad_files(str(tmp_path), crop).items():
        path = os.path.join(tmp_path, name)
        with pytest.raises(ImageReadError) as err:
            read_image(path)
        assert str(err.value).startswith(f'{path}: {message}')
    with pytest.raises(ImageReadError, match=r'missing.png: cannot read \(No such file or directory\)\.'):
        read_image(tmp_path / 'missing.png')
    with pytest.raises(ImageReadError, match='not a readable image'):
        image_size(tmp_path / 'text_named.png')


@pytest.mark.parametrize('kind', ['gray', 'rgba', 'gray16', 'rgb16', 'rgba16'])
def test_gray_rgba_and_16_bit_round_trip_exactly(tmp_path, crop, kind):
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    alpha = np.linspace(0, 255, crop.shape[0] * crop.shape[1]).reshape(crop.shape[:2]).astype(np.uint8)
    images = {
        'gray': gray, 'rgba': np.dstack([crop, alpha]), 'gray16': gray.astype(np.uint16) * 257 + 3,
        'rgb16': crop.astype(np.uint16) * 257, 'rgba16': np.dstack([crop, alpha]).astype(np.uint16) * 256}
    img = images[kind]
    path = tmp_path / f'{kind}.png'
    write_image(path, img)
    back = read_image(path)
    assert back.dtype == img.dtype and back.shape == img.shape and np.array_equal(back, img)
    assert image_size(path) == (33, 41)


def test_unicode_and_spaces_in_paths(tmp_path, crop):
    path = tmp_path / 'dossier été' / 'фото 1 ☃.png'
    write_image(path, crop)
    assert np.array_equal(read_image(path), crop) and image_size(path) == (33, 41)
    assert os.listdir(path.parent) == ['фото 1 ☃.png']
    assert is_image_file('A.PNG') and is_image_file(path) and not is_image_file('notes.txt')


def test_tiny_and_odd_sized_images_read_as_stored(tmp_path):
    for shape in [(1, 1), (1, 7, 3), (3, 2, 3), (33, 41, 4)]:
        img = (np.arange(np.prod(shape)) % 251).astype(np.uint8).reshape(shape)
        write_image(tmp_path / 'x.png', img)
        assert np.array_equal(read_image(tmp_path / 'x.png'), img)


@pytest.mark.parametrize('name, img, message', [
    ('out.jpg', np.zeros((8, 8), np.uint16), '.jpg cannot hold 16-bit images (OpenCV would clip them to 8 bits)'),
    ('out.jpg', np.zeros((8, 8, 4), np.uint8), '.jpg has no alpha channel; write .png'),
    ('out.png', np.zeros((8, 8, 3), np.float32), 'cannot write a float32 image of shape (8, 8, 3); convert it to'),
    ('out.xyz', np.zeros((8, 8), np.uint8), "unsupported extension '.xyz'; use one of .png"),
], ids=['jpeg_16_bit', 'jpeg_alpha', 'float', 'unknown_extension'])
def test_unwritable_images_are_refused_and_the_old_file_kept(tmp_path, name, img, message):
    path = tmp_path / name
    path.write_bytes(b'previous output')
    with pytest.raises(OSError) as err:
        write_image(path, img)
    assert str(err.value).startswith(f'{path}: {message}')
    assert path.read_bytes() == b'previous output' and os.listdir(tmp_path) == [name]


def test_a_failing_write_leaves_nothing_under_the_final_name(tmp_path, crop, monkeypatch):
    """A failure after the bytes are written (disk full, kill, ...) leaves no partial output and no temporary."""

    def fail(src, dst):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(image_io.os, 'replace', fail)
    with pytest.raises(OSError, match='No space left on device'):
        write_image(tmp_path / 'out.png', crop)
    assert os.listdir(tmp_path) == []


def _upscale_nearest(out_dir):
    """A stand-in for a per-image job: read, process, write atomically."""

    def job(path):
        img = read_image(path)
        out = cv2.resize(img, (img.shape[1] * 2, img.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
        write_image(os.path.join(out_dir, os.path.basename(path)), out)
        return out.shape

    return job


def test_folder_run_reports_each_failure_finishes_the_rest_and_exits_non_zero(tmp_path, crop):
    inp, out = tmp_path / 'in put', tmp_path / 'out'
    inp.mkdir()
    bad = _bad_files(str(inp), crop)
    good = ['a_good.png', 'm_gray.png', 'z_good.jpg']
    write_image(inp / 'a_good.png', crop)
    write_image(inp / 'm_gray.png', cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY))
    write_image(inp / 'z_good.jpg', crop)
    (inp / 'README.txt').write_text('not an image')
    (inp / '.z_good.png.1234.tmp').write_bytes(b'left by a killed write')  # hidden: ignored

    report = process_folder(str(inp), _upscale_nearest(str(out)), desc='Test', show_progress=False)
    assert report.succeeded == [str(inp / n) for n in good]
    assert report.results[0] == (66, 82, 3) and report.results[1] == (66, 82)
    assert [os.path.basename(path) for path, _ in report.failed] == sorted(bad)
    for path, message in report.failed:
        assert message.startswith(bad[os.path.basename(path)])
    assert report.skipped == [(str(inp / 'README.txt'), 'not an image file (extension .txt)')]
    assert report.exit_code == 1
    assert sorted(os.listdir(out)) == good  # outputs for every good file, none for the bad ones, no temporaries
    summary = report.summary()
    assert summary.startswith('3 of 8 images processed, 5 failed, 1 files skipped (not images).\nFailed:\n  ')
    assert f'  {inp / "zero_byte.png"}: empty file (0 bytes); re-copy or remove it.\n' in summary
    assert f'Skipped:\n  {inp / "README.txt"}: not an image file (extension .txt)' in summary


def test_folder_run_exit_codes_for_success_empty_and_missing_input(tmp_path, crop):
    (tmp_path / 'ok').mkdir()
    write_image(tmp_path / 'ok' / 'a.png', crop)
    report = process_folder(tmp_path / 'ok', read_image, show_progress=False)
    assert report.exit_code == 0 and report.failed == [] and report.summary().startswith('1 of 1 images processed')
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'notes.md').write_text('x')
    report = process_folder(tmp_path / 'empty', read_image, show_progress=False)
    assert report.exit_code == 1 and 'No image to process: check the input path and the file extensions.' in \
        report.summary()
    with pytest.raises(FileNotFoundError, match='nowhere: no such file or folder; check the input path.'):
        process_folder(tmp_path / 'nowhere', read_image)
    single = process_folder(tmp_path / 'ok' / 'a.png', read_image, show_progress=False)
    assert single.succeeded == [str(tmp_path / 'ok' / 'a.png')]


def test_folder_run_recursion_lists_and_unexpected_errors(tmp_path, crop):
    write_image(tmp_path / 'top.png', crop)
    write_image(tmp_path / 'sub' / 'deep.png', crop)
    assert collect_inputs(str(tmp_path))[0] == [str(tmp_path / 'top.png')]
    assert collect_inputs(str(tmp_path), recursive=True)[0] == [str(tmp_path / 'sub' / 'deep.png'),
                                                                str(tmp_path / 'top.png')]

    def buggy(path):
        raise KeyError('params')

    report = process_folder([tmp_path / 'top.png'], buggy, show_progress=False)
    assert report.failed == [(str(tmp_path / 'top.png'), "KeyError: 'params'")]

    def interrupted(path):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        process_folder([tmp_path / 'top.png'], interrupted, show_progress=False)
    assert BatchReport().exit_code == 1
