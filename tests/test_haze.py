"""Haze synthesis: scattering-model physics, depth proxies, RESIDE-named output, determinism, atomic writes, CLI."""
import csv
import cv2
import importlib.util
import numpy as np
import os
import pytest
import re

from msrn_plugin.data.reside_dataset import pair_reside_names
from msrn_plugin.prep import PrepError
from msrn_plugin.prep.haze import (BETA_RANGE, DEPTH_RANGE, apply_haze, depth_proxy, synthesize_haze_folder,
                                   synthesize_haze_pairs, transmission)
from msrn_plugin.utils.image_io import ImageReadError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def clear_dir(tmp_path, photo_bgr):
    folder = tmp_path / 'clear_in'
    folder.mkdir()
    cv2.imwrite(str(folder / 'astro.png'), photo_bgr[:48, :64])
    cv2.imwrite(str(folder / 'motor_left.png'), photo_bgr[200:240, 300:356])
    cv2.imwrite(str(folder / 'gray.png'), cv2.cvtColor(photo_bgr[100:132, :40], cv2.COLOR_BGR2GRAY))
    return folder


def read_params(folder):
    with open(folder / 'haze_params.csv', newline='') as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- physics
@pytest.mark.parametrize('mode', ['vertical', 'luminance', 'uniform'])
def test_transmission_in_unit_interval_and_hazy_in_range(photo_bgr, mode):
    clear = photo_bgr[:64, :80].astype(np.float32) / 255.
    depth = depth_proxy(clear, mode)
    assert depth.shape == (64, 80) and depth.min() >= DEPTH_RANGE[0] - 1e-6 and depth.max() <= DEPTH_RANGE[1] + 1e-6
    for beta in (0., BETA_RANGE[0], BETA_RANGE[1], 5.):
        t = transmission(depth, beta)
        assert t.min() > 0 and t.max() <= 1
        for airlight in (0.7, 1.0):
            hazy = apply_haze(clear, airlight, t)
            assert hazy.shape == clear.shape and hazy.min() >= 0 and hazy.max() <= 1
    assert np.array_equal(transmission(depth, 0.), np.ones_like(depth))


def test_scattering_model_values():
    clear = np.array([[[0.2, 0.5, 0.9]]], np.float32)
    depth = np.array([[0.5]], np.float32)
    t = transmission(depth, 1.2)
    np.testing.assert_allclose(t, np.exp(-0.6), rtol=1e-6)
    np.testing.assert_allclose(apply_haze(clear, 0.8, t), clear * np.exp(-0.6) + 0.8 * (1 - np.exp(-0.6)), rtol=1e-6)
    np.testing.assert_allclose(apply_haze(clear, 0.8, np.ones((1, 1), np.float32)), clear)  # t = 1: no haze
    np.testing.assert_allclose(apply_haze(clear, 0.8, transmission(depth, 80.)), 0.8, atol=1e-6)  # dense: airlight
    # more scattering: closer to the airlight
    distances = [np.abs(apply_haze(clear, 0.8, transmission(depth, b)) - 0.8).max() for b in (0.5, 1., 2.)]
    assert distances[0] > distances[1] > distances[2]
    with pytest.raises(PrepError, match=re.escape('transmission needs beta >= 0 and depth >= 0, got beta=-1')):
        transmission(depth, -1)


def test_depth_proxies():
    img = np.zeros((5, 3), np.uint8)
    vertical = depth_proxy(img, 'vertical', (0.2, 1.0))
    np.testing.assert_allclose(vertical[:, 0], [1.0, 0.8, 0.6, 0.4, 0.2], rtol=1e-6)  # top far, bottom near
    assert np.array_equal(vertical[:, 0], vertical[:, 2])
    assert np.array_equal(depth_proxy(img, 'uniform', (0.2, 0.7)), np.full((5, 3), 0.7, np.float32))
    bright_top = np.concatenate([np.full((20, 20), 1., np.float32), np.zeros((20, 20), np.float32)])
    lum = depth_proxy(bright_top, 'luminance', (0.2, 1.0))
    assert lum[0, 0] == pytest.approx(1.0) and lum[-1, 0] == pytest.approx(0.2)  # bright counts as far
    with pytest.raises(PrepError, match=re.escape("depth_mode must be one of ('vertical', 'luminance', 'uniform'), "
                                                  "got 'stereo'.")):
        depth_proxy(img, 'stereo')


