"""``prepare_div2k.py --format raw`` and RawLMDBDataset: pixel-exact crops, clear errors, training through the entry."""
import cv2
import json
import lmdb
import logging
import numpy as np
import os
import pytest
import random
import shutil
import torch
import yaml
from basicsr.data.transforms import augment
from basicsr.utils import img2tensor
from torch.utils.data import DataLoader

from msrn_plugin.data.lmdb_check import LmdbIntegrityError, check_lmdb
from msrn_plugin.data.raw_lmdb_dataset import RawLMDBDataset, check_raw_lmdb, raw_key, rgb_to_tensor
from msrn_plugin.prep import PrepError
from msrn_plugin.prep.bicubic import bicubic_downscale, mod_crop
from msrn_plugin.prep.div2k import prepare_div2k, raw_lmdb_name
from msrn_plugin.utils.image_io import write_image
from msrn_plugin.utils.options import load_options
from msrn_plugin.utils.photos import TRAIN_PHOTOS, load_photo
from msrn_plugin.utils.pipeline import run_pipeline
from msrn_plugin.utils.validation import OptionValidationError

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
SCALES = (2, 3, 4)  # lcm 12
HR_SIZES = {'0001': (203, 251), '0002': (170, 233), '0003': (150, 161)}  # odd sizes: mod-cropping matters


