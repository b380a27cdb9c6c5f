"""RESIDEDataset: RESIDE name pairing (ITS, OTS, SOTS), missing partners, centre crops, training crops, LMDB."""
import copy
import cv2
import numpy as np
import pytest
import re
import torch
from basicsr.data import build_dataset
from basicsr.utils.lmdb_util import make_lmdb_from_imgs

from msrn_plugin.data.reside_dataset import RESIDEDataset, center_crop_to, clear_stem_for, pair_reside_names


def make_opt(hazy, clear, phase='val', **extra):
    opt = {'name': 'reside', 'type': 'RESIDEDataset', 'dataroot_lq': str(hazy), 'dataroot_gt': str(clear),
           'io_backend': {'type': 'disk'}, 'phase': phase}
    opt.update(extra)
    return opt


@pytest.fixture
def sots_like(tmp_path, photo_bgr):
    """SOTS-indoor-like pairs: clear 80x100 PNGs, hazy 60x80 (= the clear's centre, inverted) with haze levels."""
    hazy, clear = tmp_path / 'hazy', tmp_path / 'clear'
    hazy.mkdir()
    clear.mkdir()
    for i, stem in enumerate(['1400', '1401']):
        img = photo_bgr[50 * i:50 * i + 80, 100:200]
        cv2.imwrite(str(clear / f'{stem}.png'), img)
        for level in (1, 2):
            cv2.imwrite(str(hazy / f'{stem}_{level}.png'), 255 - img[10:70, 10:90])
    return hazy, clear


# ---------------------------------------------------------------- naming
@pytest.mark.parametrize('hazy, clears, expected', [
    ('1400_3', {'1400', '1401'}, '1400'),  # SOTS indoor
    ('1_1_0.90179', {'1', '2'}, '1'),  # ITS: image, index, beta
    ('0001_0.8_0.2', {'0001'}, '0001'),  # OTS / SOTS outdoor: image, A, beta
    ('motorcycle_left_0.85_1.200', {'motorcycle', 'motorcycle_left'}, 'motorcycle_left'),  # synthesize_haze.py
    ('foo_bar', {'foo'}, None),  # the rest is not numbers
    ('1400', {'1400'}, None),  # no haze suffix
    ('1400_3', {'140'}, None),
])
def test_clear_stem_for(hazy, clears, expected):
    assert clear_stem_for(hazy, clears) == expected


def test_pairing_across_extensions_and_folders():
    pairs = pair_reside_names(['0002_0.9_0.1.jpg', '0001_0.8_0.2.jpg', 'sub/0001_1_0.04.jpg'],
                              ['0001.png', '0002.png', '0003.png'])
    assert pairs == [('0001_0.8_0.2.jpg', '0001.png'), ('0002_0.9_0.1.jpg', '0002.png'),
                     ('sub/0001_1_0.04.jpg', '0001.png')]


def test_missing_partner_is_a_clear_error():
    message = ('H: 2 hazy image(s) have no clear partner in C: 0003_0.8_0.2.jpg, hazy.png. RESIDE names a hazy image '
               '<clear name>_<numbers> (e.g. 1400_3.png for 1400.png, 0001_0.8_0.2.jpg for 0001.jpg); add the clear '
               'images or remove those files.')
    with pytest.raises(ValueError, match=re.escape(message) + '$'):
        pair_reside_names(['0001_0.8_0.2.jpg', '0003_0.8_0.2.jpg', 'hazy.png'], ['0001.jpg', '0002.jpg'], 'H', 'C')


def test_duplicate_clear_and_empty_hazy_are_errors():
    with pytest.raises(ValueError, match=re.escape('C: several clear images share a name (stem): 0001.jpg / '
                                                   '0001.png; keep one file per clear image.')):
        pair_reside_names(['0001_1.png'], ['0001.png', '0001.jpg'], 'H', 'C')
    with pytest.raises(ValueError, match=re.escape('H: no hazy images found; check dataroot_lq.')):
        pair_reside_names([], ['0001.png'], 'H', 'C')


