"""Training pairs cut straight from whole, uncompressed images in one LMDB (``prepare_div2k.py --format raw``)."""
import cv2
import lmdb
import numpy as np
import os
import random
import re
import torch
from basicsr.data.transforms import augment
from basicsr.utils.registry import DATASET_REGISTRY
from collections import OrderedDict
from torch.utils import data as data
from typing import Dict, List, Mapping, Optional, Tuple

from msrn_plugin.data.lmdb_check import LmdbIntegrityError, check_lmdb, is_raw_lmdb, read_meta_info
from msrn_plugin.utils.misc import format_examples

Shape = Tuple[int, int, int]
#: ``meta_info.txt`` extension of raw values (HxWxC uint8, BGR, C order).
RAW_EXTENSION = 'raw'
_KEY = re.compile(r'^(?P<stem>.+)_(?:(?P<hr>hr)|x(?P<scale>\d+))$')
_FIX = 'scripts/prepare_div2k.py --format raw'


def raw_key(stem: str, scale: int) -> str:
    """The key of an image in a raw LMDB: ``STEM_hr`` for HR (scale 1), ``STEM_x{scale}`` for LR."""
    return f'{stem}_hr' if scale == 1 else f'{stem}_x{scale}'


def raw_scales(meta: Mapping[str, Shape]) -> Dict[str, Dict[int, Shape]]:
    """Group the keys of a raw LMDB: stem -> {1: HR shape, scale: LR shape, ...}, in key order."""
    images: Dict[str, Dict[int, Shape]] = OrderedDict()
    for key, shape in meta.items():
        m = _KEY.match(key)
        if m is None:
            continue
        images.setdefault(m.group('stem'), {})[1 if m.group('hr') else int(m.group('scale'))] = shape
    return images


def check_raw_lmdb(lmdb_path: str, scale: int, check_values: bool = False) -> Dict[str, Tuple[Shape, Shape]]:
    """Check a raw LMDB for one scale: complete, every image with its HR and x``scale`` LR, LR size x scale == HR.

    Args:
        lmdb_path (str): The ``.lmdb`` folder.
        scale (int): The scale to train (its LR images must be there).
        check_values (bool): Also read every value and compare its byte count with ``meta_info.txt``.
            Default: False.

    Returns:
        dict[str, tuple]: stem -> (LR shape, HR shape), in key order.

    Raises:
        LmdbIntegrityError: Naming the database, the key and the fix.
    """
    try:
        meta = check_lmdb(lmdb_path, check_shapes=check_values)
    except LmdbIntegrityError as err:
        if 'already open' not in str(err):
            raise
        meta = read_meta_info(lmdb_path)  # held open by a dataset of this process: it opened, check the listing
    if not is_raw_lmdb(lmdb_path):
        raise LmdbIntegrityError(f'{lmdb_path}: a sub-image (PNG) LMDB, not a raw one; use type '
                                 'CheckedPairedImageDataset for it, or make a raw LMDB with '
                                 f'{_FIX}.')
    images = raw_scales(meta)
    stray = [k for k in meta if _KEY.match(k) is None]
    if stray or not images:
        raise LmdbIntegrityError(f'{lmdb_path}: keys that are not STEM_hr or STEM_x<scale> ({format_examples(stray)}); '
                                 f'not written by {_FIX}: re-create it.')
    have = sorted({s for shapes in images.values() for s in shapes if s != 1})
    lacking = [stem for stem, shapes in images.items() if scale not in shapes]
    if len(lacking) == len(images):
        held = ', '.join(f'x{s}' for s in have) or 'none'
        raise LmdbIntegrityError(f'{lmdb_path}: holds no x{scale} LR images (LR scales held: {held}); re-create it '
                                 f'with {_FIX} --scales {" ".join(str(s) for s in sorted(set(have) | {scale}))} '
                                 f'(or train scale {" or ".join(str(s) for s in have)}).')
    no_hr = [stem for stem, shapes in images.items() if 1 not in shapes]
    if lacking or no_hr:
        which = [f'{s} (no x{scale} LR)' for s in lacking] + [f'{s} (no HR)' for s in no_hr]
        raise LmdbIntegrityError(f'{lmdb_path}: {len(which)} image(s) incomplete: {format_examples(which)}; delete it '
                                 f'and re-create it with {_FIX}.')
    pairs, bad = OrderedDict(), []
    for stem, shapes in images.items():
        lr, hr = shapes[scale], shapes[1]
        if (lr[0] * scale, lr[1] * scale, lr[2]) != hr:
            bad.append(f'{stem} (HR {hr[0]}x{hr[1]}x{hr[2]}, x{scale} LR {lr[0]}x{lr[1]}x{lr[2]})')
        pairs[stem] = (lr, hr)
    if bad:
        raise LmdbIntegrityError(f'{lmdb_path}: {len(bad)} x{scale} LR image(s) are not HR size / {scale}: '
                                 f'{format_examples(bad)}; delete it and re-create it with {_FIX}.')
    return pairs


