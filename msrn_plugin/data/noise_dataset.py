"""Clean images with additive white Gaussian noise added on the fly (denoising, KAIR's or SwinIR's test noise)."""
import numpy as np
import zlib
from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import imfrombytes, img2tensor, scandir
from basicsr.utils.registry import DATASET_REGISTRY
from os import path as osp
from torch.utils import data as data
from typing import List, Optional, Tuple

from msrn_plugin.data.io_backend import FileClientMixin
from msrn_plugin.data.lmdb_check import lmdb_keys
from msrn_plugin.utils.image_io import ImageReadError, is_image_file

SEED_MODES = ('per_image', 'shared')
COLOR_MODES = ('rgb', 'gray')
CHANNEL_ORDERS = ('rgb', 'bgr')


class NoiseLevel:
    """The noise level(s) of a dataset, on the 0-255 scale: fixed, a uniform range (blind) or a choice.

    Build it with :meth:`from_opt`; exactly one of the option keys ``sigma``, ``sigma_range`` and ``sigma_choices``
    must be set.

    Args:
        sigma (float | None): Fixed standard deviation. Default: None.
        sigma_range (tuple[float, float] | None): ``(low, high)``; sigma is drawn uniformly (continuous) from it.
            Default: None.
        sigma_choices (tuple[float, ...] | None): Sigma is drawn uniformly from these values. Default: None.
    """

    KEYS = ('sigma', 'sigma_range', 'sigma_choices')

    def __init__(self,
                 sigma: Optional[float] = None,
                 sigma_range: Optional[Tuple[float, float]] = None,
                 sigma_choices: Optional[Tuple[float, ...]] = None) -> None:
        self.sigma = sigma
        self.sigma_range = sigma_range
        self.sigma_choices = sigma_choices

    @classmethod
    def from_opt(cls, opt: dict, name: str = 'dataset') -> 'NoiseLevel':
        """Read and check the noise level keys of a dataset option dict.

        Args:
            opt (dict): Dataset options (not modified).
            name (str): Dataset name used in error messages. Default: 'dataset'.

        Returns:
            NoiseLevel: The checked noise level.

        Raises:
            ValueError: If none or several of the keys are set, or a value is negative, not a number, or an empty or
                inverted range; the message names the key and the fix.
        """
        given = [key for key in cls.KEYS if opt.get(key) is not None]
        if len(given) != 1:
            found = f'got {", ".join(given)}' if given else 'got none'
            raise ValueError(f'{name}: set exactly one of sigma (fixed, e.g. 25), sigma_range (blind, e.g. [0, 55]) '
                             f'or sigma_choices (e.g. [15, 25, 50]), on the 0-255 scale; {found}.')
        key = given[0]
        value = opt[key]
        if key == 'sigma':
            if isinstance(value, (list, tuple)):
                raise ValueError(f'{name}: sigma must be one number, got {value!r}; use sigma_range: [low, high] for '
                                 'a uniform range or sigma_choices: [...] for a choice.')
            return cls(sigma=_non_negative(value, 'sigma', name))
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f'{name}: {key} must be a non-empty list of numbers, got {value!r}.')
        values = tuple(_non_negative(v, key, name) for v in value)
        if key == 'sigma_range':
            if len(values) != 2 or values[0] > values[1]:
                raise ValueError(f'{name}: sigma_range must be [low, high] with low <= high, got {list(value)}.')
            return cls(sigma_range=values)
        return cls(sigma_choices=values)

    def sample(self, rng: np.random.RandomState) -> float:
        """Draw one sigma (a fixed sigma draws nothing from ``rng``).

        Args:
            rng (np.random.RandomState): Random state (``np.random`` itself for the global one).

        Returns:
            float: Sigma on the 0-255 scale.
        """
        if self.sigma is not None:
            return float(self.sigma)
        if self.sigma_range is not None:
            return float(rng.uniform(*self.sigma_range))
        return float(self.sigma_choices[rng.randint(len(self.sigma_choices))])

    def __repr__(self) -> str:
        for key in self.KEYS:
            if getattr(self, key) is not None:
                return f'NoiseLevel({key}={getattr(self, key)})'
        return 'NoiseLevel()'


