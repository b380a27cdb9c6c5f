"""Hazy/clear pairs with RESIDE's file naming (ITS, OTS, SOTS indoor/outdoor, and our synthetic haze)."""
import numpy as np
import re
from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import imfrombytes, img2tensor, scandir
from basicsr.utils.registry import DATASET_REGISTRY
from os import path as osp
from torch.utils import data as data
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from msrn_plugin.data.io_backend import FileClientMixin
from msrn_plugin.data.lmdb_check import LmdbIntegrityError, lmdb_keys
from msrn_plugin.utils.image_io import ImageReadError, image_size, is_image_file
from msrn_plugin.utils.misc import format_examples

_NUMBER = re.compile(r'\d+(\.\d+)?')
HAZE_LMDB_TOOL = ("basicsr.utils.lmdb_util.make_lmdb_from_imgs from its image folder (keys: the file names without "
                  "extension), e.g. the hazy/ and clear/ folders of scripts/synthesize_haze.py")


def clear_stem_for(hazy_stem: str, clear_stems: Iterable[str]) -> Optional[str]:
    """The clear image a RESIDE hazy image belongs to.

    A hazy stem is ``<clear stem>_<numbers>``: ``1400_3`` (SOTS indoor: image 1400, haze level 3), ``1_1_0.90179``
    (ITS: image 1, index 1, beta), ``0001_0.8_0.2`` (OTS/SOTS outdoor: image 0001, A 0.8, beta 0.2), or
    ``astronaut_0.85_1.200`` (``scripts/synthesize_haze.py``). The partner is the clear stem that is the longest
    ``_``-separated prefix of the hazy stem whose remaining tokens are all numbers.

    Args:
        hazy_stem (str): Hazy file name without extension.
        clear_stems (Iterable[str]): Clear file names without extension (a set is fastest).

    Returns:
        str | None: The clear stem, or None if no clear stem fits.
    """
    clear_stems = clear_stems if isinstance(clear_stems, (set, frozenset, dict)) else set(clear_stems)
    tokens = hazy_stem.split('_')
    for cut in range(len(tokens) - 1, 0, -1):  # longest prefix first; at least one number token after it
        if not all(_NUMBER.fullmatch(t) for t in tokens[cut:]):
            break
        prefix = '_'.join(tokens[:cut])
        if prefix in clear_stems:
            return prefix
    return None


def pair_reside_names(hazy_names: Iterable[str],
                      clear_names: Iterable[str],
                      hazy_root: str = 'hazy',
                      clear_root: str = 'clear',
                      stems: bool = False) -> List[Tuple[str, str]]:
    """Pair every hazy image with its clear image by RESIDE's naming (see :func:`clear_stem_for`).

    Names are matched by file stem, whatever their sub-folder and extension (SOTS outdoor: hazy ``.jpg``, clear
    ``.png``). Clear images without hazy partners are allowed (RESIDE ships some).

    Args:
        hazy_names (Iterable[str]): Hazy file names (relative, with extension).
        clear_names (Iterable[str]): Clear file names (relative, with extension).
        hazy_root (str): Hazy folder, for error messages. Default: 'hazy'.
        clear_root (str): Clear folder, for error messages. Default: 'clear'.
        stems (bool): The names are stems already (LMDB keys such as ``1_1_0.90179``, whose dot is no extension).
            Default: False.

    Returns:
        list[tuple[str, str]]: ``(hazy name, clear name)`` pairs, sorted by hazy name.

    Raises:
        ValueError: If there are no hazy images, two clear images share a stem, or a hazy image has no clear partner;
            the message lists the offending names and the fix.
    """
    def stem_of(name: str) -> str:
        return name if stems else osp.splitext(osp.basename(name))[0]

    clear_by_stem: Dict[str, str] = {}
    duplicates = []
    for name in sorted(clear_names):
        stem = stem_of(name)
        if stem in clear_by_stem:
            duplicates.append(f'{clear_by_stem[stem]} / {name}')
        clear_by_stem[stem] = name
    if duplicates:
        raise ValueError(f'{clear_root}: several clear images share a name (stem): {format_examples(duplicates, 5)}; '
                         'keep one file per clear image.')
    hazy_names = sorted(hazy_names)
    if not hazy_names:
        raise ValueError(f'{hazy_root}: no hazy images found; check dataroot_lq.')
    pairs, missing = [], []
    for name in hazy_names:
        stem = clear_stem_for(stem_of(name), clear_by_stem)
        if stem is None:
            missing.append(name)
        else:
            pairs.append((name, clear_by_stem[stem]))
    if missing:
        raise ValueError(f'{hazy_root}: {len(missing)} hazy image(s) have no clear partner in {clear_root}: '
                         f'{format_examples(missing, 5)}. RESIDE names a hazy image <clear name>_<numbers> (e.g. '
                         '1400_3.png for 1400.png, 0001_0.8_0.2.jpg for 0001.jpg); add the clear images or remove '
                         'those files.')
    return pairs


