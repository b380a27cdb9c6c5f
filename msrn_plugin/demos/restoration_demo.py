"""Denoising and dehazing demos on bundled photos: train a tiny MSRN through BasicSR, then score it."""
import copy
import logging
import numpy as np
import os
import time
import torch
import yaml
from collections import OrderedDict
from os import path as osp
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence

from msrn_plugin.prep.haze import synthesize_haze_pairs
from msrn_plugin.utils.atomic import atomic_write
from msrn_plugin.utils.checkpoint import safe_torch_load
from msrn_plugin.utils.image_io import write_image
from msrn_plugin.utils.misc import PathType
from msrn_plugin.utils.options import load_options
from msrn_plugin.utils.photos import HELD_OUT_PHOTOS, TRAIN_PHOTOS, load_photo

logger = logging.getLogger(__name__)

TASKS = ('denoise', 'dehaze')


class PSNRRow(NamedTuple):
    """PSNR (dB) of one held-out image: degraded input and restored output, both against the clean image."""
    name: str
    psnr_input: float
    psnr_output: float


class DemoResult(NamedTuple):
    """What a demo measured."""
    task: str
    rows: List[PSNRRow]
    iterations: int
    train_seconds: float
    experiment_dir: str

    @property
    def mean_input(self) -> float:
        return float(np.mean([r.psnr_input for r in self.rows]))

    @property
    def mean_output(self) -> float:
        return float(np.mean([r.psnr_output for r in self.rows]))


