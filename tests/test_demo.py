"""The quick-start demo: data layout, evaluation against bicubic, and a shortened end-to-end run."""
import csv
import importlib.util
import numpy as np
import os
import pytest
import torch
import yaml
from basicsr.utils.matlab_functions import imresize
from pathlib import Path

from msrn_plugin.demos.sr_demo import (DEMO_OPTION, LABEL_HEIGHT, build_demo_data, evaluate_sr, format_table,
                                       write_summary)
from msrn_plugin.utils.image_io import read_image
from msrn_plugin.utils.options import load_options
from msrn_plugin.utils.photos import HELD_OUT_PHOTOS, TRAIN_PHOTOS

REPO = Path(__file__).resolve().parent.parent


class _Bicubic(torch.nn.Module):
    """MATLAB bicubic upsampling as a 'network' (the demo's baseline)."""

    def forward(self, x):
        img = x[0].permute(1, 2, 0).numpy().astype(np.float64) * 255.
        up = np.clip(np.round(imresize(img, 4)), 0, 255) / 255.
        return torch.from_numpy(up).permute(2, 0, 1).unsqueeze(0).float()


@pytest.fixture(scope='module')
def demo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo')
    cwd = os.getcwd()
    os.chdir(root)
    try:
        paths = build_demo_data(progress=False)
    finally:
        os.chdir(cwd)
    return root, paths


def test_demo_data_layout(demo_dir):
    root, paths = demo_dir
    names = sorted(os.listdir(root / paths['val_gt']))
    assert names == sorted(os.path.splitext(n)[0] + '.png' for n in HELD_OUT_PHOTOS)
    for name in names:
        gt, lq = read_image(root / paths['val_gt'] / name), read_image(root / paths['val_lq'] / name)
        assert gt.shape[0] == 4 * lq.shape[0] and gt.shape[1] == 4 * lq.shape[1]
    hr_meta = (root / paths['train_hr'] / 'meta_info.txt').read_text().split('\n')
    lr_meta = (root / paths['train_lr'] / 'meta_info.txt').read_text().split('\n')
    assert len([line for line in hr_meta if line]) == len([line for line in lr_meta if line]) > 100
    assert len(os.listdir(root / 'datasets/demo/raw/DIV2K_train_HR')) == len(TRAIN_PHOTOS)


def test_held_out_photos_are_not_trained_on():
    assert not set(TRAIN_PHOTOS) & set(HELD_OUT_PHOTOS)


def test_demo_option_points_at_the_demo_data():
    opt = load_options(REPO / DEMO_OPTION)
    assert opt['datasets']['train']['dataroot_gt'] == 'datasets/demo/DIV2K/DIV2K_train_HR_sub.lmdb'
    assert opt['datasets']['val']['dataroot_gt'] == 'datasets/demo/holdout/GTmod4'
    assert opt['network_g']['upscale'] == opt['scale'] == 4


def test_evaluate_bicubic_network_equals_bicubic_baseline(demo_dir, tmp_path):
    root, paths = demo_dir
    rows = evaluate_sr(_Bicubic(), str(root / paths['val_gt']), str(root / paths['val_lq']), 4, save_dir=tmp_path)
    assert [r['name'] for r in rows] == sorted(os.path.splitext(n)[0] for n in HELD_OUT_PHOTOS)
    for row in rows:
        assert row['psnr_msrn'] == pytest.approx(row['psnr_bicubic'], abs=1e-6)
        assert 20 < row['psnr_bicubic'] < 40 and 0.3 < row['ssim_bicubic'] < 1
    mean = write_summary(rows, str(tmp_path / 'summary.csv'))
    with open(tmp_path / 'summary.csv') as f:
        table = list(csv.DictReader(f))
    assert table[-1]['name'] == 'mean'
    assert float(table[-1]['psnr_bicubic']) == pytest.approx(mean['psnr_bicubic'], abs=1e-4)
    assert '+0.00' in format_table(rows, mean).splitlines()[-1]


