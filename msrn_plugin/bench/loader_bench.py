"""Training-data throughput (raw LMDB, BasicSR's PNG sub-image LMDB, PNG folders) behind scripts/benchmark_data.py."""
import copy
import os
import time
import torch
from torch.utils.data import DataLoader
from typing import Dict, Sequence

from msrn_plugin.data.lmdb_check import read_meta_info
from msrn_plugin.prep.div2k import hr_lmdb_name, lr_lmdb_name, prepare_div2k, raw_lmdb_name
from msrn_plugin.utils.image_io import write_image
from msrn_plugin.utils.photos import TRAIN_PHOTOS, load_photo


def build_miniature_div2k(root: str, photos: Sequence[str] = TRAIN_PHOTOS) -> str:
    """Write ``root/DIV2K_train_HR/0001.png, ...`` from bundled photos (HR only); returns ``root``."""
    for i, name in enumerate(photos, 1):
        write_image(os.path.join(root, 'DIV2K_train_HR', f'{i:04d}.png'), load_photo(name))
    return root


def export_lmdb_to_folder(lmdb_path: str, folder: str) -> str:
    """Write every image of a BasicSR LMDB to ``folder/KEY.png`` (the values are PNG files already); returns folder."""
    import lmdb
    os.makedirs(folder, exist_ok=True)
    keys = list(read_meta_info(lmdb_path))
    env = lmdb.open(lmdb_path, readonly=True, lock=False)
    try:
        with env.begin() as txn:
            for key in keys:
                with open(os.path.join(folder, f'{key}.png'), 'wb') as f:
                    f.write(txn.get(key.encode('ascii')))
    finally:
        env.close()
    return folder


def paired_dataset_opt(gt: str, lq: str, backend: str, scale: int, gt_size: int) -> dict:
    """Options of BasicSR's ``PairedImageDataset`` on a sub-image pair (flips and rotations on)."""
    return {'name': 'DIV2K', 'type': 'PairedImageDataset', 'dataroot_gt': gt, 'dataroot_lq': lq,
            'io_backend': {'type': backend}, 'filename_tmpl': '{}', 'gt_size': gt_size, 'use_hflip': True,
            'use_rot': True, 'scale': scale, 'phase': 'train'}


def raw_dataset_opt(dataroot: str, scale: int, gt_size: int) -> dict:
    """Options of ``RawLMDBDataset`` (flips and rotations on), as in ``options/train_MSRN_x{s}.yml``."""
    return {'name': 'DIV2K', 'type': 'RawLMDBDataset', 'dataroot': dataroot, 'io_backend': {'type': 'lmdb'},
            'gt_size': gt_size, 'use_hflip': True, 'use_rot': True, 'scale': scale, 'phase': 'train'}


def measure_loader(dataset_opt: dict, num_workers: int, batch_size: int = 16, num_batches: int = 20) -> float:
    """Patches per second delivered by a DataLoader over a registered dataset (after one warm-up batch).

    Args:
        dataset_opt (dict): Dataset options with ``type`` (:func:`paired_dataset_opt`, :func:`raw_dataset_opt`).
        num_workers (int): DataLoader worker processes (0: in this process).
        batch_size (int): Patches per batch. Default: 16.
        num_batches (int): Timed batches. Default: 20.

    Returns:
        float: Patches per second.
    """
    from basicsr.utils.registry import DATASET_REGISTRY
    dataset_opt = copy.deepcopy(dataset_opt)  # PairedImageDataset pops io_backend.type
    dataset = DATASET_REGISTRY.get(dataset_opt.get('type', 'PairedImageDataset'))(dataset_opt)
    sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=batch_size * (num_batches + 1))
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True)
    it = iter(loader)
    next(it)  # worker start-up and first reads are not throughput
    start = time.perf_counter()
    count = sum(batch['gt'].shape[0] for batch in it)
    return count / (time.perf_counter() - start)


def measure_train_step(scale: int = 4, batch_size: int = 16, lq_size: int = 64, num_feat: int = 64,
                       num_block: int = 8, steps: int = 2) -> Dict[str, float]:
    """Patches per second consumed by BasicSR ``SRModel.optimize_parameters`` with MSRN (L1, Adam), on the CPU.

    Args:
        scale (int): Upscale factor. Default: 4.
        batch_size (int): Patches per step (the option files use 16). Default: 16.
        lq_size (int): LR patch size (the paper uses 64). Default: 64.
        num_feat (int): MSRN width. Default: 64.
        num_block (int): MSRN blocks. Default: 8.
        steps (int): Timed steps after one warm-up step. Default: 2.

    Returns:
        dict: ``seconds_per_step`` and ``patches_per_s``.
    """
    from basicsr.models.sr_model import SRModel
    opt = {'num_gpu': 0, 'is_train': True, 'dist': False,
           'network_g': {'type': 'MSRN', 'num_feat': num_feat, 'num_block': num_block, 'upscale': scale},
           'path': {'pretrain_network_g': None, 'strict_load_g': True},
           'train': {'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 1e-4},
                     'scheduler': {'type': 'MultiStepLR', 'milestones': [200000], 'gamma': 0.5},
                     'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}}}
    model = SRModel(opt)
    data = {'lq': torch.rand(batch_size, 3, lq_size, lq_size),
            'gt': torch.rand(batch_size, 3, lq_size * scale, lq_size * scale)}
    model.feed_data(data)
    model.optimize_parameters(1)
    start = time.perf_counter()
    for i in range(steps):
        model.feed_data(data)
        model.optimize_parameters(i + 2)
    seconds = (time.perf_counter() - start) / steps
    return {'seconds_per_step': seconds, 'patches_per_s': batch_size / seconds}


def prepare_benchmark_data(root: str, scale: int = 4, crop_size: int = 288, step: int = 144,
                           folders: bool = True) -> Dict[str, object]:
    """Miniature DIV2K from the bundled photos in both formats: HR + x``scale`` sub-image PNG LMDBs (and the same
    sub-images as PNG folders), and the raw LMDB of the same images.

    Returns:
        dict: ``gt_lmdb``, ``lq_lmdb``, ``raw_lmdb`` (paths), ``gt_disk``/``lq_disk`` (folders, when ``folders``),
        ``png_bytes`` and ``raw_bytes`` (disk use of the two formats for this scale).
    """
    build_miniature_div2k(root)
    out = os.path.join(root, 'out')
    png = prepare_div2k(root, out, scales=(scale, ), crop_size=crop_size, step=step, progress=False)
    raw = prepare_div2k(root, out, scales=(scale, ), progress=False, data_format='raw')
    gt_lmdb, lq_lmdb = os.path.join(out, hr_lmdb_name()), os.path.join(out, lr_lmdb_name(scale))
    paths = {'gt_lmdb': gt_lmdb, 'lq_lmdb': lq_lmdb, 'raw_lmdb': os.path.join(out, raw_lmdb_name()),
             'png_bytes': sum(db['disk_bytes'] for db in png['databases'].values()),
             'raw_bytes': raw['databases']['raw']['disk_bytes']}
    if folders:
        paths['gt_disk'] = export_lmdb_to_folder(gt_lmdb, os.path.join(out, 'DIV2K_train_HR_sub'))
        paths['lq_disk'] = export_lmdb_to_folder(lq_lmdb, os.path.join(out, f'DIV2K_train_LR_bicubic_X{scale}_sub'))
    return paths