def center_crop_to(img: np.ndarray, height: int, width: int, path: str = 'image') -> np.ndarray:
    """Crop the centre ``height`` x ``width`` of an image (torchvision's ``CenterCrop`` rounding, as FFA-Net does).

    Args:
        img (np.ndarray): HxWxC image.
        height (int): Target height.
        width (int): Target width.
        path (str): Image name for the error message. Default: 'image'.

    Returns:
        np.ndarray: The crop (a view), or ``img`` itself when the sizes already match.

    Raises:
        ValueError: If the image is smaller than the target.
    """
    h, w = img.shape[:2]
    if (h, w) == (height, width):
        return img
    if h < height or w < width:
        raise ValueError(f'{path}: the clear image ({h}x{w}) is smaller than its hazy image ({height}x{width}); '
                         'the pair does not match: replace or remove one of them.')
    top, left = int(round((h - height) / 2.)), int(round((w - width) / 2.))
    return img[top:top + height, left:left + width, ...]


def _folder_names(folder: str, key: str) -> List[str]:
    if not osp.isdir(folder):
        raise FileNotFoundError(f'{key}: {folder} is not a folder; fix the path.')
    return [p for p in scandir(folder, recursive=True) if is_image_file(p)]


def _lmdb_names(folder: str, key: str) -> List[str]:
    if not folder.endswith('.lmdb') or not osp.isfile(osp.join(folder, 'meta_info.txt')):
        raise FileNotFoundError(f'{key}: {folder} is not an LMDB made by basicsr.utils.lmdb_util (a *.lmdb folder with '
                                'meta_info.txt); fix the path or use io_backend type: disk.')
    try:
        return lmdb_keys(folder, HAZE_LMDB_TOOL)
    except LmdbIntegrityError as err:
        raise ValueError(f'{key}: {err}') from None


def reside_paths(opt: Mapping, prefix: str = 'dataset') -> List[Dict[str, str]]:
    """The ``lq_path``/``gt_path`` pairs of a RESIDE dataset option dict (file paths, or LMDB keys).

    Args:
        opt (Mapping): Dataset options with ``dataroot_lq``, ``dataroot_gt`` and ``io_backend`` (not modified).
        prefix (str): Option prefix for error messages, e.g. 'datasets.train'. Default: 'dataset'.

    Returns:
        list[dict[str, str]]: One ``{'lq_path', 'gt_path'}`` dict per hazy image, sorted by hazy name.

    Raises:
        FileNotFoundError: If a dataroot is missing or not an LMDB where one is expected.
        ValueError: If the backend is unknown or the names do not pair (see :func:`pair_reside_names`).
    """
    lq_folder, gt_folder = opt['dataroot_lq'], opt['dataroot_gt']
    backend = (opt.get('io_backend') or {}).get('type')
    if backend == 'lmdb':
        hazy = _lmdb_names(lq_folder, f'{prefix}.dataroot_lq')
        clear = _lmdb_names(gt_folder, f'{prefix}.dataroot_gt')
        pairs = pair_reside_names(hazy, clear, lq_folder, gt_folder, stems=True)
        return [{'lq_path': h, 'gt_path': c} for h, c in pairs]
    if backend == 'disk':
        hazy = _folder_names(lq_folder, f'{prefix}.dataroot_lq')
        clear = _folder_names(gt_folder, f'{prefix}.dataroot_gt')
        pairs = pair_reside_names(hazy, clear, lq_folder, gt_folder)
        return [{'lq_path': osp.join(lq_folder, h), 'gt_path': osp.join(gt_folder, c)} for h, c in pairs]
    raise ValueError(f"{prefix}.io_backend.type must be 'disk' or 'lmdb', got {backend!r}.")


