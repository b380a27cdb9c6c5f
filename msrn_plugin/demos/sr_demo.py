"""The quick-start demo: MSRN x4 trained on the CPU on real photos, compared with bicubic on held-out photos.

What it is (and is not) and the files it writes: README.md, Quick start.
"""
import csv
import cv2
import logging
import numpy as np
import os
import torch
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import img2tensor, tensor2img
from basicsr.utils.matlab_functions import imresize
from os import path as osp
from typing import Dict, List, Optional, Sequence

from msrn_plugin.archs.msrn_arch import MSRN
from msrn_plugin.utils.atomic import atomic_write
from msrn_plugin.utils.checkpoint import safe_torch_load
from msrn_plugin.utils.image_io import read_image, write_image
from msrn_plugin.utils.photos import HELD_OUT_PHOTOS, TRAIN_PHOTOS, load_photo

logger = logging.getLogger(__name__)

DEMO_OPTION = osp.join('options', 'demo_MSRN_x4.yml')
DEMO_SCALE = 4
#: Sub-image grid of the demo LMDB (HR pixels): 192x192 crops every 96 pixels, for 96x96 GT patches.
DEMO_CROP_SIZE, DEMO_STEP = 192, 96
#: GT patch size of options/demo_MSRN_x4.yml (24x24 LR patches).
DEMO_GT_SIZE = 96


def build_demo_data(data_root: str = osp.join('datasets', 'demo'), progress: bool = True) -> Dict[str, str]:
    """Write the demo's DIV2K-style training LMDBs and the held-out benchmark from the bundled photos.

    Re-running skips finished work (the preparation functions check what exists).

    Args:
        data_root (str): Output folder. Default: 'datasets/demo'.
        progress (bool): Show progress bars. Default: True.

    Returns:
        dict: Paths: ``train_hr``, ``train_lr`` (LMDBs), ``val_gt``, ``val_lq`` (folders).
    """
    from msrn_plugin.prep.benchmark import prepare_benchmark
    from msrn_plugin.prep.div2k import prepare_div2k

    raw = osp.join(data_root, 'raw')
    train_dir, holdout_dir = osp.join(raw, 'DIV2K_train_HR'), osp.join(raw, 'holdout_HR')
    for idx, name in enumerate(TRAIN_PHOTOS, start=1):
        path = osp.join(train_dir, f'{idx:04d}.png')
        if not osp.isfile(path):
            write_image(path, load_photo(name))
    for name in HELD_OUT_PHOTOS:
        path = osp.join(holdout_dir, osp.splitext(name)[0] + '.png')
        if not osp.isfile(path):
            write_image(path, load_photo(name))
    prepare_div2k(raw, osp.join(data_root, 'DIV2K'), scales=(DEMO_SCALE, ), crop_size=DEMO_CROP_SIZE, step=DEMO_STEP,
                  progress=progress, gt_size=DEMO_GT_SIZE)
    prepare_benchmark(holdout_dir, osp.join(data_root, 'holdout'), scales=(DEMO_SCALE, ), progress=progress)
    return dict(
        train_hr=osp.join(data_root, 'DIV2K', 'DIV2K_train_HR_sub.lmdb'),
        train_lr=osp.join(data_root, 'DIV2K', f'DIV2K_train_LR_bicubic_X{DEMO_SCALE}_sub.lmdb'),
        val_gt=osp.join(data_root, 'holdout', f'GTmod{DEMO_SCALE}'),
        val_lq=osp.join(data_root, 'holdout', f'LRbicx{DEMO_SCALE}'))


#: Height (pixels) of the white caption band under each crop of a ``*_compare.png``.
LABEL_HEIGHT = 24


