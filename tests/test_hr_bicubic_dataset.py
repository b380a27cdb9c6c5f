"""HR-only dataset with on-the-fly MATLAB bicubic LR, and LMDB integrity checks at dataset start-up."""
import copy
import cv2
import numpy as np
import os
import pytest
import textwrap
import torch
from basicsr.utils.lmdb_util import LmdbMaker

from msrn_plugin.data.checked_paired_dataset import CheckedPairedImageDataset
from msrn_plugin.data.hr_bicubic_dataset import HRBicubicDataset
from msrn_plugin.data.lmdb_check import LmdbIntegrityError, check_lmdb, check_paired_lmdb
from msrn_plugin.prep.bicubic import bicubic_downscale, mod_crop
from msrn_plugin.utils.image_io import write_image
from msrn_plugin.utils.photos import TRAIN_PHOTOS, load_photo

SIZES = [(130, 157), (121, 99)]


def _hr_images():
    return {f'img{i}': load_photo(name)[:h, :w].copy() for i, (name, (h, w)) in enumerate(zip(TRAIN_PHOTOS, SIZES))}


def _write_lmdb(path, images):
    maker = LmdbMaker(str(path), map_size=2**26)
    for key, img in images.items():
        ok, buf = cv2.imencode('.png', img)
        maker.put(buf.tobytes(), key, img.shape)
    maker.close()


def _to_uint8(t: torch.Tensor) -> np.ndarray:  # CHW RGB [0, 1] -> HWC BGR uint8 (exact: values are k / 255)
    return np.round(t.numpy()[::-1].transpose(1, 2, 0) * 255).astype(np.uint8)


def _locate(patch: np.ndarray, img: np.ndarray, step: int):
    h, w = patch.shape[:2]
    hits = [(y, x) for y in range(0, img.shape[0] - h + 1, step) for x in range(0, img.shape[1] - w + 1, step)
            if np.array_equal(img[y:y + h, x:x + w], patch)]
    assert len(hits) == 1
    return hits[0]