@DATASET_REGISTRY.register()
class RESIDEDataset(FileClientMixin, data.Dataset):
    """Paired hazy (lq) / clear (gt) images named as in RESIDE (ITS, OTS, SOTS) for dehazing.

    Every hazy image is paired with its clear image by name (:func:`pair_reside_names`); a clear image larger than
    its hazy image is centre-cropped to the hazy size (SOTS indoor: 640x480 clear, 620x460 hazy). Training takes a
    random ``gt_size`` crop with flips/rotations; validation/test use whole images.

    Args:
        opt (dict): Config for the dataset (not modified). It contains the following keys:
            dataroot_lq (str): Folder of hazy images.
            dataroot_gt (str): Folder of clear images.
            io_backend (dict): ``type: disk`` (folders, searched recursively) or ``type: lmdb`` (two ``.lmdb``
                folders made with ``basicsr.utils.lmdb_util``; keys are the file stems).
            gt_size (int): Training patch size.
            use_hflip (bool): Training horizontal flips. Default: True.
            use_rot (bool): Training rotations. Default: True.
            phase (str): 'train', 'val' or 'test' (set by BasicSR).
    """

    lmdb_tool = HAZE_LMDB_TOOL  # what re-creates its LMDBs, in start-up errors

    def __init__(self, opt: dict) -> None:
        super().__init__()
        self.opt = opt
        self.name = opt.get('name', 'RESIDEDataset')
        self.is_train = opt['phase'] == 'train'
        if self.is_train and not opt.get('gt_size'):
            raise ValueError(f'{self.name}: training needs gt_size (the patch size), e.g. gt_size: 128.')
        self.lq_folder, self.gt_folder = opt['dataroot_lq'], opt['dataroot_gt']
        self.init_io_backend(opt['io_backend'], {'lq': self.lq_folder, 'gt': self.gt_folder})
        self.paths = reside_paths(opt, self.name)

    @classmethod
    def check_dataroots(cls, opt: Mapping, prefix: str, is_train: bool = False, max_samples: int = 8) -> List[str]:
        """Start-up check of the dataroots, for :mod:`msrn_plugin.utils.validation` (RESIDE pairs by name, not 1:1).

        Lists and pairs the names (every image), then reads the sizes of an evenly spaced sample of pairs (disk):
        each clear image must be at least as large as its hazy image, and a training ``gt_size`` must fit the
        smallest sampled hazy image.

        Args:
            opt (Mapping): Dataset options (not modified).
            prefix (str): Option prefix, e.g. 'datasets.train'.
            is_train (bool): A training dataset (``gt_size`` is checked). Default: False.
            max_samples (int): Pairs whose sizes are read. Default: 8.

        Returns:
            list[str]: Problems, each naming the key or file and the fix; empty when the data can be used.
        """
        try:
            paths = reside_paths(opt, prefix)
        except (FileNotFoundError, ValueError) as err:
            return [str(err)]
        if (opt.get('io_backend') or {}).get('type') != 'disk':
            return []
        step = max(1, len(paths) // max_samples)
        problems, smallest = [], None
        for pair in paths[::step][:max_samples]:
            try:
                hazy, clear = image_size(pair['lq_path']), image_size(pair['gt_path'])
            except ImageReadError as err:
                problems.append(f'{prefix}: {err}')
                continue
            if clear[0] < hazy[0] or clear[1] < hazy[1]:
                problems.append(f'{prefix}: {pair["gt_path"]} ({clear[0]}x{clear[1]}) is smaller than its hazy image '
                                f'{pair["lq_path"]} ({hazy[0]}x{hazy[1]}); the pair does not match.')
            if smallest is None or min(hazy) < min(smallest[1]):
                smallest = (pair['lq_path'], hazy)
        gt_size = opt.get('gt_size')
        if is_train and gt_size and smallest and gt_size > min(smallest[1]):
            problems.append(f'{prefix}.gt_size: {gt_size} is larger than the smallest sampled hazy image '
                            f'({smallest[0]}: {smallest[1][0]}x{smallest[1][1]}); use gt_size <= {min(smallest[1])}.')
        return problems

    def _read(self, path: str, client_key: str) -> np.ndarray:
        img_bytes = self.read_bytes(path, client_key)
        img = imfrombytes(img_bytes) if img_bytes else None
        if img is None:
            folder = self.lq_folder if client_key == 'lq' else self.gt_folder
            where = f'key {path} in {folder}' if self.io_backend_opt['type'] == 'lmdb' else path
            raise ImageReadError(f'{self.name}: {where}: not a readable image; re-create or remove it.')
        return img.astype(np.float32) / 255.

    def __getitem__(self, index: int) -> dict:
        lq_path, gt_path = self.paths[index]['lq_path'], self.paths[index]['gt_path']
        img_lq = self._read(lq_path, 'lq')
        img_gt = center_crop_to(self._read(gt_path, 'gt'), img_lq.shape[0], img_lq.shape[1], gt_path)
        if self.is_train:
            img_gt, img_lq = paired_random_crop(img_gt, img_lq, self.opt['gt_size'], 1, gt_path)
            img_gt, img_lq = augment([img_gt, img_lq], self.opt.get('use_hflip', True), self.opt.get('use_rot', True))
            img_gt, img_lq = np.ascontiguousarray(img_gt), np.ascontiguousarray(img_lq)
        img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=True, float32=True)
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': lq_path, 'gt_path': gt_path}

    def __len__(self) -> int:
        return len(self.paths)


__all__ = ['RESIDEDataset', 'center_crop_to', 'clear_stem_for', 'pair_reside_names', 'reside_paths']