def derive_options(base: Mapping, overrides: Mapping) -> OrderedDict:
    """A deep copy of ``base`` with ``overrides`` merged in (nested mappings merge; other values replace).

    Args:
        base (Mapping): Options, e.g. from :func:`msrn_plugin.utils.options.load_options` (not modified).
        overrides (Mapping): Values to set; a mapping value merges into the mapping at the same key.

    Returns:
        OrderedDict: The merged options.
    """
    merged = OrderedDict(copy.deepcopy(dict(base)))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = derive_options(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def write_options(opt: Mapping, path: PathType) -> str:
    """Write options as a plain YAML option file that BasicSR (and :func:`load_options`) can read.

    Args:
        opt (Mapping): Options (nested mappings, lists, scalars).
        path (str | PathLike): Output ``.yml`` file; its folder is created.

    Returns:
        str: The path written.
    """

    def plain(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    path = os.fspath(path)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with atomic_write(path, 'w', encoding='utf-8') as f:
        yaml.safe_dump(plain(opt), f, sort_keys=False)
    return path


def _center_crop(img: np.ndarray, max_size: int) -> np.ndarray:
    h, w = img.shape[:2]
    th, tw = min(h, max_size), min(w, max_size)
    top, left = (h - th) // 2, (w - tw) // 2
    return img[top:top + th, left:left + tw, ...]


def prepare_photos(folder: PathType, names: Sequence[str], color: bool = True, max_size: int = 512) -> str:
    """Write centre crops (at most ``max_size`` square) of bundled photos as PNG files into ``folder``.

    Args:
        folder (str | PathLike): Output folder (created).
        names (Sequence[str]): Photo file names, e.g. :data:`msrn_plugin.utils.photos.TRAIN_PHOTOS`.
        color (bool): Colour (BGR) or grey images. Default: True.
        max_size (int): Largest height/width kept. Default: 512.

    Returns:
        str: The folder.
    """
    folder = os.fspath(folder)
    for name in names:
        write_image(osp.join(folder, f'{osp.splitext(name)[0]}.png'), _center_crop(load_photo(name, color), max_size))
    return folder


def prepare_haze_photos(folder: PathType, names: Sequence[str], seed: int, num_per_image: int = 1,
                        max_size: int = 512) -> str:
    """Synthesise hazy/clear pairs (default ranges of :mod:`msrn_plugin.prep.haze`) for bundled photos.

    Args:
        folder (str | PathLike): Output folder (gets ``clear/`` and ``hazy/``); replaced if it exists.
        names (Sequence[str]): Photo file names.
        seed (int): Haze seed.
        num_per_image (int): Hazy versions per photo. Default: 1.
        max_size (int): Largest height/width kept (centre crop). Default: 512.

    Returns:
        str: The folder.
    """
    images = ((osp.splitext(n)[0], _center_crop(load_photo(n), max_size)) for n in names)
    synthesize_haze_pairs(images, folder, num_per_image=num_per_image, seed=seed, overwrite=True, total=len(names))
    return os.fspath(folder)


def demo_overrides(task: str,
                   data_dir: str,
                   name: str,
                   total_iter: int,
                   num_feat: int,
                   num_block: int,
                   gt_size: int,
                   batch_size: int,
                   lr: float,
                   num_train_images: int,
                   sigma: Optional[float] = None,
                   num_worker: int = 0) -> Dict[str, Any]:
    """The changes that turn a shipped training option file into a CPU demo run on ``data_dir``.

    Args:
        task (str): 'denoise' or 'dehaze'.
        data_dir (str): Folder made by :func:`run_demo` (``train/``, ``val/``).
        name (str): Experiment name (must not contain 'debug').
        total_iter (int): Training iterations.
        num_feat (int): MSRN ``num_feat``.
        num_block (int): MSRN ``num_block``.
        gt_size (int): Training patch size.
        batch_size (int): Batch size.
        lr (float): Adam learning rate (halved at 80% of the iterations).
        num_train_images (int): Number of training images (sets ``dataset_enlarge_ratio`` so that one epoch covers
            all iterations).
        sigma (float | None): Denoising noise level (train and val); None keeps the option file's. Default: None.
        num_worker (int): Data-loading worker processes. Default: 0.

    Returns:
        dict: Overrides for :func:`derive_options`.
    """
    if task == 'denoise':
        train_data = {'dataroot_gt': osp.join(data_dir, 'train'), 'io_backend': {'type': 'disk'}}
        val_data = {'name': 'held_out_photos', 'dataroot_gt': osp.join(data_dir, 'val')}
        if sigma is not None:
            train_data['sigma'] = val_data['sigma'] = sigma
    else:
        train_data = {'dataroot_lq': osp.join(data_dir, 'train', 'hazy'), 'dataroot_gt': osp.join(data_dir, 'train',
                                                                                                   'clear')}
        val_data = {'name': 'held_out_photos', 'dataroot_lq': osp.join(data_dir, 'val', 'hazy'),
                    'dataroot_gt': osp.join(data_dir, 'val', 'clear')}
    train_data.update({'gt_size': gt_size, 'batch_size_per_gpu': batch_size, 'num_worker_per_gpu': num_worker,
                       'dataset_enlarge_ratio': total_iter * batch_size // max(1, num_train_images) + 1})
    return {
        'name': name,
        'num_gpu': 0,
        'datasets': {'train': train_data, 'val': val_data},
        'network_g': {'num_feat': num_feat, 'num_block': num_block},
        'train': {'optim_g': {'lr': lr}, 'scheduler': {'milestones': [max(1, int(total_iter * 0.8))]},
                  'total_iter': total_iter},
        'val': {'val_freq': total_iter + 1},  # BasicSR validates once after the last iteration anyway
        'logger': {'print_freq': max(1, total_iter // 10), 'save_checkpoint_freq': total_iter,
                   'use_tb_logger': False},
    }


@torch.no_grad()
def evaluate_psnr(opt: Mapping, checkpoint: PathType, dataset_key: str = 'val') -> List[PSNRRow]:
    """PSNR of input and output against the ground truth for every image of one dataset of ``opt``.

    Args:
        opt (Mapping): Options with ``network_g`` and ``datasets[dataset_key]`` (not modified).
        checkpoint (str | PathLike): BasicSR checkpoint (``{'params': state_dict}``).
        dataset_key (str): Key under ``opt['datasets']``. Default: 'val'.

    Returns:
        list[PSNRRow]: One row per image, in dataset order.
    """
    from basicsr.archs import build_network
    from basicsr.data import build_dataset
    from basicsr.metrics import calculate_psnr
    from basicsr.utils import tensor2img

    dataset_opt = copy.deepcopy(dict(opt['datasets'][dataset_key]))
    dataset_opt['phase'] = 'val'
    dataset = build_dataset(dataset_opt)
    net = build_network(copy.deepcopy(dict(opt['network_g'])))
    net.load_state_dict(safe_torch_load(checkpoint)['params'])
    net.eval()
    rows = []
    for i in range(len(dataset)):
        item = dataset[i]
        output = net(item['lq'][None])
        gt = tensor2img(item['gt'])
        rows.append(PSNRRow(osp.splitext(osp.basename(item['lq_path']))[0],
                            calculate_psnr(tensor2img(item['lq']), gt, crop_border=0),
                            calculate_psnr(tensor2img(output), gt, crop_border=0)))
    return rows


def run_demo(task: str,
             work_dir: PathType,
             base_options: PathType,
             total_iter: int = 400,
             num_feat: int = 16,
             num_block: int = 2,
             gt_size: int = 48,
             batch_size: int = 8,
             lr: float = 5e-4,
             sigma: Optional[float] = None,
             gray: bool = False,
             num_per_image: int = 4,
             max_size: int = 384,
             num_worker: int = 0) -> DemoResult:
    """Build the data, train a tiny MSRN with BasicSR's pipeline, and score it on the held-out photos.

    Args:
        task (str): 'denoise' or 'dehaze'.
        work_dir (str | PathLike): Folder for data, option file and ``experiments/`` (created).
        base_options (str | PathLike): Shipped training option file to derive from, e.g.
            ``options/train_MSRN_denoise_color_sigma25.yml``.
        total_iter (int): Training iterations. Default: 400.
        num_feat (int): MSRN ``num_feat``. Default: 16.
        num_block (int): MSRN ``num_block``. Default: 2.
        gt_size (int): Training patch size. Default: 48.
        batch_size (int): Batch size. Default: 8.
        lr (float): Adam learning rate. Default: 5e-4.
        sigma (float | None): Denoising: noise level; None keeps the option file's. Default: None.
        gray (bool): Denoising: grey photos (use a grey option file). Default: False.
        num_per_image (int): Dehazing: hazy versions per training photo. Default: 4.
        max_size (int): Photos are centre-cropped to at most this size. Default: 384.
        num_worker (int): Data-loading worker processes. Default: 0.

    Returns:
        DemoResult: Per-photo PSNR, iterations, training time, experiment folder.
    """
    from msrn_plugin.utils.pipeline import run_pipeline

    if task not in TASKS:
        raise ValueError(f'task must be one of {TASKS}, got {task!r}.')
    work_dir = osp.abspath(os.fspath(work_dir))
    data_dir = osp.join(work_dir, f'{task}_data')
    if task == 'denoise':
        prepare_photos(osp.join(data_dir, 'train'), TRAIN_PHOTOS, color=not gray, max_size=max_size)
        prepare_photos(osp.join(data_dir, 'val'), HELD_OUT_PHOTOS, color=not gray, max_size=max_size)
        num_train = len(TRAIN_PHOTOS)
    else:
        prepare_haze_photos(osp.join(data_dir, 'train'), TRAIN_PHOTOS, seed=0, num_per_image=num_per_image,
                            max_size=max_size)
        prepare_haze_photos(osp.join(data_dir, 'val'), HELD_OUT_PHOTOS, seed=1, max_size=max_size)
        num_train = len(TRAIN_PHOTOS) * num_per_image

    name = f'MSRN_demo_{task}'
    opt = derive_options(
        load_options(base_options),
        demo_overrides(task, data_dir, name, total_iter, num_feat, num_block, gt_size, batch_size, lr, num_train,
                       sigma, num_worker))
    opt_path = write_options(opt, osp.join(work_dir, f'{name}.yml'))
    start = time.time()
    run_pipeline('train', ['-opt', opt_path], root_path=work_dir)
    train_seconds = time.time() - start
    experiment_dir = osp.join(work_dir, 'experiments', name)
    rows = evaluate_psnr(opt, osp.join(experiment_dir, 'models', 'net_g_latest.pth'))
    result = DemoResult(task, rows, total_iter, train_seconds, experiment_dir)
    logger.info(f'{task}: mean PSNR {result.mean_input:.2f} dB (input) -> {result.mean_output:.2f} dB (output) on '
                f'{len(rows)} held-out photos after {total_iter} iterations ({train_seconds:.0f} s).')
    return result


def format_result(result: DemoResult) -> str:
    """A plain-text table of a demo result."""
    degraded = 'noisy' if result.task == 'denoise' else 'hazy'
    lines = [f'{result.task}: {result.iterations} iterations, {result.train_seconds:.0f} s of training '
             f'({result.experiment_dir})',
             f'{"held-out photo":<16}{degraded + " input":>14}{"MSRN output":>14}{"gain":>8}']
    for r in result.rows + [PSNRRow('mean', result.mean_input, result.mean_output)]:
        gain = r.psnr_output - r.psnr_input
        lines.append(f'{r.name:<16}{r.psnr_input:>11.2f} dB{r.psnr_output:>11.2f} dB{gain:>+8.2f}')
    return '\n'.join(lines)


__all__ = ['DemoResult', 'PSNRRow', 'demo_overrides', 'derive_options', 'evaluate_psnr', 'format_result',
           'prepare_haze_photos', 'prepare_photos', 'run_demo', 'write_options']