def _official_lr(hr, scale):
    h, w = hr.shape[:2]
    return cv2.resize(hr, (w // scale, h // scale), interpolation=cv2.INTER_AREA)  # not bicubic: tells them apart


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    """Miniature DIV2K (official x2 LR, x3/x4 generated) prepared in both formats."""
    root = tmp_path_factory.mktemp('div2k_raw')
    hrs = {}
    for (stem, (h, w)), name in zip(HR_SIZES.items(), TRAIN_PHOTOS):
        hrs[stem] = load_photo(name)[:h, :w].copy()
        write_image(root / 'DIV2K_train_HR' / f'{stem}.png', hrs[stem])
        write_image(root / 'DIV2K_train_LR_bicubic' / 'X2' / f'{stem}x2.png', _official_lr(hrs[stem], 2))
    raw = prepare_div2k(str(root), str(root / 'out'), scales=SCALES, crop_size=96, step=48, progress=False,
                        data_format='raw')
    png = prepare_div2k(str(root), str(root / 'out'), scales=SCALES, crop_size=96, step=48, progress=False)
    return {'root': root, 'hrs': hrs, 'raw': raw, 'png': png, 'lmdb': str(root / 'out' / raw_lmdb_name())}


def _values(path):
    env = lmdb.open(path, readonly=True, lock=False)
    with env.begin() as txn:
        out = {k.decode(): bytes(v) for k, v in txn.cursor()}
    env.close()
    return out


def _dataset(path, scale=4, gt_size=48, flips=False, phase='train'):
    return RawLMDBDataset({'dataroot': path, 'scale': scale, 'gt_size': gt_size, 'use_hflip': flips, 'use_rot': flips,
                           'phase': phase, 'io_backend': {'type': 'lmdb'}})


def _float(img_bgr):
    """What BasicSR's PairedImageDataset returns for a BGR uint8 image: RGB CHW float32 / 255."""
    return torch.from_numpy(img_bgr[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255.)


def test_raw_database_holds_whole_images_of_every_scale(tree):
    db = tree['raw']['databases']['raw']
    assert db['status'] == 'written' and db['sources'] == {'2': 'official', '3': 'generated', '4': 'generated'}
    values = _values(tree['lmdb'])
    assert list(values) == sorted(raw_key(stem, s) for stem in HR_SIZES for s in (1, *SCALES))
    lines = open(os.path.join(tree['lmdb'], 'meta_info.txt')).read().splitlines()
    assert lines[:4] == ['0001_hr.raw (192,240,3) 0', '0001_x2.raw (96,120,3) 0', '0001_x3.raw (64,80,3) 0',
                         '0001_x4.raw (48,60,3) 0']
    for stem, hr in tree['hrs'].items():
        h, w = hr.shape[0] // 12 * 12, hr.shape[1] // 12 * 12
        np.testing.assert_array_equal(np.frombuffer(values[f'{stem}_hr'], np.uint8).reshape(h, w, 3), hr[:h, :w])
        expected = {2: _official_lr(hr, 2), 3: bicubic_downscale(mod_crop(hr, 3), 3),
                    4: bicubic_downscale(mod_crop(hr, 4), 4)}
        for s, lr in expected.items():
            stored = np.frombuffer(values[f'{stem}_x{s}'], np.uint8).reshape(h // s, w // s, 3)
            np.testing.assert_array_equal(stored, lr[:h // s, :w // s])
    info = json.load(open(os.path.join(tree['lmdb'], 'prep_info.json')))
    assert info['format'] == 'raw' and info['scales'] == [2, 3, 4] and info['grid_multiple'] == 12
    assert check_lmdb(tree['lmdb'], check_shapes=True)['0003_x4'] == (36, 39, 3)


def test_worker_processes_write_the_same_database(tree, tmp_path):
    result = prepare_div2k(str(tree['root']), str(tmp_path / 'out'), scales=SCALES, workers=2, progress=False,
                           data_format='raw')
    assert result['databases']['raw']['status'] == 'written'
    assert _values(str(tmp_path / 'out' / raw_lmdb_name())) == _values(tree['lmdb'])


def test_bad_format_is_refused(tree, tmp_path):
    with pytest.raises(PrepError) as err:
        prepare_div2k(str(tree['root']), str(tmp_path / 'out'), data_format='jpeg')
    assert str(err.value) == "format must be 'png' or 'raw', got 'jpeg'."
    assert not os.path.exists(tmp_path / 'out')


def test_crop_equals_the_same_region_of_the_source_and_of_its_bicubic_lr(tree, monkeypatch):
    dataset = _dataset(tree['lmdb'], scale=4, gt_size=48)
    assert len(dataset) == 3 and dataset.stems == ['0001', '0002', '0003']
    picks = iter([7, 2])  # LR top, left
    monkeypatch.setattr(random, 'randint', lambda a, b: next(picks))
    item = dataset[1]  # 0002: 168x228 HR after mod-12
    hr = tree['hrs']['0002']
    assert item['gt'].shape == (3, 48, 48) and item['lq'].shape == (3, 12, 12)
    assert item['gt'].dtype == torch.float32
    torch.testing.assert_close(item['gt'], _float(hr[28:76, 8:56]), rtol=0, atol=0)
    lr = bicubic_downscale(mod_crop(hr, 4), 4)
    torch.testing.assert_close(item['lq'], _float(lr[7:19, 2:14]), rtol=0, atol=0)
    assert (item['gt'] * 255).round().to(torch.uint8).flip(0).permute(1, 2, 0).numpy().tobytes() == \
        np.ascontiguousarray(hr[28:76, 8:56]).tobytes()  # exactly the 8-bit source pixels


@pytest.mark.parametrize('layout', ['colour', 'rotated view', 'gray HxW', 'gray HxWx1'])
def test_conversion_is_basicsrs_img2tensor_bit_for_bit(layout):
    rgb = np.ascontiguousarray(load_photo('astronaut.png')[:, :, ::-1])[100:164, 200:248]  # a crop: a strided view
    img = {'colour': rgb, 'rotated view': rgb.transpose(1, 0, 2), 'gray HxW': rgb[:, :, 1],
           'gray HxWx1': rgb[:, :, 1:2]}[layout]
    hwc = img if img.ndim == 3 else img[:, :, None]  # img2tensor takes HxWxC only
    expected = img2tensor(np.ascontiguousarray(hwc).astype(np.float32) / 255., bgr2rgb=False)
    got = rgb_to_tensor(img)
    assert got.dtype == torch.float32 and got.is_contiguous()
    assert got.shape == expected.shape and torch.equal(got, expected)


def test_flips_and_rotations_are_basicsr_augment_on_the_same_crops(tree):
    dataset = _dataset(tree['lmdb'], scale=2, gt_size=24, flips=True)
    hr = tree['hrs']['0001']
    lr = _official_lr(hr, 2)
    seen = set()
    for seed in range(12):
        random.seed(seed)
        item = dataset[0]
        random.seed(seed)
        top, left = random.randint(0, 96 - 12), random.randint(0, 120 - 12)
        gt, lq = augment([hr[top * 2:top * 2 + 24, left * 2:left * 2 + 24].copy(),
                          lr[top:top + 12, left:left + 12].copy()], True, True)
        torch.testing.assert_close(item['gt'], _float(np.ascontiguousarray(gt)), rtol=0, atol=0)
        torch.testing.assert_close(item['lq'], _float(np.ascontiguousarray(lq)), rtol=0, atol=0)
        seen.add(item['gt'].numpy().tobytes()[:64])
    assert len(seen) > 6  # crops and transforms vary


def test_validation_phase_returns_whole_pairs_and_workers_open_their_own_database(tree):
    whole = _dataset(tree['lmdb'], scale=3, phase='val')[2]
    assert whole['gt'].shape == (3, 144, 156) and whole['lq'].shape == (3, 48, 52)
    loader = DataLoader(_dataset(tree['lmdb']), batch_size=3, num_workers=1)
    batch = next(iter(loader))
    assert batch['gt'].shape == (3, 3, 48, 48) and batch['lq'].shape == (3, 3, 12, 12)


def test_rerun_skips_and_other_scales_are_refused(tree, caplog):
    with caplog.at_level(logging.INFO):
        again = prepare_div2k(str(tree['root']), str(tree['root'] / 'out'), scales=SCALES, progress=False,
                              data_format='raw')
    assert again['databases']['raw']['status'] == 'skipped' and 'complete, skipped' in caplog.text
    with pytest.raises(PrepError) as err:
        prepare_div2k(str(tree['root']), str(tree['root'] / 'out'), scales=(2, 4), progress=False, data_format='raw')
    assert str(err.value).startswith(f'{tree["lmdb"]} exists with other settings: scales=[2, 3, 4] (asked [2, 4]), '
                                     'grid_multiple=12 (asked 4)')


def test_disk_use_is_reported_beside_the_png_lmdbs(tree):
    out = tree['root'] / 'out'
    raw_bytes = tree['raw']['databases']['raw']['disk_bytes']
    png_measured = sum(db['disk_bytes'] for db in tree['png']['databases'].values())
    assert raw_bytes > sum(h // 12 * 12 * (w // 12 * 12) * 3 for h, w in HR_SIZES.values())  # HR alone, uncompressed
    estimate = tree['raw']['png']  # written before the PNG databases existed
    assert estimate['measured'] is False and estimate['crop_size'] == 96 and estimate['bytes'] > 0
    measured = prepare_div2k(str(tree['root']), str(out), scales=SCALES, progress=False, data_format='raw')['png']
    assert measured['measured'] is True and measured['bytes'] == png_measured
    assert 0.5 < estimate['bytes'] / png_measured < 2


def test_script_summary(tree, tmp_path):
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, os.path.join(REPO_ROOT, 'scripts', 'prepare_div2k.py'), '--root',
                           str(tree['root']), '--output', str(tree['root'] / 'out'), '--scales', '2', '3', '4',
                           '--format', 'raw', '--no-progress', '--crop-size', '96', '--step', '48'],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[-3] == f'3 images, HR + x2, x3, x4 (skipped, 0.0 s): {tree["lmdb"]}'
    assert lines[-2].startswith('  raw (whole images, uncompressed):') and lines[-2].endswith(' MiB')
    assert lines[-1].startswith('  PNG sub-image LMDBs, same images:') and '(measured); raw/PNG = ' in lines[-1]


# ---------------------------------------------------------------- bad input: clear errors
def _copy(tree, tmp_path):
    return shutil.copytree(tree['lmdb'], tmp_path / 'copy.lmdb')


def test_missing_scale_is_named(tree):
    with pytest.raises(LmdbIntegrityError) as err:
        _dataset(tree['lmdb'], scale=8, gt_size=64)
    assert str(err.value) == (f'{tree["lmdb"]}: holds no x8 LR images (LR scales held: x2, x3, x4); re-create it with '
                              'scripts/prepare_div2k.py --format raw --scales 2 3 4 8 (or train scale 2 or 3 or 4).')


def test_wrong_sizes_are_named(tree, tmp_path):
    path = _copy(tree, tmp_path)
    meta = os.path.join(path, 'meta_info.txt')
    text = open(meta).read().replace('0002_x4.raw (42,57,3)', '0002_x4.raw (57,42,3)')
    open(meta, 'w').write(text)
    with pytest.raises(LmdbIntegrityError) as err:
        check_raw_lmdb(str(path), 4)
    assert str(err.value) == (f'{path}: 1 x4 LR image(s) are not HR size / 4: 0002 (HR 168x228x3, x4 LR 57x42x3); '
                              'delete it and re-create it with scripts/prepare_div2k.py --format raw.')


def test_truncated_value_is_found_by_the_integrity_check(tree, tmp_path):
    path = str(_copy(tree, tmp_path))
    env = lmdb.open(path, map_size=2**26)
    with env.begin(write=True) as txn:
        txn.put(b'0003_x2', txn.get(b'0003_x2')[:-3])
    env.close()
    check_raw_lmdb(path, 2)  # meta_info.txt alone is consistent ...
    with pytest.raises(LmdbIntegrityError) as err:
        check_raw_lmdb(path, 2, check_values=True)
    assert str(err.value) == (f'{path}: 1 image(s) differ from meta_info.txt: 0003_x2 (meta_info (72, 78, 3) = 16848 '
                              'bytes, stored 16845); delete it and re-create it with scripts/prepare_div2k.py.')


def test_png_lmdb_is_not_a_raw_one(tree):
    png = str(tree['root'] / 'out' / 'DIV2K_train_HR_sub.lmdb')
    with pytest.raises(LmdbIntegrityError) as err:
        check_raw_lmdb(png, 2)
    assert str(err.value) == (f'{png}: a sub-image (PNG) LMDB, not a raw one; use type CheckedPairedImageDataset for '
                              'it, or make a raw LMDB with scripts/prepare_div2k.py --format raw.')


# ---------------------------------------------------------------- the shipped option files, through the train entry
def _x4_options(tree, tmp_path, **changes):
    opt = json.loads(json.dumps(load_options(os.path.join(REPO_ROOT, 'options', 'train_MSRN_x4.yml'))))
    assert opt['model_type'] == 'MSRNModel' and opt['datasets']['train']['type'] == 'RawLMDBDataset'
    assert opt['use_amp'] is True and opt['amp_bf16'] is True and opt['use_channels_last'] is True
    opt['num_gpu'] = 0
    opt['datasets'] = {'train': dict(opt['datasets']['train'], dataroot=tree['lmdb'], gt_size=48,
                                     num_worker_per_gpu=0, batch_size_per_gpu=2, dataset_enlarge_ratio=1)}
    opt['network_g'] = dict(opt['network_g'], num_feat=8, num_block=1)
    opt['train'] = dict(opt['train'], total_iter=2)
    opt['logger'] = dict(opt['logger'], print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    opt.pop('val')
    for key, value in changes.items():
        opt['datasets']['train'][key] = value
    yml = tmp_path / 'x4.yml'
    yml.write_text(yaml.safe_dump(opt))
    return opt, str(yml)


def test_shipped_x4_options_train_on_raw_data_on_the_cpu(tree, tmp_path, basicsr_log):
    opt, yml = _x4_options(tree, tmp_path)
    run_pipeline('train', ['-opt', yml], root_path=str(tmp_path))
    models = tmp_path / 'experiments' / opt['name'] / 'models'
    assert sorted(os.listdir(models)) == ['net_g_2.pth', 'net_g_latest.pth']
    log = '\n'.join(basicsr_log)
    assert 'use_amp bf16; use_channels_last on' in log and 'RawLMDBDataset' in log


@pytest.mark.parametrize('changes, message', [
    ({'dataroot': 'MISSING'}, 'datasets.train.dataroot: MISSING: LMDB folder not found'),
    ({'gt_size': 240}, 'datasets.train.gt_size: 240 is larger than the smallest HR image (0003: 144x156); use '
                       'gt_size <= 144.'),
])
def test_bad_raw_data_is_refused_at_start_up(tree, tmp_path, changes, message):
    _, yml = _x4_options(tree, tmp_path, **changes)
    root = tmp_path / 'root'
    root.mkdir()
    with pytest.raises(OptionValidationError) as err:
        run_pipeline('train', ['-opt', yml], root_path=str(root))
    assert message in str(err.value)
    assert os.listdir(root) == []


def test_missing_scale_is_refused_at_start_up(tree, tmp_path):
    _, yml = _x4_options(tree, tmp_path)
    opt = yaml.safe_load(open(yml))
    opt.update(scale=8)
    opt['network_g']['upscale'] = 8
    opt['datasets']['train']['gt_size'] = 64
    open(yml, 'w').write(yaml.safe_dump(opt))
    with pytest.raises(OptionValidationError) as err:
        run_pipeline('train', ['-opt', yml], root_path=str(tmp_path))
    assert 'datasets.train.dataroot: ' + tree['lmdb'] + ': holds no x8 LR images' in str(err.value)