@pytest.mark.parametrize('scale', [2, 3, 4, 8])
def test_train_patches_equal_the_whole_image_lr(tmp_path, scale):
    images = _hr_images()
    _write_lmdb(tmp_path / 'hr.lmdb', images)
    gt_size = 12 * scale
    ds = HRBicubicDataset({'dataroot_gt': str(tmp_path / 'hr.lmdb'), 'io_backend': {'type': 'lmdb'},
                           'gt_size': gt_size, 'use_hflip': False, 'use_rot': False, 'scale': scale,
                           'phase': 'train'})
    assert len(ds) == 2
    for _ in range(6):  # random corners, near the borders and inside (the context window is clipped at borders)
        for index, key in enumerate(images):
            item = ds[index]
            assert item['gt'].shape == (3, gt_size, gt_size) and item['lq'].shape == (3, 12, 12)
            assert item['gt_path'] == item['lq_path'] == key
            hr = mod_crop(images[key], scale)
            gt = _to_uint8(item['gt'])
            y, x = _locate(gt, hr, scale)
            full_lr = bicubic_downscale(hr, scale)
            np.testing.assert_array_equal(_to_uint8(item['lq']), full_lr[y // scale:y // scale + 12,
                                                                           x // scale:x // scale + 12])


def test_augmentation_keeps_pairs_aligned(tmp_path):
    images = _hr_images()
    folder = tmp_path / 'HR'
    for key, img in images.items():
        write_image(folder / f'{key}.png', img)
    ds = HRBicubicDataset({'dataroot_gt': str(folder), 'io_backend': {'type': 'disk'}, 'gt_size': 32,
                           'use_hflip': True, 'use_rot': True, 'scale': 2, 'phase': 'train'})
    for i in range(8):
        item = ds[i % 2]
        # the LR of an augmented pair is the downscaled augmented GT (up to the bicubic context at the borders)
        lr = bicubic_downscale(_to_uint8(item['gt']), 2).astype(np.int16)
        assert np.abs(lr - _to_uint8(item['lq']))[3:-3, 3:-3].max() <= 1


def test_validation_gives_whole_mod_cropped_images_and_y_channel(tmp_path):
    images = _hr_images()
    folder = tmp_path / 'HR'
    for key, img in images.items():
        write_image(folder / f'{key}.png', img)
    (folder / 'notes.txt').write_text('not an image')
    opt = {'dataroot_gt': str(folder), 'io_backend': {'type': 'disk'}, 'scale': 3, 'phase': 'val'}
    frozen = copy.deepcopy(opt)
    ds = HRBicubicDataset(opt)
    item = ds[1]
    hr = mod_crop(images['img1'], 3)
    assert item['gt_path'] == str(folder / 'img1.png')
    np.testing.assert_array_equal(_to_uint8(item['gt']), hr)
    np.testing.assert_array_equal(_to_uint8(item['lq']), bicubic_downscale(hr, 3))
    assert ds[0]['lq'].shape == (3, 43, 52)
    y = HRBicubicDataset(dict(opt, color='y'))[0]
    assert y['gt'].shape == (1, 129, 156) and y['lq'].shape == (1, 43, 52)
    assert opt == frozen


def test_hr_dataset_errors(tmp_path):
    base = {'io_backend': {'type': 'disk'}, 'scale': 4, 'phase': 'train', 'gt_size': 64}
    with pytest.raises(ValueError) as err:
        HRBicubicDataset(dict(base, dataroot_gt=str(tmp_path), gt_size=30, name='DIV2K_HR'))
    assert str(err.value) == 'DIV2K_HR: gt_size must be a positive multiple of scale 4, got 30; e.g. gt_size: 256.'
    with pytest.raises(FileNotFoundError, match=r'nowhere: dataroot_gt folder not found; point dataroot_gt'):
        HRBicubicDataset(dict(base, dataroot_gt=str(tmp_path / 'nowhere')))
    write_image(tmp_path / 'small.png', load_photo('coins.png')[:40, :70])
    ds = HRBicubicDataset(dict(base, dataroot_gt=str(tmp_path)))
    with pytest.raises(ValueError) as err:
        ds[0]
    assert str(err.value) == (f'{tmp_path}/small.png: HR 68x40 is smaller than gt_size 64; lower gt_size or remove '
                              'the image.')


def test_hr_dataset_refuses_an_incomplete_lmdb_at_start_up(tmp_path):
    _write_lmdb(tmp_path / 'hr.lmdb', _hr_images())
    with open(tmp_path / 'hr.lmdb' / 'meta_info.txt', 'a') as f:
        f.write('img9.png (100,100,3) 1\n')
    with pytest.raises(LmdbIntegrityError) as err:
        HRBicubicDataset({'dataroot_gt': str(tmp_path / 'hr.lmdb'), 'io_backend': {'type': 'lmdb'}, 'scale': 2,
                          'phase': 'val'})
    assert str(err.value) == (f'{tmp_path}/hr.lmdb: written incompletely or modified: 1 key(s) listed in '
                              'meta_info.txt are not in the database: img9; delete it and re-create it with '
                              'scripts/prepare_div2k.py.')


# ------------------------------------------------------------------------------------------ LMDB checks


@pytest.fixture
def pair(tmp_path):
    images = {k: mod_crop(v, 4) for k, v in _hr_images().items()}
    _write_lmdb(tmp_path / 'gt.lmdb', images)
    _write_lmdb(tmp_path / 'lq.lmdb', {k: bicubic_downscale(v, 4) for k, v in images.items()})
    return tmp_path / 'lq.lmdb', tmp_path / 'gt.lmdb'


def _paired_opt(lq, gt, scale=4):
    return {'dataroot_gt': str(gt), 'dataroot_lq': str(lq), 'io_backend': {'type': 'lmdb'}, 'filename_tmpl': '{}',
            'gt_size': 32, 'use_hflip': True, 'use_rot': True, 'scale': scale, 'phase': 'train'}


def test_checked_paired_dataset_reads_a_good_pair(pair):
    opt = _paired_opt(*pair)
    frozen = copy.deepcopy(opt)
    assert check_lmdb(str(pair[1]), check_shapes=True) == {'img0': (128, 156, 3), 'img1': (120, 96, 3)}
    ds = CheckedPairedImageDataset(opt)
    assert opt == frozen  # BasicSR's PairedImageDataset adds db_paths to io_backend; ours works on a copy
    item = ds[0]
    assert item['gt'].shape == (3, 32, 32) and item['lq'].shape == (3, 8, 8)


def test_checked_paired_dataset_refuses_a_wrong_scale(pair):
    with pytest.raises(LmdbIntegrityError) as err:
        CheckedPairedImageDataset(_paired_opt(*pair, scale=2))
    assert str(err.value) == (f'{pair[0]}: 2 LQ image(s) are not GT size / 2: img0 (LQ 32x39, GT 128x156), img1 (LQ '
                              '30x24, GT 120x96); check the scale (is this the x2 database?) or re-create the pair '
                              'with scripts/prepare_div2k.py.')


def test_checked_paired_dataset_refuses_different_keys(pair, tmp_path):
    lq, gt = pair
    _write_lmdb(tmp_path / 'other.lmdb', {'img0': np.zeros((32, 39, 3), np.uint8)})
    with pytest.raises(LmdbIntegrityError) as err:
        CheckedPairedImageDataset(_paired_opt(tmp_path / 'other.lmdb', gt))
    assert str(err.value) == (f'{tmp_path}/other.lmdb and {gt} hold different keys (0 only in the LQ one: none; 1 '
                              'only in the GT one: img1); prepare both from the same images and settings with '
                              'scripts/prepare_div2k.py.')


def test_lmdb_written_incompletely(pair):
    lq, gt = pair
    # what a killed BasicSR LmdbMaker leaves: meta_info.txt lists more than the last committed transaction holds
    os.remove(lq / 'data.mdb')
    with pytest.raises(LmdbIntegrityError, match=r'lq.lmdb: no data.mdb \(not an LMDB, or written incompletely\); '
                                                 'delete it and re-create it'):
        CheckedPairedImageDataset(_paired_opt(lq, gt))
    os.remove(gt / 'meta_info.txt')
    with pytest.raises(LmdbIntegrityError, match=r'gt.lmdb: no meta_info.txt, so this is not a complete BasicSR LMDB'):
        check_paired_lmdb(str(lq), str(gt), 4)


def test_meta_info_that_disagrees_with_stored_sizes(pair):
    lq, gt = pair
    meta = gt / 'meta_info.txt'
    meta.write_text(meta.read_text().replace('img1.png (120,96,3)', 'img1.png (96,120,3)'))
    with pytest.raises(LmdbIntegrityError) as err:
        check_lmdb(str(gt), check_shapes=True)
    assert str(err.value) == (f'{gt}: 1 image(s) differ from meta_info.txt: img1 (meta_info (96, 120, 3), stored '
                              '(120, 96, 3)); delete it and re-create it with scripts/prepare_div2k.py.')
    meta.write_text('img0.png 128x156 1\n')
    with pytest.raises(LmdbIntegrityError, match=r"meta_info.txt:1: malformed line 'img0.png 128x156 1'"):
        check_lmdb(str(gt))


def test_training_with_hr_only_folder(tmp_path, basicsr_log):
    from msrn_plugin.utils.pipeline import run_pipeline
    folder = tmp_path / 'HR'
    for key, img in _hr_images().items():
        write_image(folder / f'{key}.png', img)
    yml = tmp_path / 'train.yml'
    yml.write_text(textwrap.dedent(f"""\
        name: MSRN_x3_hr_only
        model_type: SRModel
        scale: 3
        num_gpu: 0
        manual_seed: 0
        datasets:
          train:
            name: HR_only
            type: HRBicubicDataset
            dataroot_gt: {folder}
            io_backend: {{type: disk}}
            gt_size: 36
            use_hflip: true
            use_rot: true
            num_worker_per_gpu: 1
            batch_size_per_gpu: 2
            dataset_enlarge_ratio: 2
        network_g: {{type: MSRN, num_feat: 8, num_block: 1, upscale: 3}}
        path: {{pretrain_network_g: ~, strict_load_g: true, resume_state: ~}}
        train:
          optim_g: {{type: Adam, lr: !!float 1e-3}}
          scheduler: {{type: MultiStepLR, milestones: [100], gamma: 0.5}}
          total_iter: 2
          warmup_iter: -1
          pixel_opt: {{type: L1Loss, loss_weight: 1.0}}
        logger: {{print_freq: 1, save_checkpoint_freq: 2, use_tb_logger: false}}
        """))
    run_pipeline('train', ['-opt', str(yml)], root_path=str(tmp_path))
    exp = tmp_path / 'experiments' / 'MSRN_x3_hr_only'
    assert (exp / 'models' / 'net_g_2.pth').is_file()
    log = '\n'.join(basicsr_log)
    assert 'Number of train images: 2' in log and 'iter:       2' in log