class _Darker(_Bicubic):
    """Bicubic minus 8 grey levels: another PSNR than bicubic's."""

    def forward(self, x):
        return (super().forward(x) - 8 / 255.).clamp(0, 1)


def test_compare_crops_are_captioned_with_each_psnr(demo_dir, tmp_path):
    """*_compare.png: HR | bicubic | MSRN centre crops, each over a white band captioned 'HR', 'bicubic P dB',
    'MSRN P dB'; a caption changes with its PSNR and with nothing else."""
    root, paths = demo_dir
    gt_dir, lq_dir = str(root / paths['val_gt']), str(root / paths['val_lq'])
    evaluate_sr(_Bicubic(), gt_dir, lq_dir, 4, save_dir=tmp_path / 'same')
    rows = evaluate_sr(_Darker(), gt_dir, lq_dir, 4, save_dir=tmp_path / 'darker')
    row = next(r for r in rows if r['name'] == 'camera')
    assert f'{row["psnr_msrn"]:.2f}' != f'{row["psnr_bicubic"]:.2f}'
    size, gap = 160, 4
    same, darker = (read_image(tmp_path / d / 'camera_compare.png') for d in ('same', 'darker'))
    assert same.shape == darker.shape == (size + LABEL_HEIGHT, 3 * size + 2 * gap, 3)
    gt = read_image(root / paths['val_gt'] / 'camera.png')
    top, left = (gt.shape[0] - size) // 2, (gt.shape[1] - size) // 2
    np.testing.assert_array_equal(same[:size, :size], gt[top:top + size, left:left + size])  # crops untouched

    def captions(img):
        return [img[size:, i * (size + gap):i * (size + gap) + size] for i in range(3)]

    for hr, bicubic, msrn in (captions(same), captions(darker)):
        for band in (hr, bicubic, msrn):
            assert band.max() == 255 and (band < 100).sum() > 20  # black text on white
        extent = [np.nonzero((band < 100).any(axis=(0, 2)))[0].max() for band in (hr, bicubic, msrn)]
        assert extent[0] < 40 and min(extent[1:]) > 90  # 'HR'; 'bicubic P dB' and 'MSRN P dB' are longer
    (hr_a, bic_a, msrn_a), (hr_b, bic_b, msrn_b) = captions(same), captions(darker)
    assert np.array_equal(hr_a, hr_b) and np.array_equal(bic_a, bic_b)  # same HR, same bicubic PSNR
    assert not np.array_equal(msrn_a, msrn_b)  # another MSRN PSNR, another caption


def test_demo_script_end_to_end(demo_dir, caplog):
    """scripts/demo.py with the demo options shortened to 4 iterations of a tiny network."""
    import logging
    caplog.set_level(logging.INFO)
    root, _ = demo_dir
    opt = load_options(REPO / DEMO_OPTION)
    opt['name'] = 'demo_e2e'
    opt['network_g'].update(num_feat=8, num_block=1)
    opt['train'].update(total_iter=4)
    opt['train']['scheduler'].update(periods=[4])
    opt['val']['val_freq'] = 4
    opt['logger'].update(print_freq=2, save_checkpoint_freq=4, use_tb_logger=False)
    opt['datasets']['train']['batch_size_per_gpu'] = 4
    (root / 'short.yml').write_text(yaml.safe_dump(_plain(opt)))
    spec = importlib.util.spec_from_file_location('demo_script', REPO / 'scripts' / 'demo.py')
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert script.main(['-opt', 'short.yml']) == 0
    finally:
        os.chdir(cwd)
    assert 'held-out photos:' in caplog.text and 'MSRN vs bicubic on 5 held-out photos' in caplog.text
    assert (root / 'experiments/demo_e2e/models/net_g_latest.pth').is_file()
    assert len(list((root / 'results/demo_e2e').glob('*_compare.png'))) == len(HELD_OUT_PHOTOS)


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj
