"""Benchmark preparation (GTmod{s}/LRbicx{s}) and MATLAB-bicubic equality."""
import importlib.util
import logging
import numpy as np
import os
import pytest
import torch

from msrn_plugin.prep import PrepError
from msrn_plugin.prep.benchmark import prepare_benchmark
from msrn_plugin.prep.bicubic import bicubic_downscale, mod_crop
from msrn_plugin.utils.image_io import ImageReadError, read_image, write_image
from msrn_plugin.utils.photos import load_photo

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))


def _matlab_resize_matrix(in_len: int, scale: int) -> np.ndarray:
    """MATLAB imresize's ``contributions`` for 1/scale bicubic with antialiasing, written out independently in
    float64: kernel width 4 * scale, Keys cubic (a = -0.5), weights normalised per row, symmetric border."""
    out_len = int(np.ceil(in_len / scale))
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x * scale + 0.5 * (1 - scale)
    left = np.floor(u - 2 * scale)
    ind = left[:, None] + np.arange(4 * scale + 2)[None]
    d = np.abs((u[:, None] - ind) / scale)
    w = np.where(d <= 1, 1.5 * d**3 - 2.5 * d**2 + 1, np.where(d <= 2, -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2, 0))
    w /= w.sum(1, keepdims=True)
    aux = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    cols = aux[(ind.astype(np.int64) - 1) % (2 * in_len)]
    mat = np.zeros((out_len, in_len))
    np.add.at(mat, (np.repeat(np.arange(out_len), ind.shape[1]), cols.ravel()), w.ravel())
    return mat


