"""Builders shared by the catalogue tests: tiny LQ/GT folders and LMDBs from the bundled photos, option files."""
import copy
import numpy as np
import os
import subprocess
import sys
import yaml
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from basicsr.utils.matlab_functions import imresize
from typing import Dict, List, Optional

from msrn_plugin.utils.image_io import write_image
from msrn_plugin.utils.photos import load_photo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = ('astronaut.png', 'coffee.png', 'chelsea.png')


def make_pairs(root: str, scale: int = 2, size: int = 48, count: int = 2) -> Dict[str, str]:
    """Write ``count`` GT crops (``size`` x ``size``) of bundled photos and their bicubic LQ (MATLAB imresize).

    Returns:
        dict: ``{'gt': folder, 'lq': folder}``.
    """
    gt_dir, lq_dir = os.path.join(root, 'GT'), os.path.join(root, 'LQ')
    for i in range(count):
        gt = load_photo(PHOTOS[i % len(PHOTOS)])[100:100 + size, 120:120 + size]
        lq = np.clip(np.round(imresize(gt.astype(np.float64) / 255., 1 / scale) * 255.), 0, 255).astype(np.uint8)
        write_image(os.path.join(gt_dir, f'img{i:03d}.png'), gt)
        write_image(os.path.join(lq_dir, f'img{i:03d}.png'), lq)
    return {'gt': gt_dir, 'lq': lq_dir}


def make_lmdb(folder: str, lmdb_path: str) -> str:
    """Pack every PNG of ``folder`` into ``lmdb_path`` with BasicSR's ``make_lmdb_from_imgs`` (keys = stems)."""
    names = sorted(n for n in os.listdir(folder) if n.endswith('.png'))
    make_lmdb_from_imgs(folder, lmdb_path, names, [os.path.splitext(n)[0] for n in names], n_thread=1,
                        map_size=1 << 24)
    return lmdb_path


def network(scale: int = 2) -> dict:
    return {'type': 'MSRN', 'num_feat': 8, 'num_block': 1, 'upscale': scale}


def train_options(gt: str, lq: str, scale: int = 2, name: str = 'catalogue', total_iter: int = 4,
                  save_freq: int = 2, backend: str = 'disk', gt_size: Optional[int] = None) -> dict:
    """Tiny MSRN training options over an LQ/GT pair (CPU, no tensorboard, no validation)."""
    return {
        'name': name, 'model_type': 'SRModel', 'scale': scale, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'train': {
            'name': 'tiny', 'type': 'PairedImageDataset', 'dataroot_gt': gt, 'dataroot_lq': lq,
            'io_backend': {'type': backend}, 'gt_size': gt_size or 16 * scale, 'use_hflip': True, 'use_rot': True,
            'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1}},
        'network_g': network(scale),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'scheduler': {'type': 'MultiStepLR', 'milestones': [1000],
                                                                          'gamma': 0.5},
                  'total_iter': total_iter, 'warmup_iter': -1,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': save_freq, 'use_tb_logger': False},
    }


def eval_options(gt: str, lq: str, pretrained: Optional[str], scale: int = 2, name: str = 'catalogue_test') -> dict:
    """Tiny MSRN test options over an LQ/GT pair."""
    return {
        'name': name, 'model_type': 'SRModel', 'scale': scale, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'test_1': {'name': 'tiny', 'type': 'PairedImageDataset', 'dataroot_gt': gt, 'dataroot_lq': lq,
                                'io_backend': {'type': 'disk'}}},
        'network_g': network(scale),
        'path': {'pretrain_network_g': pretrained, 'strict_load_g': True, 'param_key_g': 'params'},
        'val': {'save_img': False, 'suffix': None,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': scale, 'test_y_channel': True}}},
    }


def edit(opt: dict, **changes) -> dict:
    """A deep copy of ``opt`` with ``changes``; keys are dotted paths given with ``__`` (``network_g__upscale=3``)."""
    out = copy.deepcopy(opt)
    for dotted, value in changes.items():
        keys = dotted.split('__')
        node = out
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return out


def write_options(path: str, opt: dict) -> str:
    with open(path, 'w', encoding='utf-8') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return str(path)


def run_cli(script: str, args: List[str], cwd: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python msrn_plugin/<script> ...`` from ``cwd`` with 1 torch thread; returns the completed process."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    return subprocess.run([sys.executable, os.path.join(REPO, 'msrn_plugin', script)] + args, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def files_under(root: str) -> List[str]:
    """Every file and folder under ``root`` (relative, sorted)."""
    out = []
    for folder, dirs, names in os.walk(root):
        out += [os.path.relpath(os.path.join(folder, n), root) for n in dirs + names]
    return sorted(out)