def _caption(text: str, width: int) -> np.ndarray:
    """A white ``LABEL_HEIGHT`` x ``width`` BGR band with ``text`` in black, shrunk to fit the width."""
    band = np.full((LABEL_HEIGHT, width, 3), 255, np.uint8)
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.45
    while scale > 0.2 and cv2.getTextSize(text, font, scale, 1)[0][0] > width - 6:
        scale -= 0.05
    cv2.putText(band, text, (3, LABEL_HEIGHT - 8), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return band


def _side_by_side(images: Sequence[np.ndarray], labels: Sequence[str], size: int = 160) -> np.ndarray:
    """Centre crops of equally sized BGR images, each captioned underneath, side by side with a 4-pixel white gap.

    Args:
        images (Sequence[np.ndarray]): HxWx3 uint8 images of the same size.
        labels (Sequence[str]): One caption per image, e.g. ``'bicubic 27.31 dB'``.
        size (int): Crop size (smaller images are cropped to their shorter side). Default: 160.

    Returns:
        np.ndarray: ``(size + LABEL_HEIGHT) x (n * size + 4 * (n - 1)) x 3`` uint8.
    """
    h, w = images[0].shape[:2]
    size = min(size, h, w)
    top, left = (h - size) // 2, (w - size) // 2
    gap = np.full((size + LABEL_HEIGHT, 4, 3), 255, np.uint8)
    panels = []
    for img, label in zip(images, labels):
        panels += [np.concatenate([img[top:top + size, left:left + size], _caption(label, size)]), gap]
    return np.concatenate(panels[:-1], axis=1)


def evaluate_sr(net: torch.nn.Module,
                gt_dir: str,
                lq_dir: str,
                scale: int,
                save_dir: Optional[str] = None) -> List[Dict[str, float]]:
    """PSNR/SSIM of ``net`` and of MATLAB bicubic upsampling on a ``GTmod``/``LRbic`` benchmark folder pair.

    The official protocol: Y channel (MATLAB ``rgb2ycbcr``), ``scale`` border pixels cropped.

    Args:
        net (nn.Module): SR network, input/output in [0, 1], on the CPU.
        gt_dir (str): HR images mod-cropped to ``scale``.
        lq_dir (str): LR images with the same file names.
        scale (int): Upscaling factor.
        save_dir (str | None): If given, write ``<name>_MSRN.png``, ``<name>_bicubic.png`` and
            ``<name>_compare.png`` (HR | bicubic | MSRN centre crops, captioned with the PSNR of each) there.
            Default: None.

    Returns:
        list[dict]: One row per image: ``name``, ``psnr_bicubic``, ``ssim_bicubic``, ``psnr_msrn``, ``ssim_msrn``.
    """
    rows = []
    net.eval()
    for name in sorted(os.listdir(gt_dir)):
        gt = read_image(osp.join(gt_dir, name))
        lq = read_image(osp.join(lq_dir, name))
        bicubic = np.clip(np.round(imresize(lq.astype(np.float32), scale)), 0, 255).astype(np.uint8)
        with torch.no_grad():
            sr = tensor2img(net(img2tensor(lq.astype(np.float32) / 255.).unsqueeze(0)))
        metric = dict(crop_border=scale, input_order='HWC', test_y_channel=True)
        rows.append(
            dict(
                name=osp.splitext(name)[0],
                psnr_bicubic=calculate_psnr(bicubic, gt, **metric),
                ssim_bicubic=calculate_ssim(bicubic, gt, **metric),
                psnr_msrn=calculate_psnr(sr, gt, **metric),
                ssim_msrn=calculate_ssim(sr, gt, **metric)))
        if save_dir is not None:
            stem = osp.splitext(name)[0]
            write_image(osp.join(save_dir, f'{stem}_MSRN.png'), sr)
            write_image(osp.join(save_dir, f'{stem}_bicubic.png'), bicubic)
            row = rows[-1]
            labels = ['HR', f'bicubic {row["psnr_bicubic"]:.2f} dB', f'MSRN {row["psnr_msrn"]:.2f} dB']
            write_image(osp.join(save_dir, f'{stem}_compare.png'), _side_by_side([gt, bicubic, sr], labels))
    return rows


def load_demo_network(checkpoint: str, network_opt: Dict) -> MSRN:
    """Build MSRN from an option file's ``network_g`` block and load a BasicSR checkpoint (``params``)."""
    kwargs = {k: v for k, v in network_opt.items() if k != 'type'}
    net = MSRN(**kwargs)
    net.load_state_dict(safe_torch_load(checkpoint)['params'], strict=True)
    return net


def write_summary(rows: List[Dict[str, float]], path: str) -> Dict[str, float]:
    """Write per-image rows and their mean to a CSV file; return the mean row."""
    keys = ['psnr_bicubic', 'ssim_bicubic', 'psnr_msrn', 'ssim_msrn']
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with atomic_write(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=['name'] + keys)
        writer.writeheader()
        for row in rows + [dict(name='mean', **mean)]:
            writer.writerow({k: (f'{v:.4f}' if isinstance(v, float) else v) for k, v in row.items()})
    return mean


def format_table(rows: List[Dict[str, float]], mean: Dict[str, float]) -> str:
    """A plain-text table of the evaluation."""
    lines = [f'{"image":<10} {"bicubic PSNR/SSIM":>20} {"MSRN PSNR/SSIM":>20} {"gain (dB)":>10}']
    for row in rows + [dict(name='mean', **mean)]:
        lines.append(f'{row["name"]:<10} {row["psnr_bicubic"]:>11.2f} / {row["ssim_bicubic"]:.4f} '
                     f'{row["psnr_msrn"]:>11.2f} / {row["ssim_msrn"]:.4f} '
                     f'{row["psnr_msrn"] - row["psnr_bicubic"]:>+10.2f}')
    return '\n'.join(lines)