def test_center_crop_to():
    img = np.arange(480 * 640).reshape(480, 640, 1)
    crop = center_crop_to(img, 460, 620)
    assert crop.shape == (460, 620, 1) and crop[0, 0, 0] == img[10, 10, 0]  # SOTS indoor: 10-pixel border
    assert center_crop_to(img, 480, 640) is img
    with pytest.raises(ValueError, match=re.escape('x.png: the clear image (480x640) is smaller than its hazy image '
                                                   '(500x640); the pair does not match: replace or remove one of '
                                                   'them.')):
        center_crop_to(img, 500, 640, 'x.png')


# ---------------------------------------------------------------- dataset
def test_validation_pairs_and_centre_crops(sots_like):
    hazy, clear = sots_like
    opt = make_opt(hazy, clear)
    before = copy.deepcopy(opt)
    dataset = build_dataset(opt)
    assert isinstance(dataset, RESIDEDataset) and len(dataset) == 4 and opt == before
    for i in range(4):
        item = dataset[i]
        assert item['lq'].shape == item['gt'].shape == (3, 60, 80)
        assert torch.allclose(item['lq'], 1 - item['gt'], atol=1e-6)  # the crop is aligned with the hazy image
        stem = item['lq_path'].split('/')[-1].split('_')[0]
        assert item['gt_path'] == str(clear / f'{stem}.png')


def test_training_crops_stay_aligned(sots_like):
    hazy, clear = sots_like
    dataset = RESIDEDataset(make_opt(hazy, clear, phase='train', gt_size=32, use_hflip=True, use_rot=True))
    for i in range(8):
        item = dataset[i % 4]
        assert item['lq'].shape == item['gt'].shape == (3, 32, 32)
        assert torch.allclose(item['lq'], 1 - item['gt'], atol=1e-6)


def test_dataset_errors(tmp_path, sots_like):
    hazy, clear = sots_like
    with pytest.raises(ValueError, match=re.escape('reside: training needs gt_size (the patch size), e.g. gt_size: '
                                                   '128.')):
        RESIDEDataset(make_opt(hazy, clear, phase='train'))
    with pytest.raises(FileNotFoundError, match=re.escape(f'reside.dataroot_gt: {tmp_path / "nope"} is not a folder; '
                                                          'fix the path.')):
        RESIDEDataset(make_opt(hazy, tmp_path / 'nope'))
    cv2.imwrite(str(hazy / '1402_1.png'), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=re.escape(f'{hazy}: 1 hazy image(s) have no clear partner in {clear}: '
                                                   '1402_1.png.')):
        RESIDEDataset(make_opt(hazy, clear))
    # a clear image smaller than its hazy image
    cv2.imwrite(str(clear / '1402.png'), np.zeros((4, 4, 3), np.uint8))
    dataset = RESIDEDataset(make_opt(hazy, clear))
    with pytest.raises(ValueError, match=re.escape(f'{clear / "1402.png"}: the clear image (4x4) is smaller than its '
                                                   'hazy image (8x8)')):
        dataset[4]  # 1402_1.png, after the four valid pairs


def test_check_dataroots(tmp_path, sots_like):
    hazy, clear = sots_like
    assert RESIDEDataset.check_dataroots(make_opt(hazy, clear, gt_size=48), 'datasets.train', is_train=True) == []
    problems = RESIDEDataset.check_dataroots(make_opt(hazy, clear, gt_size=64), 'datasets.train', is_train=True)
    assert len(problems) == 1 and problems[0].startswith('datasets.train.gt_size: 64 is larger than the smallest '
                                                         'sampled hazy image')
    assert problems[0].endswith(': 60x80); use gt_size <= 60.')
    assert RESIDEDataset.check_dataroots(make_opt(hazy, clear, gt_size=64), 'datasets.val') == []
    cv2.imwrite(str(hazy / '1402_1.png'), np.zeros((8, 8, 3), np.uint8))
    problems = RESIDEDataset.check_dataroots(make_opt(hazy, clear), 'datasets.val')
    assert problems == [f'{hazy}: 1 hazy image(s) have no clear partner in {clear}: 1402_1.png. RESIDE names a hazy '
                        'image <clear name>_<numbers> (e.g. 1400_3.png for 1400.png, 0001_0.8_0.2.jpg for 0001.jpg); '
                        'add the clear images or remove those files.']
    assert RESIDEDataset.check_dataroots(make_opt(hazy, tmp_path / 'x'), 'datasets.val') == [
        f'datasets.val.dataroot_gt: {tmp_path / "x"} is not a folder; fix the path.']