# ---------------------------------------------------------------- writing pairs
def test_folder_output_layout_names_and_reconstruction(tmp_path, clear_dir):
    out = tmp_path / 'haze'
    records = synthesize_haze_folder(clear_dir, out, num_per_image=2, seed=3)
    assert sorted(os.listdir(out)) == ['clear', 'haze_params.csv', 'hazy']
    assert sorted(os.listdir(out / 'clear')) == ['astro.png', 'gray.png', 'motor_left.png']
    hazy_names = sorted(os.listdir(out / 'hazy'))
    assert len(hazy_names) == 6 and len(records) == 6
    # RESIDE naming: every hazy image pairs with its clear image
    pairs = pair_reside_names(hazy_names, os.listdir(out / 'clear'))
    assert sorted(c for _, c in pairs) == ['astro.png'] * 2 + ['gray.png'] * 2 + ['motor_left.png'] * 2
    rows = read_params(out)
    assert [r['hazy'] for r in rows] == [r.hazy for r in records]
    for row in rows:
        stem, a, beta = re.fullmatch(r'hazy/(.+)_(\d\.\d\d)_(\d\.\d\d\d)\.png', row['hazy']).groups()
        assert (a, beta) == (row['airlight'], row['beta']) and row['clear'] == f'clear/{stem}.png'
        assert 0.7 <= float(a) <= 1.0 and 0.6 <= float(beta) <= 1.8
        assert 0 < float(row['t_min']) <= float(row['t_max']) <= 1
        # the hazy file is the model applied to the clear file with the recorded parameters
        clear = cv2.imread(str(out / row['clear']), cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.
        hazy = cv2.imread(str(out / row['hazy']), cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.
        expected = apply_haze(clear, float(a), transmission(depth_proxy(clear, 'vertical'), float(beta)))
        assert hazy.shape == clear.shape and np.abs(hazy - expected).max() <= 0.5 / 255 + 1e-6
    assert cv2.imread(str(out / 'hazy' / [n for n in hazy_names if n.startswith('gray')][0]),
                      cv2.IMREAD_UNCHANGED).ndim == 2  # grey stays grey


def test_deterministic_per_image(tmp_path, clear_dir, photo_bgr):
    first = synthesize_haze_folder(clear_dir, tmp_path / 'a', num_per_image=2, seed=0)
    again = synthesize_haze_folder(clear_dir, tmp_path / 'b', num_per_image=2, seed=0)
    assert first == again
    for name in os.listdir(tmp_path / 'a' / 'hazy'):
        assert (tmp_path / 'a' / 'hazy' / name).read_bytes() == (tmp_path / 'b' / 'hazy' / name).read_bytes()
    other_seed = synthesize_haze_folder(clear_dir, tmp_path / 'c', num_per_image=2, seed=1)
    assert {r.hazy for r in other_seed}.isdisjoint({r.hazy for r in first})
    # an image's haze does not depend on the other images
    alone = synthesize_haze_pairs([('astro', photo_bgr[:48, :64])], tmp_path / 'd', num_per_image=2, seed=0)
    assert alone == [r for r in first if r.clear == 'clear/astro.png']


def test_sixteen_bit_and_alpha(tmp_path, photo_bgr):
    img16 = photo_bgr[:16, :16].astype(np.uint16) * 257
    bgra = np.dstack([photo_bgr[:16, :16], np.full((16, 16), 128, np.uint8)])
    synthesize_haze_pairs([('deep', img16), ('alpha', bgra)], tmp_path / 'o', beta_range=(1., 1.))
    hazy16 = cv2.imread(str(next((tmp_path / 'o' / 'hazy').glob('deep_*'))), cv2.IMREAD_UNCHANGED)
    assert hazy16.dtype == np.uint16 and hazy16.shape == (16, 16, 3)
    assert cv2.imread(str(tmp_path / 'o' / 'clear' / 'alpha.png'), cv2.IMREAD_UNCHANGED).shape == (16, 16, 3)


def test_existing_output_is_kept_and_failures_leave_nothing(tmp_path, clear_dir):
    out = tmp_path / 'haze'
    out.mkdir()
    (out / 'keep.txt').write_text('mine')
    with pytest.raises(PrepError, match=re.escape(f'{out} already exists and is not empty; choose another output '
                                                  'folder or pass overwrite (--overwrite) to replace it.')):
        synthesize_haze_folder(clear_dir, out)
    assert os.listdir(out) == ['keep.txt']
    (clear_dir / 'zz_broken.png').write_bytes(b'\x89PNG broken')
    fresh = tmp_path / 'fresh'
    with pytest.raises(ImageReadError, match=re.escape(str(clear_dir / 'zz_broken.png'))):
        synthesize_haze_folder(clear_dir, fresh)
    assert sorted(os.listdir(tmp_path)) == ['clear_in', 'haze']  # no output, no partial folder
    with pytest.raises(ImageReadError):
        synthesize_haze_folder(clear_dir, out, overwrite=True)
    assert os.listdir(out) == ['keep.txt']  # the old content survives a failed overwrite
    (clear_dir / 'zz_broken.png').unlink()
    synthesize_haze_folder(clear_dir, out, overwrite=True)
    assert sorted(os.listdir(out)) == ['clear', 'haze_params.csv', 'hazy']


@pytest.mark.parametrize('kwargs, message', [
    ({'airlight_range': (0., 1.)}, 'airlight_range must be within (0, 1], got (0.0, 1.0).'),
    ({'airlight_range': (0.8, 1.2)}, 'airlight_range must satisfy 0.0 <= low <= high and <= 1.0, got (0.8, 1.2).'),
    ({'beta_range': (2., 1.)}, 'beta_range must satisfy 0.0 <= low <= high, got (2.0, 1.0).'),
    ({'beta_range': (1., )}, 'beta_range must be two numbers (low, high), got (1.0,).'),
    ({'depth_range': (-0.1, 1.)}, 'depth_range must satisfy 0.0 <= low <= high, got (-0.1, 1.0).'),
    ({'depth_mode': 'stereo'}, "depth_mode must be one of ('vertical', 'luminance', 'uniform'), got 'stereo'."),
    ({'num_per_image': 0}, 'num_per_image must be >= 1, got 0.'),
])
def test_bad_arguments(tmp_path, clear_dir, kwargs, message):
    with pytest.raises(PrepError, match=re.escape(message) + '$'):
        synthesize_haze_folder(clear_dir, tmp_path / 'out', **kwargs)
    assert not (tmp_path / 'out').exists()


def test_input_errors(tmp_path):
    with pytest.raises(PrepError, match=re.escape(f'{tmp_path / "nope"}: not a folder; give the folder of clear '
                                                  'images.')):
        synthesize_haze_folder(tmp_path / 'nope', tmp_path / 'out')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(PrepError, match='no image files'):
        synthesize_haze_folder(tmp_path / 'empty', tmp_path / 'out')
    with pytest.raises(PrepError, match=re.escape("two clear images share the name 'a'; rename one")):
        synthesize_haze_pairs([('a', np.zeros((4, 4), np.uint8)), ('a', np.zeros((4, 4), np.uint8))], tmp_path / 'o')
    assert not (tmp_path / 'o').exists()


def test_script(tmp_path, clear_dir, caplog):
    spec = importlib.util.spec_from_file_location('synthesize_haze', os.path.join(REPO, 'scripts',
                                                                                  'synthesize_haze.py'))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / 'cli'
    assert script.main(['--input', str(clear_dir), '--output', str(out), '--num-per-image', '3', '--beta', '1', '1',
                        '--depth-mode', 'uniform']) == 0
    rows = read_params(out)
    assert len(rows) == 9 and {r['beta'] for r in rows} == {'1.000'} and {r['depth_mode'] for r in rows} == {'uniform'}
    assert rows[0]['t_min'] == rows[0]['t_max'] == f'{np.exp(-1.0):.4f}'
    assert script.main(['--input', str(clear_dir), '--output', str(out)]) == 1
    assert 'already exists and is not empty' in caplog.text
