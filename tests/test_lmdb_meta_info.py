"""The one meta_info.txt parser: keys with dots stay whole in every dataset that reads an LMDB."""
import cv2
import numpy as np
import pytest
from basicsr.utils.lmdb_util import LmdbMaker

from msrn_plugin.data.checked_paired_dataset import CheckedPairedImageDataset
from msrn_plugin.data.hr_bicubic_dataset import HRBicubicDataset
from msrn_plugin.data.lmdb_check import LmdbIntegrityError, lmdb_keys, read_meta_info
from msrn_plugin.data.noise_dataset import GaussianNoiseDataset
from msrn_plugin.prep.bicubic import bicubic_downscale

DOTTED = ['0001_0.8_0.2', 'img.v2', 'plain']


def _write_lmdb(path, images):
    maker = LmdbMaker(str(path), map_size=2**24)
    for key, img in images.items():
        maker.put(cv2.imencode('.png', img)[1].tobytes(), key, img.shape)
    maker.close()
    return str(path)


@pytest.fixture
def hr_images(photo_bgr):
    return {k: np.ascontiguousarray(photo_bgr[32 * i:32 * i + 32, :48]) for i, k in enumerate(DOTTED)}


@pytest.mark.parametrize('line, key', [
    ('1_1_0.90179.png (460,620,3) 1', '1_1_0.90179'),  # RESIDE ITS
    ('astronaut_0.85_1.200.png (48,64,3) 1', 'astronaut_0.85_1.200'),  # scripts/synthesize_haze.py
    ('a.b.c.jpg (1,2,1) 0', 'a.b.c'),
    ('0001_s001.png (480,480,3) 1', '0001_s001'),  # DIV2K sub-images
])
def test_parser_drops_only_the_last_extension(tmp_path, line, key):
    (tmp_path / 'meta_info.txt').write_text(line + '\n')
    assert read_meta_info(str(tmp_path)) == {key: tuple(int(v) for v in line.split('(')[1].split(')')[0].split(','))}


def test_a_key_without_extension_is_malformed(tmp_path):
    (tmp_path / 'meta_info.txt').write_text('1_1_0.90179 (460,620,3) 1\n')
    with pytest.raises(LmdbIntegrityError) as err:
        read_meta_info(str(tmp_path), tool='my_tool.py')
    assert str(err.value) == (f"{tmp_path}/meta_info.txt:1: malformed line '1_1_0.90179 (460,620,3) 1' (expected "
                              "'KEY.png (H,W,C) LEVEL'); delete it and re-create it with my_tool.py.")


def test_hr_and_noise_datasets_keep_dotted_keys(tmp_path, hr_images):
    lmdb_path = _write_lmdb(tmp_path / 'hr.lmdb', hr_images)
    assert lmdb_keys(lmdb_path) == DOTTED
    hr = HRBicubicDataset({'dataroot_gt': lmdb_path, 'io_backend': {'type': 'lmdb'}, 'scale': 2, 'phase': 'val'})
    assert hr.paths == DOTTED and hr[1]['gt'].shape == (3, 32, 48)
    lmdb_path = _write_lmdb(tmp_path / 'clean.lmdb', hr_images)  # py-lmdb opens a database once per process
    noise = GaussianNoiseDataset({'dataroot_gt': lmdb_path, 'io_backend': {'type': 'lmdb'}, 'sigma': 15,
                                  'phase': 'val'})
    assert noise.paths == DOTTED and noise[0]['gt_path'] == '0001_0.8_0.2'


def test_checked_paired_dataset_keeps_dotted_keys(tmp_path, hr_images):
    """BasicSR's paired_paths_from_lmdb cuts keys at the first dot (0001_0.8_0.2 -> 0001_0), a key not stored."""
    gt = _write_lmdb(tmp_path / 'gt.lmdb', hr_images)
    lq = _write_lmdb(tmp_path / 'lq.lmdb', {k: bicubic_downscale(v, 2) for k, v in hr_images.items()})
    ds = CheckedPairedImageDataset({'dataroot_gt': gt, 'dataroot_lq': lq, 'io_backend': {'type': 'lmdb'},
                                    'filename_tmpl': '{}', 'scale': 2, 'phase': 'val'})
    assert [p['gt_path'] for p in ds.paths] == DOTTED
    item = ds[0]
    assert item['gt'].shape == (3, 32, 48) and item['lq'].shape == (3, 16, 24)