def _gt_size_too_large(pairs: Mapping[str, Tuple[Shape, Shape]], gt_size: int, scale: int) -> Optional[str]:
    """Why ``gt_size`` does not fit the smallest HR image of ``pairs`` (the end of a message), or None."""
    stem, (_, hr) = min(pairs.items(), key=lambda item: min(item[1][1][:2]))
    if gt_size <= min(hr[:2]):
        return None
    return (f'is larger than the smallest HR image ({stem}: {hr[0]}x{hr[1]}); use gt_size <= '
            f'{min(hr[:2]) - min(hr[:2]) % scale}.')


@DATASET_REGISTRY.register()
class RawLMDBDataset(data.Dataset):
    """Random aligned LR/HR crops read from whole uncompressed images in one LMDB (``--format raw``).

    Each item picks an image, cuts an LR crop of ``gt_size / scale`` and the HR crop of the same region straight
    from the memory-mapped values (no decoding, nothing but the crop is copied), applies BasicSR's ``augment``
    (flips, rotations) to the uint8 crops and only then converts them to float32 in [0, 1], RGB, CHW, exactly as
    ``PairedImageDataset`` would return the same region. The database is checked when the dataset is built
    (:func:`check_raw_lmdb`) and opened lazily in each loader worker. Outside training (``phase`` not 'train') the
    whole image pair is returned.

    Args:
        opt (dict): ``dataroot`` (the raw ``.lmdb``), ``scale``, ``gt_size``, ``use_hflip``, ``use_rot``, ``phase``,
            and optionally ``mean``/``std`` (normalisation, as ``PairedImageDataset``). Not modified.

    Raises:
        LmdbIntegrityError: If the database is not a complete raw LMDB holding this scale, naming the fix.
        ValueError: If ``gt_size`` is not a multiple of the scale or larger than the smallest image.
    """

    def __init__(self, opt: dict):
        super().__init__()
        self.opt = opt
        self.dataroot = os.path.expanduser(os.fspath(opt['dataroot']))
        self.scale = int(opt['scale'])
        self.pairs = check_raw_lmdb(self.dataroot, self.scale)
        self.stems = list(self.pairs)
        self.is_train = opt.get('phase') == 'train'
        self.mean, self.std = opt.get('mean'), opt.get('std')
        if self.is_train:
            gt_size = int(opt['gt_size'])
            if gt_size % self.scale:
                raise ValueError(f'gt_size {gt_size} is not a multiple of scale {self.scale}.')
            too_large = _gt_size_too_large(self.pairs, gt_size, self.scale)
            if too_large:
                raise ValueError(f'{self.dataroot}: gt_size {gt_size} {too_large}')
        self.env: Optional[lmdb.Environment] = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state['env'] = None  # each worker opens its own environment
        return state

    def _open(self) -> lmdb.Environment:
        if self.env is None:
            self.env = lmdb.open(self.dataroot, readonly=True, lock=False, readahead=False, meminit=False)
        return self.env

    def _read(self, txn, stem: str, scale: int, shape: Shape, box: Optional[Tuple[int, int, int]]) -> np.ndarray:
        """A copy of ``box`` = (top, left, size) of one stored image (the whole image for None), channels in RGB
        order."""
        key = raw_key(stem, scale)
        buf = txn.get(key.encode('ascii'))
        if buf is None or len(buf) != shape[0] * shape[1] * shape[2]:
            raise LmdbIntegrityError(f'{self.dataroot}: value of {key} is missing or not {shape[0]}x{shape[1]}x'
                                     f'{shape[2]} bytes (the database changed after the start-up check); re-create it '
                                     f'with {_FIX}.')
        img = np.frombuffer(buf, dtype=np.uint8).reshape(shape)
        if box is not None:
            top, left, size = box
            img = img[top:top + size, left:left + size]
        img = np.ascontiguousarray(img)
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if shape[2] == 3 else img

    def __getitem__(self, index: int) -> dict:
        stem = self.stems[index % len(self.stems)]
        lr_shape, hr_shape = self.pairs[stem]
        lr_box = hr_box = None
        if self.is_train:
            lq_size = int(self.opt['gt_size']) // self.scale
            top, left = random.randint(0, lr_shape[0] - lq_size), random.randint(0, lr_shape[1] - lq_size)
            lr_box = (top, left, lq_size)
            hr_box = (top * self.scale, left * self.scale, lq_size * self.scale)
        with self._open().begin(write=False, buffers=True) as txn:
            img_gt = self._read(txn, stem, 1, hr_shape, hr_box)
            img_lq = self._read(txn, stem, self.scale, lr_shape, lr_box)
        if self.is_train:
            img_gt, img_lq = augment([img_gt, img_lq], self.opt.get('use_hflip', False), self.opt.get('use_rot', False))
        gt, lq = rgb_to_tensor(img_gt), rgb_to_tensor(img_lq)
        if self.mean is not None or self.std is not None:
            from torchvision.transforms.functional import normalize
            normalize(lq, self.mean, self.std, inplace=True)
            normalize(gt, self.mean, self.std, inplace=True)
        return {'lq': lq, 'gt': gt, 'lq_path': f'{self.dataroot}/{raw_key(stem, self.scale)}',
                'gt_path': f'{self.dataroot}/{raw_key(stem, 1)}'}

    def __len__(self) -> int:
        return len(self.stems)

    @classmethod
    def check_dataroots(cls, opt: Mapping, prefix: str, is_train: bool = False, max_samples: int = 8) -> List[str]:
        """Start-up check for :mod:`msrn_plugin.utils.validation`: the raw LMDB, its scale, and ``gt_size``.

        Args:
            opt (Mapping): Dataset options (not modified).
            prefix (str): Option prefix, e.g. 'datasets.train'.
            is_train (bool): A training dataset (``gt_size`` must fit the smallest image). Default: False.
            max_samples (int): Unused (``meta_info.txt`` lists every size). Default: 8.

        Returns:
            list[str]: Problems, each naming the key or file and the fix.
        """
        root = opt.get('dataroot')
        if not isinstance(root, (str, os.PathLike)):
            return [f'{prefix}.dataroot: missing; set it to the raw .lmdb made by {_FIX}.']
        scale = opt.get('scale')
        if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
            return []  # the top-level scale is checked (and copied into the dataset options) by BasicSR
        try:
            pairs = check_raw_lmdb(os.path.expanduser(os.fspath(root)), scale)
        except LmdbIntegrityError as err:
            return [f'{prefix}.dataroot: {err}']
        gt_size = opt.get('gt_size')
        if is_train and gt_size is None:
            return [f'{prefix}.gt_size: missing; set the GT patch size (e.g. gt_size: {64 * scale}).']
        if is_train and isinstance(gt_size, int) and gt_size % scale == 0:
            too_large = _gt_size_too_large(pairs, gt_size, scale)
            if too_large:
                return [f'{prefix}.gt_size: {gt_size} {too_large}']
        return []


def rgb_to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWxC uint8 (any positive strides) -> CxHxW float32 in [0, 1]: bit for bit what BasicSR's ``img2tensor`` makes
    of ``imfrombytes(..., float32=True)`` (x / 255 in float32 is the same for all 256 values), converted in one pass
    from the crop."""
    if img.ndim == 2:
        img = img[:, :, None]
    return torch.from_numpy(img).permute(2, 0, 1).to(torch.float32, memory_format=torch.contiguous_format).div_(255.)
