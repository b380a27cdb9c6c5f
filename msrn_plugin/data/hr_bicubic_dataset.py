"""HR-only SR dataset: the LR input is made on the fly with MATLAB bicubic, for any integer scale."""
import numpy as np
import os
import random
from basicsr.data.transforms import augment
from basicsr.utils import bgr2ycbcr, imfrombytes, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data as data
from torchvision.transforms.functional import normalize
from typing import List, Tuple

from msrn_plugin.data.io_backend import FileClientMixin
from msrn_plugin.data.lmdb_check import check_lmdb
from msrn_plugin.prep.bicubic import bicubic_downscale, mod_crop
from msrn_plugin.utils.image_io import is_image_file

# HR pixels of context (in units of the scale) kept around a training patch before downscaling, so that the LR patch
# equals the same window of the whole image's LR: the antialiased bicubic kernel reaches 2 LR pixels (+1 for the
# index rounding) beyond each output pixel.
_CONTEXT = 4


@DATASET_REGISTRY.register()
class HRBicubicDataset(FileClientMixin, data.Dataset):
    """HR images only (a folder or a BasicSR LMDB); LR = MATLAB bicubic of the HR (patch), made on the fly.

    For users who only have HR images: no LR copy on disk, one dataset for every scale. The LR is exactly what
    ``scripts/prepare_div2k.py`` writes for a missing LR folder (:func:`msrn_plugin.prep.bicubic.bicubic_downscale`
    of the HR mod-cropped to the scale, rounded to uint8): in training, a patch whose corner is on the scale's grid is
    downscaled with enough surrounding HR pixels that its LR equals the same window of the whole image's LR.

    Args:
        opt (dict): Config for the dataset. It contains the following keys:
            dataroot_gt (str): HR folder, or a ``.lmdb`` folder with ``io_backend.type: lmdb``.
            io_backend (dict): ``{type: disk}`` or ``{type: lmdb}``.
            meta_info_file (str, optional): With the disk backend, a file whose lines start with image names
                relative to ``dataroot_gt``. Default: every image file of ``dataroot_gt``.
            gt_size (int): Training GT patch size, a multiple of ``scale``.
            use_hflip (bool): Random horizontal flips (training). Default: True.
            use_rot (bool): Random rotations (training). Default: True.
            color (str, optional): 'y' for the Y channel only. Default: BGR.
            mean (list, optional), std (list, optional): Normalisation, as in BasicSR. Default: none.
            scale (int): Scale (added by BasicSR from the top-level ``scale``).
            phase (str): 'train' (random patches) or anything else (whole images mod-cropped to the scale).
    """

    def __init__(self, opt: dict):
        super().__init__()
        self.opt = opt
        self.scale = int(opt['scale'])
        self.gt_folder = opt['dataroot_gt']
        self.init_io_backend(opt['io_backend'], {'gt': self.gt_folder})
        self.mean = opt.get('mean')
        self.std = opt.get('std')
        if opt.get('phase') == 'train':
            gt_size = opt.get('gt_size')
            if not isinstance(gt_size, int) or gt_size < self.scale or gt_size % self.scale:
                raise ValueError(f'{opt.get("name", "HRBicubicDataset")}: gt_size must be a positive multiple of '
                                 f'scale {self.scale}, got {gt_size!r}; e.g. gt_size: {64 * self.scale}.')
        if self.io_backend_opt['type'] == 'lmdb':
            self.paths = list(check_lmdb(self.gt_folder))
        else:
            self.paths = self._paths_from_disk()

    def _paths_from_disk(self) -> List[str]:
        folder = self.gt_folder
        if not os.path.isdir(folder):
            raise FileNotFoundError(f'{folder}: dataroot_gt folder not found; point dataroot_gt at a folder of HR '
                                    'images, or at a .lmdb folder with io_backend.type: lmdb.')
        meta = self.opt.get('meta_info_file')
        if meta:
            with open(meta, encoding='utf-8') as f:
                names = [line.split(' ')[0].strip() for line in f if line.strip()]
            missing = [n for n in names if not os.path.isfile(os.path.join(folder, n))]
            if missing:
                raise FileNotFoundError(f'{meta}: lists {len(missing)} image(s) missing from {folder}, e.g. '
                                        f'{missing[0]}; fix the file or the folder.')
        else:
            names = sorted(n for n in os.listdir(folder) if is_image_file(n))
        if not names:
            raise FileNotFoundError(f'{folder}: no HR image found (.png, .jpg, ...).')
        return [os.path.join(folder, n) for n in names]

    def _random_patch(self, img_gt: np.ndarray, gt_path: str) -> Tuple[np.ndarray, np.ndarray]:
        s, gt_size = self.scale, self.opt['gt_size']
        h, w = img_gt.shape[:2]
        if h < gt_size or w < gt_size:
            raise ValueError(f'{gt_path}: HR {w}x{h} is smaller than gt_size {gt_size}; lower gt_size or remove the '
                             'image.')
        top = random.randint(0, (h - gt_size) // s) * s
        left = random.randint(0, (w - gt_size) // s) * s
        margin = _CONTEXT * s
        y0, x0 = max(0, top - margin), max(0, left - margin)
        y1, x1 = min(h, top + gt_size + margin), min(w, left + gt_size + margin)
        lq = bicubic_downscale(img_gt[y0:y1, x0:x1], s)
        ty, tx, size = (top - y0) // s, (left - x0) // s, gt_size // s
        # contiguous copies: BasicSR's augment flips in place, which OpenCV 5 refuses on strided views
        return (np.ascontiguousarray(img_gt[top:top + gt_size, left:left + gt_size]),
                np.ascontiguousarray(lq[ty:ty + size, tx:tx + size]))

    def __getitem__(self, index: int) -> dict:
        gt_path = self.paths[index]
        img_gt = imfrombytes(self.read_bytes(gt_path, 'gt'), float32=False)  # uint8 BGR
        if img_gt is None:
            raise ValueError(f'{gt_path}: not a readable image; re-copy or remove it.')
        img_gt = mod_crop(img_gt, self.scale)
        if self.opt.get('phase') == 'train':
            img_gt, img_lq = self._random_patch(img_gt, gt_path)
            img_gt, img_lq = augment([img_gt, img_lq], self.opt.get('use_hflip', True), self.opt.get('use_rot', True))
        else:
            img_lq = bicubic_downscale(img_gt, self.scale)
        img_gt, img_lq = img_gt.astype(np.float32) / 255., img_lq.astype(np.float32) / 255.
        if self.opt.get('color') == 'y':
            img_gt = bgr2ycbcr(img_gt, y_only=True)[..., None]
            img_lq = bgr2ycbcr(img_lq, y_only=True)[..., None]
        img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=True, float32=True)
        if self.mean is not None or self.std is not None:
            normalize(img_lq, self.mean, self.std, inplace=True)
            normalize(img_gt, self.mean, self.std, inplace=True)
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': gt_path, 'gt_path': gt_path}

    def __len__(self) -> int:
        return len(self.paths)