def test_lmdb_backend_matches_folders(tmp_path, sots_like):
    hazy, clear = sots_like
    hazy_names = sorted(p.name for p in hazy.iterdir())
    make_lmdb_from_imgs(str(hazy), str(tmp_path / 'hazy.lmdb'), hazy_names, [n[:-4] for n in hazy_names])
    make_lmdb_from_imgs(str(clear), str(tmp_path / 'clear.lmdb'), ['1400.png', '1401.png'], ['1400', '1401'])
    from_lmdb = RESIDEDataset(make_opt(tmp_path / 'hazy.lmdb', tmp_path / 'clear.lmdb', io_backend={'type': 'lmdb'}))
    from_disk = RESIDEDataset(make_opt(hazy, clear))
    assert [p['lq_path'] for p in from_lmdb.paths] == ['1400_1', '1400_2', '1401_1', '1401_2']
    assert [p['gt_path'] for p in from_lmdb.paths] == ['1400', '1400', '1401', '1401']
    for i in range(4):
        assert torch.equal(from_lmdb[i]['lq'], from_disk[i]['lq']) and torch.equal(from_lmdb[i]['gt'],
                                                                                   from_disk[i]['gt'])


def test_startup_validation_reports_unpaired_hazy_images(tmp_path):
    """msrn_plugin.utils.validation calls RESIDEDataset.check_dataroots before any folder is created."""
    import cv2
    import numpy as np

    from msrn_plugin.utils.validation import OptionValidationError, validate_options

    (tmp_path / 'hazy').mkdir()
    (tmp_path / 'clear').mkdir()
    cv2.imwrite(str(tmp_path / 'hazy' / '0001_0.8_0.2.png'), np.zeros((64, 64, 3), np.uint8))
    opt = {
        'name': 'reside_check', 'model_type': 'SRModel', 'scale': 1, 'num_gpu': 0,
        'datasets': {'train': {'name': 'h', 'type': 'RESIDEDataset', 'dataroot_lq': str(tmp_path / 'hazy'),
                               'dataroot_gt': str(tmp_path / 'clear'), 'io_backend': {'type': 'disk'}, 'gt_size': 32,
                               'use_hflip': True, 'use_rot': True, 'batch_size_per_gpu': 1,
                               'num_worker_per_gpu': 0}},
        'network_g': {'type': 'MSRN', 'num_feat': 8, 'num_block': 1, 'upscale': 1, 'global_residual': True},
        'path': {}, 'train': {'optim_g': {'type': 'Adam', 'lr': 1e-4}, 'total_iter': 1,
                              'scheduler': {'type': 'MultiStepLR', 'milestones': [1], 'gamma': 0.5},
                              'pixel_opt': {'type': 'L1Loss'}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 1},
    }
    with pytest.raises(OptionValidationError) as err:
        validate_options(opt, is_train=True, source='reside.yml', resume=False)
    assert f'{tmp_path / "hazy"}: 1 hazy image(s) have no clear partner in {tmp_path / "clear"}: 0001_0.8_0.2.png.' \
        in str(err.value)
    assert not (tmp_path / 'experiments').exists()


# ---------------------------------------------------------------- LMDB keys with dots, through the train entry
def _dotted_haze_lmdbs(tmp_path, photo_bgr):
    """ITS-style (``1_1_0.90179``) and synthesize_haze-style (``astronaut_0.85_1.200``) hazy keys, in LMDBs."""
    hazy, clear = tmp_path / 'hazy', tmp_path / 'clear'
    hazy.mkdir()
    clear.mkdir()
    pairs = {'1': ['1_1_0.90179', '1_2_0.81'], 'astronaut': ['astronaut_0.85_1.200']}
    for i, (stem, hazy_stems) in enumerate(pairs.items()):
        img = np.ascontiguousarray(photo_bgr[40 * i:40 * i + 40, 100:140])
        cv2.imwrite(str(clear / f'{stem}.png'), img)
        for j, hazy_stem in enumerate(hazy_stems):
            cv2.imwrite(str(hazy / f'{hazy_stem}.png'), (img * 0.5 + 60 + 20 * j).astype(np.uint8))
    for folder in (hazy, clear):
        names = sorted(p.name for p in folder.iterdir())
        make_lmdb_from_imgs(str(folder), str(folder) + '.lmdb', names, [n[:-4] for n in names])
    return f'{hazy}.lmdb', f'{clear}.lmdb'