@pytest.mark.parametrize('scale', [2, 3, 4, 8])
def test_bicubic_equals_matlab_definition(scale):
    img = load_photo('chelsea.png')[:131, :157]  # odd sizes: the symmetric border is exercised on both sides
    hr = mod_crop(img, scale)
    ref = np.einsum('oh,hwc,pw->opc', _matlab_resize_matrix(hr.shape[0], scale), hr.astype(np.float64),
                    _matlab_resize_matrix(hr.shape[1], scale))
    out = bicubic_downscale(hr, scale)
    assert out.shape == (hr.shape[0] // scale, hr.shape[1] // scale, 3) and out.dtype == np.uint8
    expected = np.clip(np.round(ref), 0, 255)
    # float32 against float64: identical except where the exact value sits on a .5 rounding boundary
    assert np.abs(out.astype(np.int16) - expected).max() <= 1
    assert np.mean(out != expected) < 1e-3
    # constant images stay constant (weights sum to one, border included)
    assert np.all(bicubic_downscale(np.full((24, 40), 77, np.uint8), scale) == 77)


def test_bicubic_is_basicsr_imresize():
    from basicsr.utils.matlab_functions import imresize
    hr = load_photo('coins.png', color=False)[:120, :96]
    ref = imresize(hr.astype(np.float64) / 255., 1 / 4) * 255.
    np.testing.assert_array_equal(bicubic_downscale(hr, 4), np.clip(np.round(ref), 0, 255).astype(np.uint8))


@pytest.fixture
def hr_dir(tmp_path):
    folder = tmp_path / 'Set5_HR'
    write_image(folder / 'baby.png', load_photo('chelsea.png')[:101, :131])
    write_image(folder / 'bird.bmp', load_photo('rocket.jpg')[:97, :75])
    write_image(folder / 'moon.png', load_photo('moon.png', color=False)[:64, :90])  # gray stays gray
    (folder / 'readme.txt').write_text('not an image')
    return folder


def test_layout_and_contents(hr_dir, tmp_path):
    out = tmp_path / 'Set5'
    result = prepare_benchmark(str(hr_dir), str(out), scales=(2, 3, 4, 8), progress=False)
    assert result['images'] == ['baby', 'bird', 'moon']
    assert sorted(os.listdir(out)) == sorted([f'GTmod{s}' for s in (2, 3, 4, 8)] + [f'LRbicx{s}' for s in (2, 3, 4, 8)])
    for s in (2, 3, 4, 8):
        assert sorted(os.listdir(out / f'GTmod{s}')) == sorted(os.listdir(out / f'LRbicx{s}')) == [
            'baby.png', 'bird.png', 'moon.png']
        for name in ('baby', 'bird', 'moon'):
            src = read_image(next(hr_dir.glob(f'{name}.*')))
            gt = read_image(out / f'GTmod{s}' / f'{name}.png')
            lr = read_image(out / f'LRbicx{s}' / f'{name}.png')
            h, w = src.shape[:2]
            np.testing.assert_array_equal(gt, src[:h - h % s, :w - w % s])
            assert lr.shape[:2] == (h // s, w // s) and lr.ndim == src.ndim
            np.testing.assert_array_equal(lr, bicubic_downscale(gt, s))
    assert read_image(out / 'GTmod3' / 'baby.png').shape == (99, 129, 3)


def test_basicsr_test_dataset_reads_it(hr_dir, tmp_path):
    from basicsr.data.paired_image_dataset import PairedImageDataset
    prepare_benchmark(str(hr_dir), str(tmp_path / 'Set5'), scales=(3, ), progress=False)
    ds = PairedImageDataset({'dataroot_gt': str(tmp_path / 'Set5' / 'GTmod3'),
                             'dataroot_lq': str(tmp_path / 'Set5' / 'LRbicx3'), 'io_backend': {'type': 'disk'},
                             'scale': 3, 'phase': 'val'})
    item = next(ds[i] for i in range(len(ds)) if ds.paths[i]['gt_path'].endswith('moon.png'))  # gray -> 3 channels
    assert item['gt'].shape == (3, 63, 90) and item['lq'].shape == (3, 21, 30)
    assert torch.equal(item['gt'][0], item['gt'][2])


def test_bad_inputs(tmp_path, hr_dir):
    with pytest.raises(PrepError) as err:
        prepare_benchmark(str(tmp_path / 'nowhere'), str(tmp_path / 'out'), progress=False)
    assert str(err.value) == (f'{tmp_path}/nowhere: input folder not found; pass the folder that holds the HR images '
                              '(e.g. Set5/HR or Set5/original).')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(PrepError, match='empty: no image file found'):
        prepare_benchmark(str(tmp_path / 'empty'), str(tmp_path / 'out'), progress=False)
    write_image(hr_dir / 'baby.jpg', load_photo('coins.png')[:40, :40])
    with pytest.raises(PrepError, match=r'baby.png and .*baby.jpg would both become baby.png; keep one.'):
        prepare_benchmark(str(hr_dir), str(tmp_path / 'out'), progress=False)
    os.remove(hr_dir / 'baby.jpg')
    write_image(hr_dir / 'tiny.png', load_photo('coins.png')[:5, :40])
    with pytest.raises(PrepError) as err:
        prepare_benchmark(str(hr_dir), str(tmp_path / 'out'), progress=False)
    assert str(err.value) == f'{hr_dir}/tiny.png: 40x5 is smaller than the x8 scale; remove it or drop that scale.'
    (hr_dir / 'tiny.png').write_bytes(b'')
    with pytest.raises(ImageReadError, match='tiny.png: empty file'):
        prepare_benchmark(str(hr_dir), str(tmp_path / 'out'), progress=False)
    assert not (tmp_path / 'out').exists()  # everything is checked before anything is written


def test_script(hr_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    spec = importlib.util.spec_from_file_location('prepare_benchmark_script',
                                                  os.path.join(REPO_ROOT, 'scripts', 'prepare_benchmark.py'))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(['--input', str(hr_dir), '--output', str(tmp_path / 'B'), '--scales', '4', '--no-progress']) == 0
    assert f'x4: 3 images in {tmp_path}/B/GTmod4 and {tmp_path}/B/LRbicx4' in caplog.text
    assert script.main(['--input', str(tmp_path / 'nowhere'), '--output', str(tmp_path / 'C')]) == 2
    assert 'input folder not found' in caplog.text
