"""Training through the plugin's entry points on the CPU: checkpoints, validation, and --auto_resume continuity."""
import cv2
import numpy as np
import os
import pytest
import re
import subprocess
import sys
import torch
import yaml
from basicsr.utils.matlab_functions import imresize
from pathlib import Path

from msrn_plugin.utils.photos import load_photo

REPO = Path(__file__).resolve().parent.parent
TRAIN_PY = REPO / 'msrn_plugin' / 'train.py'


def _make_pairs(root: Path) -> None:
    """Two 64x64 HR crops of real photos and their x4 MATLAB-bicubic LR."""
    for name in ('astronaut.png', 'coffee.png'):
        hr = load_photo(name)[100:164, 100:164]
        lr = imresize(hr.astype(np.float64) / 255., 1 / 4)
        for sub, img in (('gt', hr), ('lq', np.clip(lr * 255. + 0.5, 0, 255).astype(np.uint8))):
            (root / sub).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / sub / name), img)


def _options(root: Path, total_iter: int, name: str = 'msrn_entry') -> dict:
    """Every iteration sees the whole 2-image set (batch 2, no crop, no flips): resumed == uninterrupted."""
    paired = dict(type='PairedImageDataset', dataroot_gt=str(root / 'gt'), dataroot_lq=str(root / 'lq'),
                  io_backend={'type': 'disk'})
    return {
        'name': name, 'model_type': 'SRModel', 'scale': 4, 'num_gpu': 'auto', 'manual_seed': 0,
        'datasets': {
            'train': dict(paired, name='pairs', gt_size=64, use_hflip=False, use_rot=False, num_worker_per_gpu=0,
                          batch_size_per_gpu=2, dataset_enlarge_ratio=1),
            'val': dict(paired, name='pairs_val'),
        },
        'network_g': {'type': 'MSRN', 'num_feat': 8, 'num_block': 1, 'upscale': 4},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.999]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [4], 'gamma': 0.5},
            'total_iter': total_iter, 'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        },
        'val': {'val_freq': 3, 'save_img': False, 'suffix': None,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 3, 'use_tb_logger': False},
    }


def _train(cwd: Path, opt: dict, *flags: str, module: bool = False) -> str:
    opt_path = cwd / f'{opt["name"]}.yml'
    opt_path.write_text(yaml.safe_dump(opt))
    entry = ['-m', 'msrn_plugin.train'] if module else [str(TRAIN_PY)]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    result = subprocess.run([sys.executable, *entry, '-opt', str(opt_path), *flags], cwd=cwd, capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """One uninterrupted 6-iteration run and one 3-iteration run resumed to 6 (via ``python -m``)."""
    data = tmp_path_factory.mktemp('data')
    _make_pairs(data)
    straight, resumed = tmp_path_factory.mktemp('straight'), tmp_path_factory.mktemp('resumed')
    log_straight = _train(straight, _options(data, 6))
    log_first = _train(resumed, _options(data, 3))
    log_resume = _train(resumed, _options(data, 6), '--auto_resume', module=True)
    return dict(straight=straight, resumed=resumed, log_straight=log_straight, log_first=log_first,
                log_resume=log_resume)


def test_outputs_under_working_directory(runs):
    exp = runs['straight'] / 'experiments' / 'msrn_entry'
    assert sorted(os.listdir(exp / 'models')) == ['net_g_3.pth', 'net_g_6.pth', 'net_g_latest.pth']
    assert sorted(os.listdir(exp / 'training_states')) == ['3.state', '6.state']
    assert not [f for f in os.listdir(exp / 'models') if f.endswith('.tmp')]


def test_validation_reports_psnr(runs):
    psnrs = [float(v) for v in re.findall(r'# psnr: ([\d.]+)', runs['log_straight'])]
    assert len(psnrs) == 3  # iterations 3 and 6, and after training
    assert all(10 < v < 60 for v in psnrs)


def test_resume_continues_at_next_iteration(runs):
    assert 'Resuming training from epoch: 2, iter: 3.' in runs['log_resume']
    iters = [int(v) for v in re.findall(r'iter:\s+(\d+), lr', runs['log_resume'])]
    assert iters == [4, 5, 6]
    assert re.search(r'iter:\s+4, lr:\(1\.000e-03,\)', runs['log_resume'])  # scheduler state: milestone at 4
    assert re.search(r'iter:\s+5, lr:\(5\.000e-04,\)', runs['log_resume'])


def test_resumed_run_equals_uninterrupted_run(runs):
    """Same weights only if the optimizer (Adam moments) and scheduler states were restored."""
    a = torch.load(runs['straight'] / 'experiments/msrn_entry/models/net_g_6.pth', weights_only=True)['params']
    b = torch.load(runs['resumed'] / 'experiments/msrn_entry/models/net_g_6.pth', weights_only=True)['params']
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    state = torch.load(runs['resumed'] / 'experiments/msrn_entry/training_states/6.state', weights_only=True)
    assert state['iter'] == 6 and state['optimizers'][0]['state'][0]['step'] == 6