def _non_negative(value, key: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
        raise ValueError(f'{name}: {key} values must be numbers >= 0 on the 0-255 scale, got {value!r}.')
    return float(value)


def noise_seed(image_name: str, seed: int = 0, mode: str = 'per_image') -> int:
    """The seed of the validation/test noise of one image.

    Args:
        image_name (str): Image name; only the file stem counts (``'0001.png'`` and ``'x/0001'`` give the same seed).
        seed (int): Base seed. Default: 0.
        mode (str): ``'per_image'``: ``(seed + crc32(stem)) mod 2**32``, so different images get different noise,
            independent of their order or of the other images. ``'shared'``: ``seed`` for every image, as the
            KAIR and SwinIR test scripts do (``np.random.seed(0)`` before each image). Default: 'per_image'.

    Returns:
        int: The seed for ``np.random.RandomState``.
    """
    if mode not in SEED_MODES:
        raise ValueError(f'noise_seed_mode must be one of {SEED_MODES}, got {mode!r}.')
    if mode == 'shared':
        return int(seed) % 2**32
    stem = osp.splitext(osp.basename(image_name))[0]
    return (int(seed) + zlib.crc32(stem.encode('utf-8'))) % 2**32


def add_gaussian_noise(img: np.ndarray,
                       sigma: float,
                       rng: np.random.RandomState,
                       clip: bool = False,
                       channel_order: str = 'rgb') -> np.ndarray:
    """Add white Gaussian noise of standard deviation ``sigma / 255`` to an image in [0, 1].

    The noise is drawn with shape ``(h, w, c)``; for a colour image, ``channel_order`` says which array it is drawn
    for. 'rgb': the RGB image, as KAIR's test scripts do (they read images as RGB); 'bgr': the BGR array, as SwinIR's
    ``main_test_swinir.py`` does (it adds the noise to ``cv2.imread``'s output). With a RandomState seeded like
    theirs, each gives that project's noisy inputs; the two differ (the first and last channels' noise swap).

    Args:
        img (np.ndarray): HxWxC image, BGR for C=3, float in [0, 1].
        sigma (float): Standard deviation on the 0-255 scale.
        rng (np.random.RandomState): Random state (``np.random`` itself for the global one).
        clip (bool): Clip the result to [0, 1]. Default: False (the standard protocol does not clip).
        channel_order (str): 'rgb' (KAIR) or 'bgr' (SwinIR); no effect on grey images. Default: 'rgb'.

    Returns:
        np.ndarray: The noisy image, float32, same shape.
    """
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"noise_channel_order must be 'rgb' (KAIR) or 'bgr' (SwinIR), got {channel_order!r}.")
    noise = rng.normal(0, sigma / 255., img.shape)
    if channel_order == 'rgb' and img.ndim == 3 and img.shape[2] == 3:
        noise = noise[..., ::-1]  # RGB-ordered draws onto BGR channels
    noisy = (img + noise).astype(np.float32)
    if clip:
        np.clip(noisy, 0, 1, out=noisy)
    return noisy


@DATASET_REGISTRY.register()
class GaussianNoiseDataset(FileClientMixin, data.Dataset):
    """Clean images from a folder or LMDB; the noisy input is the clean image plus white Gaussian noise.

    Training: random ``gt_size`` crop, flips/rotations, then noise with a sigma drawn per patch from the global
    NumPy state (seeded per worker by BasicSR). Validation/test: the whole image, and noise from a
    ``np.random.RandomState`` seeded per image (see :func:`noise_seed`), so every run scores the same noisy inputs.
    Sigma is on the 0-255 scale and the noisy image is not clipped unless ``clip_noisy`` is true (KAIR/SwinIR).
    ``noise_channel_order`` selects whose noisy test inputs a shared seed reproduces: KAIR's (rgb) or SwinIR's (bgr).

    Args:
        opt (dict): Config for the dataset (not modified). It contains the following keys:
            dataroot_gt (str): Folder of clean images, or an ``.lmdb`` folder made with ``basicsr.utils.lmdb_util``.
            io_backend (dict): ``type: disk`` or ``type: lmdb``.
            color (str): 'rgb' (3 channels) or 'gray' (read as one channel). Default: 'rgb'.
            sigma (float): Fixed noise level, e.g. 25.
            sigma_range (list[float]): ``[low, high]``: uniform noise level (blind denoising).
            sigma_choices (list[float]): Noise level drawn from these values.
                Exactly one of sigma, sigma_range and sigma_choices.
            clip_noisy (bool): Clip the noisy image to [0, 1]. Default: False.
            noise_seed (int): Base seed of the validation/test noise. Default: 0.
            noise_seed_mode (str): 'per_image' or 'shared', see :func:`noise_seed`. Default: 'per_image'.
            noise_channel_order (str): 'rgb' (KAIR) or 'bgr' (SwinIR), see :func:`add_gaussian_noise`.
                Default: 'rgb'.
            gt_size (int): Training patch size.
            use_hflip (bool): Training horizontal flips. Default: True.
            use_rot (bool): Training rotations. Default: True.
            phase (str): 'train', 'val' or 'test' (set by BasicSR).
    """

    def __init__(self, opt: dict) -> None:
        super().__init__()
        self.opt = opt
        self.name = opt.get('name', 'GaussianNoiseDataset')
        self.noise_level = NoiseLevel.from_opt(opt, self.name)
        self.color = opt.get('color', 'rgb')
        if self.color not in COLOR_MODES:
            raise ValueError(f"{self.name}: color must be 'rgb' or 'gray', got {self.color!r}.")
        self.clip_noisy = bool(opt.get('clip_noisy', False))
        self.seed = int(opt.get('noise_seed', 0))
        self.seed_mode = opt.get('noise_seed_mode', 'per_image')
        if self.seed_mode not in SEED_MODES:
            raise ValueError(f'{self.name}: noise_seed_mode must be one of {SEED_MODES}, got {self.seed_mode!r}.')
        self.channel_order = opt.get('noise_channel_order', 'rgb')
        if self.channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"{self.name}: noise_channel_order must be 'rgb' (KAIR's test noise) or 'bgr' (SwinIR's), "
                             f'got {self.channel_order!r}.')
        self.is_train = opt['phase'] == 'train'
        if self.is_train and not opt.get('gt_size'):
            raise ValueError(f'{self.name}: training needs gt_size (the patch size), e.g. gt_size: 128.')

        self.gt_folder = opt['dataroot_gt']
        self.init_io_backend(opt['io_backend'], {'gt': self.gt_folder})
        self.paths = self._scan(self.gt_folder)

    def _scan(self, folder: str) -> List[str]:
        backend = self.io_backend_opt.get('type')
        if backend == 'lmdb':
            if not folder.endswith('.lmdb') or not osp.isfile(osp.join(folder, 'meta_info.txt')):
                raise FileNotFoundError(f'{self.name}: dataroot_gt {folder} is not an LMDB made by basicsr.utils.'
                                        'lmdb_util (a *.lmdb folder with meta_info.txt); fix the path or use '
                                        'io_backend type: disk.')
            paths = lmdb_keys(folder)
        elif backend == 'disk':
            if not osp.isdir(folder):
                raise FileNotFoundError(f'{self.name}: dataroot_gt {folder} is not a folder; fix the path.')
            paths = sorted(osp.join(folder, p) for p in scandir(folder) if is_image_file(p))
        else:
            raise ValueError(f"{self.name}: io_backend type must be 'disk' or 'lmdb', got {backend!r}.")
        if not paths:
            raise FileNotFoundError(f'{self.name}: no images in dataroot_gt {folder}.')
        return paths

    def _read(self, path: str) -> np.ndarray:
        img_bytes = self.read_bytes(path, 'gt')
        img = imfrombytes(img_bytes, flag='grayscale' if self.color == 'gray' else 'color') if img_bytes else None
        if img is None:
            where = f'key {path} in {self.gt_folder}' if self.io_backend_opt['type'] == 'lmdb' else path
            raise ImageReadError(f'{self.name}: {where}: not a readable image; re-create or remove it.')
        img = img.astype(np.float32) / 255.
        return img[..., None] if img.ndim == 2 else img

    def __getitem__(self, index: int) -> dict:
        gt_path = self.paths[index]
        img_gt = self._read(gt_path)
        if self.is_train:
            img_gt, _ = paired_random_crop(img_gt, img_gt, self.opt['gt_size'], 1, gt_path)
            img_gt = augment(img_gt, self.opt.get('use_hflip', True), self.opt.get('use_rot', True))
            img_gt = np.ascontiguousarray(img_gt)
            rng = np.random  # the global state, seeded per worker by BasicSR
        else:
            rng = np.random.RandomState(noise_seed(gt_path, self.seed, self.seed_mode))
        sigma = self.noise_level.sample(rng)
        img_lq = add_gaussian_noise(img_gt, sigma, rng, clip=self.clip_noisy, channel_order=self.channel_order)
        img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=True, float32=True)
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': gt_path, 'gt_path': gt_path, 'sigma': sigma}

    def __len__(self) -> int:
        return len(self.paths)


__all__ = ['GaussianNoiseDataset', 'NoiseLevel', 'add_gaussian_noise', 'noise_seed']