def _lmdb_train_options(tmp_path, hazy_lmdb, clear_lmdb):
    from msrn_plugin.demos.restoration_demo import write_options

    data = {'type': 'RESIDEDataset', 'dataroot_lq': hazy_lmdb, 'dataroot_gt': clear_lmdb,
            'io_backend': {'type': 'lmdb'}}
    opt = {
        'name': 'dotted_keys', 'model_type': 'SRModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'train': dict(data, name='its', gt_size=32, use_hflip=True, use_rot=True, batch_size_per_gpu=2,
                                   num_worker_per_gpu=0, dataset_enlarge_ratio=1, prefetch_mode=None),
                     # py-lmdb opens a database once per process: validate on the image folders
                     'val': dict(data, name='its_val', dataroot_lq=hazy_lmdb[:-5], dataroot_gt=clear_lmdb[:-5],
                                 io_backend={'type': 'disk'})},
        'network_g': {'type': 'MSRN', 'num_feat': 8, 'num_block': 1, 'upscale': 1, 'global_residual': True},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-4}, 'total_iter': 1, 'warmup_iter': -1,
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [1], 'gamma': 0.5},
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
        'val': {'val_freq': 1, 'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 1, 'use_tb_logger': False, 'wandb': None},
    }
    return write_options(opt, tmp_path / 'dotted.yml')


def test_dotted_lmdb_keys_train_through_the_train_entry(tmp_path, photo_bgr, basicsr_log):
    """Start-up validation used to refuse ``1_1_0.90179.png (40,40,3) 1`` as a malformed meta_info.txt line."""
    from msrn_plugin.data.lmdb_check import check_lmdb, lmdb_keys
    from msrn_plugin.utils.pipeline import run_pipeline

    hazy_lmdb, clear_lmdb = _dotted_haze_lmdbs(tmp_path, photo_bgr)
    assert lmdb_keys(hazy_lmdb) == ['1_1_0.90179', '1_2_0.81', 'astronaut_0.85_1.200']
    assert dict(check_lmdb(hazy_lmdb, check_shapes=True)) == {k: (40, 40, 3) for k in lmdb_keys(hazy_lmdb)}
    dataset = RESIDEDataset(make_opt(hazy_lmdb, clear_lmdb, io_backend={'type': 'lmdb'}))
    assert [(p['lq_path'], p['gt_path']) for p in dataset.paths] == [('1_1_0.90179', '1'), ('1_2_0.81', '1'),
                                                                      ('astronaut_0.85_1.200', 'astronaut')]
    run_pipeline('train', ['-opt', _lmdb_train_options(tmp_path, hazy_lmdb, clear_lmdb)], root_path=str(tmp_path))
    assert (tmp_path / 'experiments' / 'dotted_keys' / 'models' / 'net_g_1.pth').is_file()
    assert any('# psnr:' in m and 'its_val' in m for m in basicsr_log)


def test_a_damaged_haze_lmdb_gets_haze_advice(tmp_path, photo_bgr):
    from msrn_plugin.utils.pipeline import run_pipeline
    from msrn_plugin.utils.validation import OptionValidationError

    hazy_lmdb, clear_lmdb = _dotted_haze_lmdbs(tmp_path, photo_bgr)
    with open(f'{hazy_lmdb}/meta_info.txt', 'a') as f:
        f.write('2_1_0.75.png (40,40,3) 1\n')  # listed, not stored: what a killed writer leaves
    with pytest.raises(OptionValidationError) as err:
        run_pipeline('train', ['-opt', _lmdb_train_options(tmp_path, hazy_lmdb, clear_lmdb)], root_path=str(tmp_path))
    assert (f'datasets.train.dataroot_lq: {hazy_lmdb}: written incompletely or modified: 1 key(s) listed in '
            'meta_info.txt are not in the database: 2_1_0.75; delete it and re-create it with '
            'basicsr.utils.lmdb_util.make_lmdb_from_imgs from its image folder (keys: the file names without '
            'extension), e.g. the hazy/ and clear/ folders of scripts/synthesize_haze.py.') in str(err.value)
    assert 'prepare_div2k' not in str(err.value)
    assert not (tmp_path / 'experiments').exists()
