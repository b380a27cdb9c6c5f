"""GaussianNoiseDataset: sigma handling, deterministic validation noise (KAIR's or SwinIR's), gray/colour, LMDB."""
import copy
import cv2
import numpy as np
import pytest
import re
import torch
from basicsr.data import build_dataset
from basicsr.utils.lmdb_util import make_lmdb_from_imgs

from msrn_plugin.data.noise_dataset import GaussianNoiseDataset, NoiseLevel, add_gaussian_noise, noise_seed
from msrn_plugin.utils.image_io import ImageReadError
from msrn_plugin.utils.photos import load_photo


@pytest.fixture
def clean_dir(tmp_path, photo_bgr):
    """Three 64x48 colour crops: a.png and b.png are identical, c.png differs."""
    folder = tmp_path / 'clean'
    folder.mkdir()
    crop = photo_bgr[100:164, 200:248]
    cv2.imwrite(str(folder / 'a.png'), crop)
    cv2.imwrite(str(folder / 'b.png'), crop)
    cv2.imwrite(str(folder / 'c.png'), photo_bgr[300:364, 100:148])
    return folder


def make_opt(folder, phase='val', **extra):
    opt = {'name': 'noisy', 'type': 'GaussianNoiseDataset', 'dataroot_gt': str(folder), 'io_backend': {'type': 'disk'},
           'sigma': 25, 'phase': phase}
    opt.update(extra)
    return opt


def by_name(dataset):
    return {item['gt_path'].split('/')[-1].split('.')[0]: item for item in (dataset[i] for i in range(len(dataset)))}


# ---------------------------------------------------------------- noise levels
def test_noise_level_fixed_range_choices():
    assert NoiseLevel.from_opt({'sigma': 25}).sample(np.random.RandomState(0)) == 25.0
    rng = np.random.RandomState(0)
    draws = [NoiseLevel.from_opt({'sigma_range': [5, 55]}).sample(rng) for _ in range(200)]
    assert 5 <= min(draws) < 10 and 50 < max(draws) <= 55 and len(set(draws)) == 200
    draws = {NoiseLevel.from_opt({'sigma_choices': [15, 25, 50]}).sample(rng) for _ in range(100)}
    assert draws == {15.0, 25.0, 50.0}
    assert NoiseLevel.from_opt({'sigma_range': [0, 0]}).sample(rng) == 0.0


@pytest.mark.parametrize('opt, message', [
    ({}, 'ds: set exactly one of sigma (fixed, e.g. 25), sigma_range (blind, e.g. [0, 55]) or sigma_choices '
         '(e.g. [15, 25, 50]), on the 0-255 scale; got none.'),
    ({'sigma': 15, 'sigma_range': [0, 55]}, 'ds: set exactly one of sigma (fixed, e.g. 25), sigma_range (blind, e.g. '
     '[0, 55]) or sigma_choices (e.g. [15, 25, 50]), on the 0-255 scale; got sigma, sigma_range.'),
    ({'sigma': [15, 25]}, 'ds: sigma must be one number, got [15, 25]; use sigma_range: [low, high] for a uniform '
     'range or sigma_choices: [...] for a choice.'),
    ({'sigma': -5}, 'ds: sigma values must be numbers >= 0 on the 0-255 scale, got -5.'),
    ({'sigma': '25'}, "ds: sigma values must be numbers >= 0 on the 0-255 scale, got '25'."),
    ({'sigma_range': [50, 10]}, 'ds: sigma_range must be [low, high] with low <= high, got [50, 10].'),
    ({'sigma_range': [10]}, 'ds: sigma_range must be [low, high] with low <= high, got [10].'),
    ({'sigma_choices': []}, 'ds: sigma_choices must be a non-empty list of numbers, got [].'),
])
def test_noise_level_errors(opt, message):
    with pytest.raises(ValueError, match=re.escape(message) + '$'):
        NoiseLevel.from_opt(opt, 'ds')


# ---------------------------------------------------------------- seeds and noise
def test_noise_seed_per_image_and_shared():
    assert noise_seed('0001.png') == noise_seed('other/dir/0001.jpg') == noise_seed('0001')
    assert noise_seed('0001.png') != noise_seed('0002.png')
    assert noise_seed('0001.png', seed=1) == (noise_seed('0001.png') + 1) % 2**32
    assert noise_seed('0001.png', 7, 'shared') == noise_seed('0002.png', 7, 'shared') == 7
    with pytest.raises(ValueError, match=re.escape("noise_seed_mode must be one of ('per_image', 'shared'), got 'x'.")):
        noise_seed('a', 0, 'x')


def test_add_gaussian_noise_draws_in_rgb_order():
    img = np.full((4, 5, 3), 0.5, np.float32)
    noisy = add_gaussian_noise(img, 25, np.random.RandomState(3))
    expected = np.random.RandomState(3).normal(0, 25 / 255., (4, 5, 3))
    np.testing.assert_allclose(noisy[..., ::-1] - 0.5, expected, atol=1e-6)  # BGR image, RGB-ordered draws
    assert noisy.dtype == np.float32


def test_validation_noise_is_deterministic_per_image(clean_dir):
    first = by_name(GaussianNoiseDataset(make_opt(clean_dir)))
    again = by_name(GaussianNoiseDataset(make_opt(clean_dir)))
    for name in 'abc':
        assert torch.equal(first[name]['lq'], again[name]['lq'])
    # a and b hold the same pixels: only the name-derived seed makes their noise differ
    assert torch.equal(first['a']['gt'], first['b']['gt'])
    noise_a, noise_b = first['a']['lq'] - first['a']['gt'], first['b']['lq'] - first['b']['gt']
    assert not torch.allclose(noise_a, noise_b)
    assert abs(float(torch.corrcoef(torch.stack([noise_a.flatten(), noise_b.flatten()]))[0, 1])) < 0.05
    # another base seed, other noise
    other = by_name(GaussianNoiseDataset(make_opt(clean_dir, noise_seed=1)))
    assert not torch.allclose(other['a']['lq'], first['a']['lq'])


def kair_noisy(path, sigma):
    """KAIR's main_test_*.py: util.imread_uint (RGB), uint2single, np.random.seed(0), += normal(..., img.shape)."""
    img_L = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.
    np.random.seed(seed=0)
    img_L += np.random.normal(0, sigma / 255., img_L.shape)
    return img_L.transpose(2, 0, 1)  # CHW RGB, as the network sees it


def swinir_noisy(path, sigma):
    """SwinIR's main_test_swinir.py (color_dn): cv2.imread (BGR) / 255, np.random.seed(0), + normal(..., shape),
    then HWC-BGR to CHW-RGB."""
    img_gt = cv2.imread(str(path), cv2.IMREAD_COLOR).astype(np.float32) / 255.
    np.random.seed(seed=0)
    img_lq = img_gt + np.random.normal(0, sigma / 255., img_gt.shape)
    return np.transpose(img_lq[:, :, [2, 1, 0]], (2, 0, 1)).astype(np.float32)


@pytest.mark.parametrize('order, reference, other', [('rgb', kair_noisy, swinir_noisy),
                                                      ('bgr', swinir_noisy, kair_noisy)], ids=['kair', 'swinir'])
def test_shared_seed_reproduces_kair_or_swinir_noise(clean_dir, order, reference, other):
    """noise_seed_mode shared: noise_channel_order rgb gives KAIR's noisy inputs, bgr SwinIR's; they differ."""
    opt = make_opt(clean_dir, sigma=50, noise_seed_mode='shared')
    if order == 'bgr':
        opt['noise_channel_order'] = 'bgr'
    items = by_name(GaussianNoiseDataset(opt))
    for name in 'ac':
        lq = items[name]['lq'].numpy()
        np.testing.assert_allclose(lq, reference(clean_dir / f'{name}.png', 50), rtol=0, atol=1e-6)
        assert np.abs(lq - other(clean_dir / f'{name}.png', 50)).max() > 0.1  # the other project's noise is not this
    assert torch.equal(items['a']['lq'], items['b']['lq'])  # same shape and seed: same noise, as in both scripts


def test_bad_noise_channel_order(clean_dir):
    with pytest.raises(ValueError) as err:
        GaussianNoiseDataset(make_opt(clean_dir, noise_channel_order='RGB'))
    assert str(err.value) == ("noisy: noise_channel_order must be 'rgb' (KAIR's test noise) or 'bgr' (SwinIR's), got "
                              "'RGB'.")


def test_noise_statistics_and_no_clipping(tmp_path):
    folder = tmp_path / 'clean'
    folder.mkdir()
    cv2.imwrite(str(folder / 'bw.png'), np.concatenate([np.zeros((64, 128), np.uint8), np.full((64, 128), 255,
                                                                                                   np.uint8)]))
    item = GaussianNoiseDataset(make_opt(folder, sigma=50))[0]
    noise = (item['lq'] - item['gt']).numpy()
    assert item['lq'].shape == (3, 128, 128) and item['sigma'] == 50.0
    assert abs(noise.std() - 50 / 255.) < 0.01 * 50 / 255. * 3 and abs(noise.mean()) < 0.005
    assert item['lq'].min() < -0.2 and item['lq'].max() > 1.2  # not clipped by default (KAIR/SwinIR)
    clipped = GaussianNoiseDataset(make_opt(folder, sigma=50, clip_noisy=True))[0]['lq']
    assert clipped.min() == 0 and clipped.max() == 1
    np.testing.assert_allclose(clipped.numpy(), item['lq'].clamp(0, 1).numpy())


def test_gray_reads_one_channel(clean_dir):
    dataset = GaussianNoiseDataset(make_opt(clean_dir, color='gray', noise_seed_mode='shared'))
    item = dataset[0]
    gray = cv2.imread(str(clean_dir / 'a.png'), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.
    assert item['gt'].shape == item['lq'].shape == (1, 64, 48)
    np.testing.assert_allclose(item['gt'][0].numpy(), gray)
    np.random.seed(0)  # KAIR's and SwinIR's grey protocol: noise of the HxW(x1) image
    np.testing.assert_allclose(item['lq'][0].numpy(), (gray + np.random.normal(0, 25 / 255., gray.shape)).astype(
        np.float32), atol=1e-6)


# ---------------------------------------------------------------- training
@pytest.mark.parametrize('color, channels', [('rgb', 3), ('gray', 1)])
def test_training_patches(clean_dir, color, channels):
    opt = make_opt(clean_dir, phase='train', color=color, gt_size=32, use_hflip=True, use_rot=True, sigma=None,
                   sigma_range=[10, 30])
    dataset = GaussianNoiseDataset(opt)
    sigmas = []
    for i in range(12):
        item = dataset[i % len(dataset)]
        assert item['gt'].shape == item['lq'].shape == (channels, 32, 32)
        sigmas.append(item['sigma'])
        noise_std = float((item['lq'] - item['gt']).std())
        assert abs(noise_std - item['sigma'] / 255.) < 0.25 * item['sigma'] / 255.
    assert all(10 <= s <= 30 for s in sigmas) and len(set(sigmas)) == 12  # a new sigma per patch


def test_training_needs_gt_size_and_errors(tmp_path, clean_dir):
    with pytest.raises(ValueError, match=re.escape('noisy: training needs gt_size (the patch size), e.g. gt_size: '
                                                   '128.')):
        GaussianNoiseDataset(make_opt(clean_dir, phase='train'))
    with pytest.raises(ValueError, match=re.escape("noisy: color must be 'rgb' or 'gray', got 'y'.")):
        GaussianNoiseDataset(make_opt(clean_dir, color='y'))
    with pytest.raises(FileNotFoundError, match=re.escape(f'noisy: dataroot_gt {tmp_path / "nope"} is not a folder; '
                                                          'fix the path.')):
        GaussianNoiseDataset(make_opt(tmp_path / 'nope'))
    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / 'x.png').write_bytes(b'not a png')
    dataset = GaussianNoiseDataset(make_opt(broken))
    with pytest.raises(ImageReadError, match=re.escape(f'noisy: {broken / "x.png"}: not a readable image; re-create '
                                                       'or remove it.')):
        dataset[0]


def test_options_are_not_modified_and_registry_builds(clean_dir):
    opt = make_opt(clean_dir, sigma=15)
    before = copy.deepcopy(opt)
    dataset = build_dataset(opt)
    assert isinstance(dataset, GaussianNoiseDataset)
    dataset[0]
    assert opt == before


def test_lmdb_gives_the_same_noisy_images_as_the_folder(tmp_path, clean_dir):
    lmdb_path = str(tmp_path / 'clean.lmdb')
    names = ['a.png', 'c.png']
    make_lmdb_from_imgs(str(clean_dir), lmdb_path, names, [n[:-4] for n in names])
    from_lmdb = by_name(GaussianNoiseDataset(make_opt(lmdb_path, io_backend={'type': 'lmdb'})))
    from_disk = by_name(GaussianNoiseDataset(make_opt(clean_dir)))
    assert sorted(from_lmdb) == ['a', 'c']
    for name in from_lmdb:
        assert torch.equal(from_lmdb[name]['lq'], from_disk[name]['lq'])
    with pytest.raises(FileNotFoundError, match='is not an LMDB made by basicsr.utils.lmdb_util'):
        GaussianNoiseDataset(make_opt(clean_dir, io_backend={'type': 'lmdb'}))


def test_real_photo_noisy_psnr_matches_sigma(tmp_path):
    """Sigma 25 on a real photo: 20.17 dB (10 log10(255^2 / 25^2)) before 8-bit clipping, more after it."""
    from basicsr.metrics import calculate_psnr
    from basicsr.utils import tensor2img
    folder = tmp_path / 'photo'
    folder.mkdir()
    cv2.imwrite(str(folder / 'coffee.png'), load_photo('coffee.png')[100:228, 200:328])
    item = GaussianNoiseDataset(make_opt(folder, sigma=25))[0]
    float_psnr = float(-10 * torch.log10(((item['lq'] - item['gt'])**2).mean()))
    assert abs(float_psnr - 20 * np.log10(255 / 25)) < 0.1
    assert calculate_psnr(tensor2img(item['lq']), tensor2img(item['gt']), crop_border=0) > float_psnr
