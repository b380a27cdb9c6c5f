"""Model-zoo comparison: MSRN against BasicSR's own EDSR (M and L) and RCAN, on this machine.

Every network is built through BasicSR's ``ARCH_REGISTRY`` from the documented options in :data:`ZOO_CONFIGS` (the
papers' configurations) or :data:`BUDGET_CONFIGS` (slim members of the same families that a CPU can train in
minutes). What is measured, and how:

* parameters: trainable parameters (MSRN's mean-shift buffers excluded, as in the paper's counts);
* MACs: ``mmengine.analysis.get_model_complexity_info`` at a stated LR input size. mmengine's "flops" are
  multiply-accumulates of the convolution / linear layers (element-wise additions, ReLUs, pixel shuffles are not
  counted); 1 MAC = 2 FLOPs;
* latency: median wall time of ``repeats`` forward passes (batch 1, fp32, ``torch.no_grad``) after one warm-up, with
  the stated number of CPU threads;
* peak memory: on the CPU, the peak of tensor memory allocated by PyTorch during one forward pass (from
  ``torch.profiler``'s memory events; oneDNN's internal scratch buffers are not included); on CUDA,
  ``torch.cuda.max_memory_allocated`` above what was allocated before;
* PSNR / SSIM: BasicSR's ``calculate_psnr`` / ``calculate_ssim`` on the Y channel with ``scale`` border pixels
  cropped, HR mod-cropped to the scale, LR made with MATLAB-style bicubic (``basicsr.utils.matlab_functions.imresize``);
* same-budget training: every budget model trains for the same iterations on the same batches (same seed, same
  crops), L1 loss, Adam, constant learning rate, on the bundled training photos
  (:data:`msrn_plugin.photos.TRAIN_PHOTOS`).

:func:`compare_models` runs all of it and writes ``model_zoo.md``, ``model_zoo.csv`` and the plots;
``scripts/compare_models.py`` is its command line. :func:`benchmark_inference` (``scripts/benchmark_inference.py``)
reuses the same measurements for MSRN alone.
"""
import copy
import csv
import io
import logging
import math
import os
import statistics
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from os import PathLike
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from tqdm import tqdm

from msrn_plugin.checkpoint import CheckpointError, safe_torch_load
from msrn_plugin.imageio import is_image_file, read_image, write_image
from msrn_plugin.inference import Upsampler, extract_state_dict, load_msrn, tile_forward
from msrn_plugin.photos import HELD_OUT_PHOTOS, TRAIN_PHOTOS, load_photo
from msrn_plugin.prep.bicubic import bicubic_downscale, mod_crop

PathType = Union[str, PathLike]
logger = logging.getLogger(__name__)

#: The papers' configurations (``upscale`` is added per run). EDSR-M is BasicSR's ``EDSR_Mx4`` (the EDSR paper's
#: baseline), EDSR-L its ``EDSR_Lx4`` (the paper's EDSR), RCAN the RCAN paper's (10 groups of 20 blocks), MSRN the
#: MSRN paper's.
ZOO_CONFIGS: 'OrderedDict[str, dict]' = OrderedDict([
    ('EDSR-M', {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_block': 16, 'res_scale': 1}),
    ('EDSR-L', {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 256, 'num_block': 32,
                'res_scale': 0.1}),
    ('RCAN', {'type': 'RCAN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_group': 10, 'num_block': 20,
              'squeeze_factor': 16, 'res_scale': 1}),
    ('MSRN', {'type': 'MSRN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_block': 8}),
])
#: Slim members of the same families for the same-budget run on a CPU (not the papers' models): 32 features
#: (48 for the wide EDSR-L, which keeps its 0.1 residual scaling), depth cut so that each needs roughly 0.4-1 M
#: multiply-accumulates per LR pixel and one iteration takes well under a second on two cores.
BUDGET_CONFIGS: 'OrderedDict[str, dict]' = OrderedDict([
    ('EDSR-M', {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 32, 'num_block': 8, 'res_scale': 1}),
    ('EDSR-L', {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 48, 'num_block': 8,
                'res_scale': 0.1}),
    ('RCAN', {'type': 'RCAN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 32, 'num_group': 3, 'num_block': 4,
              'squeeze_factor': 8, 'res_scale': 1}),
    ('MSRN', {'type': 'MSRN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 32, 'num_block': 4}),
])
#: Method names in ``published_results.csv`` for the zoo entries (EDSR there is the paper's large model).
PUBLISHED_METHODS = {'EDSR-L': 'EDSR', 'RCAN': 'RCAN', 'MSRN': 'MSRN'}
PUBLISHED_DATASETS = ('Set5', 'Set14', 'B100', 'Urban100', 'Manga109')


# --------------------------------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------------------------------
def network_options(name: str, scale: int, configs: Mapping[str, dict] = ZOO_CONFIGS) -> dict:
    """The network options of a zoo entry at a scale (a new dict; ``configs`` is not modified).

    Args:
        name (str): A key of ``configs``.
        scale (int): Upscaling factor.
        configs (Mapping[str, dict]): :data:`ZOO_CONFIGS`, :data:`BUDGET_CONFIGS` or another table of BasicSR
            network options. Default: :data:`ZOO_CONFIGS`.
    """
    if name not in configs:
        raise KeyError(f'unknown model {name!r}; choose from {list(configs)}')
    opt = copy.deepcopy(dict(configs[name]))
    opt['upscale'] = scale
    return opt


def build_model(opt: Mapping) -> nn.Module:
    """Create a network from BasicSR network options through ``ARCH_REGISTRY`` (``opt`` is not modified).

    This is BasicSR's ``build_network`` without its ``get_root_logger()`` call, which would initialise BasicSR's logger
    without a log file and so leave a later ``train_pipeline`` in the same process without its train log.

    Args:
        opt (Mapping): ``{'type': <registered name>, **arguments}``.
    """
    opt = dict(opt)
    return ARCH_REGISTRY.get(opt.pop('type'))(**opt)


def describe_options(opt: Mapping) -> str:
    """``'EDSR(num_feat=64, num_block=16, ...)'`` without the channel counts and scale."""
    args = ', '.join(f'{k}={v}' for k, v in opt.items() if k not in ('type', 'num_in_ch', 'num_out_ch', 'upscale'))
    return f"{opt['type']}({args})"


# --------------------------------------------------------------------------------------------------------------------
# Complexity and speed
# --------------------------------------------------------------------------------------------------------------------
def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters (buffers excluded)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def count_macs(net: nn.Module, input_size: Tuple[int, int], num_in_ch: int = 3) -> int:
    """Multiply-accumulates of one forward pass, from ``mmengine.analysis`` (conv / linear layers only).

    Args:
        net (nn.Module): The network (run once on the CPU copy's device).
        input_size (tuple[int, int]): LR height and width.
        num_in_ch (int): Input channels. Default: 3.
    """
    from mmengine.analysis import get_model_complexity_info
    from mmengine.logging import MMLogger
    mm_logger = MMLogger.get_current_instance()
    level = mm_logger.level
    mm_logger.setLevel(logging.ERROR)  # it warns about every element-wise op it does not count
    try:
        info = get_model_complexity_info(net, input_shape=(num_in_ch, *input_size), show_table=False,
                                         show_arch=False)
    finally:
        mm_logger.setLevel(level)
    return int(info['flops'])


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def measure_latency(forward: Callable[[torch.Tensor], torch.Tensor],
                    x: torch.Tensor,
                    repeats: int = 5,
                    warmup: int = 1) -> List[float]:
    """Wall times (seconds) of ``repeats`` calls of ``forward(x)`` under ``torch.no_grad`` after ``warmup`` calls.

    Args:
        forward (Callable): The model (or any tensor function).
        x (Tensor): Its input, already on the right device.
        repeats (int): Timed runs. Default: 5.
        warmup (int): Untimed runs first. Default: 1.
    """
    times = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            _sync(x.device)
            start = time.perf_counter()
            forward(x)
            _sync(x.device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return times


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence what C++ code writes to file descriptor 2 (the profiler's start/stop banners)."""
    try:
        saved = os.dup(2)
    except OSError:  # pragma: no cover - no stderr descriptor
        yield
        return
    try:
        with open(os.devnull, 'w') as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def measure_peak_memory(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> int:
    """Peak bytes of tensor memory allocated during one ``forward(x)`` (under ``torch.no_grad``).

    On the CPU the allocation / free events of ``torch.profiler`` are replayed in time order (PyTorch's own tensors:
    activations, outputs, temporaries; oneDNN's internal scratch buffers are not seen). On CUDA,
    ``torch.cuda.max_memory_allocated`` above the memory allocated before the call. The input itself is not counted.

    Args:
        forward (Callable): The model.
        x (Tensor): Its input.
    """
    if x.device.type == 'cuda':
        torch.cuda.synchronize(x.device)
        base = torch.cuda.memory_allocated(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        with torch.no_grad():
            forward(x)
        torch.cuda.synchronize(x.device)
        return int(torch.cuda.max_memory_allocated(x.device) - base)
    from torch.profiler import ProfilerActivity, profile
    with _quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        with torch.no_grad():
            forward(x)
    current = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return int(peak)


def profile_model(net: nn.Module,
                  sizes: Sequence[int],
                  repeats: int = 5,
                  device: Union[str, torch.device] = 'cpu',
                  num_in_ch: int = 3) -> List[dict]:
    """Latency (median, ms) and peak memory (MiB) of one forward pass at square LR sizes.

    Args:
        net (nn.Module): The model (moved to ``device``, set to eval).
        sizes (Sequence[int]): LR side lengths.
        repeats (int): Timed runs per size. Default: 5.
        device (str | torch.device): Default: 'cpu'.
        num_in_ch (int): Default: 3.

    Returns:
        list[dict]: ``{'size', 'pixels', 'latency_ms', 'latency_runs_ms', 'peak_mem_mib'}`` per size.
    """
    net = net.to(device).eval()
    rows = []
    for size in sizes:
        x = torch.rand(1, num_in_ch, size, size, device=device)
        times = measure_latency(net, x, repeats=repeats, warmup=1)
        rows.append({'size': size, 'pixels': size * size, 'latency_ms': 1000 * statistics.median(times),
                     'latency_runs_ms': [1000 * t for t in times],
                     'peak_mem_mib': measure_peak_memory(net, x) / 2**20})
    return rows


def growth_exponent(pixels: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of log(value) against log(pixels): 1.0 means proportional to the pixel count."""
    if len(pixels) < 2:
        return float('nan')
    return float(np.polyfit(np.log(pixels), np.log(values), 1)[0])


# --------------------------------------------------------------------------------------------------------------------
# Data and metrics
# --------------------------------------------------------------------------------------------------------------------
def bicubic_upscale(img: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic baseline: MATLAB-style bicubic upscaling (BasicSR's ``imresize``) of a uint8 image."""
    return np.clip(imresize(img.astype(np.float32), scale), 0, 255).round().astype(np.uint8)


def make_pair(hr: np.ndarray, scale: int, crop: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """(HR, LR) from an HR photo: optional centre crop to ``crop`` pixels, mod-crop, MATLAB bicubic downscale
    (:mod:`msrn_plugin.prep.bicubic`, the benchmark preparation's own functions)."""
    if crop:
        h, w = hr.shape[:2]
        top, left = max((h - crop) // 2, 0), max((w - crop) // 2, 0)
        hr = hr[top:top + crop, left:left + crop]
    hr = mod_crop(hr, scale)
    return hr, bicubic_downscale(hr, scale)


def load_benchmark(scale: int,
                   hr_dir: Optional[PathType] = None,
                   lr_dir: Optional[PathType] = None,
                   crop: int = 0) -> 'OrderedDict[str, Tuple[np.ndarray, np.ndarray]]':
    """Evaluation pairs ``{name: (hr, lr)}`` (BGR uint8).

    Args:
        scale (int): Upscaling factor.
        hr_dir (str | PathLike | None): Folder of HR (ground-truth) images, e.g. a benchmark prepared by
            ``scripts/prepare_benchmark.py``. None: the bundled held-out photos (:data:`HELD_OUT_PHOTOS`).
            Default: None.
        lr_dir (str | PathLike | None): Matching LR images (same file stem, optionally with an ``x{scale}`` suffix);
            None: made from HR by MATLAB bicubic. Default: None.
        crop (int): Centre-crop HR images to this size first (0: whole images; ignored with ``lr_dir``). Default: 0.

    Raises:
        FileNotFoundError: If a folder is missing or empty, or an LR image is missing.
        ValueError: If an LR image does not have the HR size divided by the scale.
    """
    pairs = OrderedDict()
    if hr_dir is None:
        for name in HELD_OUT_PHOTOS:
            pairs[os.path.splitext(name)[0]] = make_pair(load_photo(name), scale, crop)
        return pairs
    hr_dir = os.fspath(hr_dir)
    if not os.path.isdir(hr_dir):
        raise FileNotFoundError(f'{hr_dir}: benchmark HR folder not found; check --hr_dir.')
    files = sorted(f for f in os.listdir(hr_dir) if is_image_file(f))
    if not files:
        raise FileNotFoundError(f'{hr_dir}: no images in the benchmark HR folder.')
    lr_files = {}
    if lr_dir is not None:
        lr_dir = os.fspath(lr_dir)
        if not os.path.isdir(lr_dir):
            raise FileNotFoundError(f'{lr_dir}: benchmark LR folder not found; check --lr_dir.')
        lr_files = {os.path.splitext(f)[0]: f for f in os.listdir(lr_dir) if is_image_file(f)}
    for f in files:
        stem = os.path.splitext(f)[0]
        hr = read_image(os.path.join(hr_dir, f))
        hr = cv2.cvtColor(hr, cv2.COLOR_GRAY2BGR) if hr.ndim == 2 else hr[:, :, :3]
        if lr_dir is None:
            pairs[stem] = make_pair(hr, scale, crop)
            continue
        lr_name = lr_files.get(stem) or lr_files.get(f'{stem}x{scale}')
        if lr_name is None:
            raise FileNotFoundError(f'{lr_dir}: no LR image for {f} (expected {stem}.* or {stem}x{scale}.*).')
        lr = read_image(os.path.join(lr_dir, lr_name))
        lr = cv2.cvtColor(lr, cv2.COLOR_GRAY2BGR) if lr.ndim == 2 else lr[:, :, :3]
        hr = mod_crop(hr, scale)
        if (lr.shape[0] * scale, lr.shape[1] * scale) != hr.shape[:2]:
            raise ValueError(f'{os.path.join(lr_dir, lr_name)}: LR size {lr.shape[:2]} x{scale} does not match the '
                             f'mod-cropped HR size {hr.shape[:2]} of {f}; check --scale and the folders.')
        pairs[stem] = (hr, lr)
    return pairs


def psnr_ssim(sr: np.ndarray, hr: np.ndarray, scale: int) -> Tuple[float, float]:
    """Y-channel PSNR / SSIM with ``scale`` border pixels cropped (BasicSR's metrics; BGR uint8 inputs)."""
    return (float(calculate_psnr(sr, hr, crop_border=scale, test_y_channel=True)),
            float(calculate_ssim(sr, hr, crop_border=scale, test_y_channel=True)))


def evaluate(upscale: Callable[[np.ndarray], np.ndarray],
             pairs: Mapping[str, Tuple[np.ndarray, np.ndarray]],
             scale: int,
             desc: str = 'eval') -> Tuple[float, float, Dict[str, np.ndarray]]:
    """Mean PSNR / SSIM of ``upscale(lr)`` against ``hr`` over ``pairs``, and the outputs by name."""
    psnrs, ssims, outputs = [], [], {}
    for name, (hr, lr) in tqdm(pairs.items(), desc=desc, unit='img', leave=False):
        sr = upscale(lr)
        psnr, ssim = psnr_ssim(sr, hr, scale)
        psnrs.append(psnr)
        ssims.append(ssim)
        outputs[name] = sr
    return float(np.mean(psnrs)), float(np.mean(ssims)), outputs


# --------------------------------------------------------------------------------------------------------------------
# Same-budget training
# --------------------------------------------------------------------------------------------------------------------
class PatchSampler:
    """Random (LR, HR) patch batches from a few photos, identical for every model that uses the same seed.

    Args:
        photos (Sequence[np.ndarray]): HR photos, BGR uint8.
        scale (int): Upscaling factor.
        max_side (int): Centre-crop photos larger than this (keeps MATLAB-bicubic preparation quick). Default: 384.
    """

    def __init__(self, photos: Sequence[np.ndarray], scale: int, max_side: int = 384) -> None:
        self.scale = scale
        self.hr, self.lr = [], []
        for photo in photos:
            hr, lr = make_pair(photo, scale, crop=max_side if max(photo.shape[:2]) > max_side else 0)
            self.hr.append(torch.from_numpy(hr[:, :, ::-1].transpose(2, 0, 1).copy()).float() / 255.)
            self.lr.append(torch.from_numpy(lr[:, :, ::-1].transpose(2, 0, 1).copy()).float() / 255.)

    def batches(self, num: int, batch_size: int, lr_patch: int, seed: int) -> Iterator[Tuple[torch.Tensor, ...]]:
        """``num`` batches of ``batch_size`` random LR patches (and their HR patches), with flips and rotations."""
        gen = torch.Generator().manual_seed(seed)
        s = self.scale
        for _ in range(num):
            lrs, hrs = [], []
            for _ in range(batch_size):
                i = int(torch.randint(len(self.lr), (1, ), generator=gen))
                _, h, w = self.lr[i].shape
                top = int(torch.randint(h - lr_patch + 1, (1, ), generator=gen))
                left = int(torch.randint(w - lr_patch + 1, (1, ), generator=gen))
                lr = self.lr[i][:, top:top + lr_patch, left:left + lr_patch]
                hr = self.hr[i][:, top * s:(top + lr_patch) * s, left * s:(left + lr_patch) * s]
                k = int(torch.randint(8, (1, ), generator=gen))
                if k >= 4:
                    lr, hr = lr.flip(-1), hr.flip(-1)
                lrs.append(torch.rot90(lr, k % 4, (-2, -1)))
                hrs.append(torch.rot90(hr, k % 4, (-2, -1)))
            yield torch.stack(lrs), torch.stack(hrs)


def train_same_budget(net: nn.Module,
                      sampler: PatchSampler,
                      iters: int,
                      batch_size: int = 8,
                      lr_patch: int = 24,
                      learning_rate: float = 4e-4,
                      seed: int = 0,
                      device: Union[str, torch.device] = 'cpu',
                      desc: str = 'train') -> dict:
    """Train ``net`` in place: L1 loss, Adam (0.9, 0.99), constant learning rate, the sampler's seeded batches.

    Returns:
        dict: ``{'iters', 'seconds', 'first_loss', 'last_loss'}`` (losses averaged over the first / last 10%).
    """
    net.to(device).train()
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=learning_rate,
                                 betas=(0.9, 0.99))
    losses = []
    start = time.perf_counter()
    for lq, gt in tqdm(sampler.batches(iters, batch_size, lr_patch, seed), total=iters, desc=desc, unit='it',
                       leave=False):
        loss = nn.functional.l1_loss(net(lq.to(device)), gt.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    seconds = time.perf_counter() - start
    net.eval()
    tenth = max(1, len(losses) // 10)
    return {'iters': iters, 'seconds': seconds, 'first_loss': float(np.mean(losses[:tenth])),
            'last_loss': float(np.mean(losses[-tenth:]))}


def make_upscaler(net: nn.Module, scale: int, tile: int = 0, tile_pad: Optional[int] = None,
                  device: Union[str, torch.device] = 'cpu') -> Callable[[np.ndarray], np.ndarray]:
    """BGR uint8 -> BGR uint8 through :class:`msrn_plugin.inference.Upsampler` (tiling needs ``tile_pad`` for
    non-MSRN models; RCAN's channel attention pools the whole input, so no finite pad makes its tiles exact)."""
    return Upsampler(net, scale, tile=tile, tile_pad=tile_pad, device=device).enhance


# --------------------------------------------------------------------------------------------------------------------
# Published figures
# --------------------------------------------------------------------------------------------------------------------
def load_published(path: Optional[PathType], scale: int) -> Dict[str, Dict[str, Tuple[float, float, str]]]:
    """Published PSNR / SSIM per zoo entry and dataset, from ``published_results.csv``.

    Args:
        path (str | PathLike | None): The CSV (``shared/reference/published_results.csv``). A missing file gives an
            empty result and a warning.
        scale (int): Setting ``x{scale}`` rows are used.

    Returns:
        dict: ``{zoo name: {dataset: (psnr, ssim, source)}}``; only entries of :data:`PUBLISHED_METHODS`.
    """
    if path is None or not os.path.isfile(path):
        logger.warning(f'{path}: published results not found; the tables will have no published columns '
                       '(give --reference PATH/published_results.csv).')
        return {}
    wanted = {method: name for name, method in PUBLISHED_METHODS.items()}
    result: Dict[str, Dict[str, Tuple[float, float, str]]] = {}
    with open(path, newline='', encoding='utf-8') as f:
        for row in csv.DictReader(f):
            if row.get('task') != 'sr' or row.get('setting') != f'x{scale}' or row.get('method') not in wanted:
                continue
            ssim = float(row['ssim']) if row.get('ssim') else float('nan')
            result.setdefault(wanted[row['method']], {})[row['dataset']] = (float(row['psnr']), ssim, row['source'])
    return result


# --------------------------------------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class CompareSettings:
    """Settings of :func:`compare_models` (the command line's options).

    Args:
        scale (int): Upscaling factor. Default: 4.
        models (list[str]): Zoo entries, in table order. Default: all of :data:`ZOO_CONFIGS`.
        sizes (list[int]): Square LR sizes for latency and memory. Default: [32, 64].
        repeats (int): Timed runs per size (median reported). Default: 5.
        flops_size (int): Square LR size of the MAC count. Default: 64.
        iters (int): Same-budget training iterations per model (0: skip training). Default: 1000.
        batch_size (int): Default: 8.
        lr_patch (int): LR patch size for training. Default: 24.
        learning_rate (float): Default: 4e-4.
        seed (int): Default: 0.
        hr_dir (str | None): Benchmark HR folder; None: bundled held-out photos. Default: None.
        lr_dir (str | None): Benchmark LR folder; None: bicubic from HR. Default: None.
        eval_crop (int): Centre crop of evaluation images (0: whole). Default: 0.
        checkpoints (dict[str, str]): ``{zoo name: checkpoint}`` of the papers' configurations to evaluate.
            Default: {}.
        reference (str | None): ``published_results.csv``. Default: None.
        threads (int): CPU threads (``torch.set_num_threads``). Default: all cores.
        device (str): 'cpu' or 'cuda'. Default: 'cpu'.
        configs (dict): Full configurations. Default: :data:`ZOO_CONFIGS`.
        budget_configs (dict): Same-budget configurations. Default: :data:`BUDGET_CONFIGS`.
        crop_image (str | None): Benchmark image of the crop grid; None: the first. Default: None.
        quick (bool): Recorded in the report (the preset is :meth:`quick_preset`). Default: False.
    """

    scale: int = 4
    models: List[str] = field(default_factory=lambda: list(ZOO_CONFIGS))
    sizes: List[int] = field(default_factory=lambda: [32, 64])
    repeats: int = 5
    flops_size: int = 64
    iters: int = 1000
    batch_size: int = 8
    lr_patch: int = 24
    learning_rate: float = 4e-4
    seed: int = 0
    hr_dir: Optional[str] = None
    lr_dir: Optional[str] = None
    eval_crop: int = 0
    checkpoints: Dict[str, str] = field(default_factory=dict)
    reference: Optional[str] = None
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    device: str = 'cpu'
    configs: Dict[str, dict] = field(default_factory=lambda: copy.deepcopy(ZOO_CONFIGS))
    budget_configs: Dict[str, dict] = field(default_factory=lambda: copy.deepcopy(BUDGET_CONFIGS))
    crop_image: Optional[str] = None
    quick: bool = False

    @classmethod
    def quick_preset(cls, **overrides) -> 'CompareSettings':
        """Minutes on a 2-core CPU: sizes 16 and 32, 3 repeats, MACs at 32x32, 100 iterations of batch 4 x 16x16 LR,
        128-px evaluation crops.

        Args:
            overrides: Any field of :class:`CompareSettings` (unknown names raise ``TypeError``).
        """
        values = dict(sizes=[16, 32], repeats=3, flops_size=32, iters=100, batch_size=4, lr_patch=16, eval_crop=128,
                      quick=True)
        values.update(overrides)
        return cls(**values)


def _load_zoo_checkpoint(name: str, path: str, opt: dict) -> Tuple[nn.Module, dict]:
    if opt['type'] == 'MSRN':
        return load_msrn(path, scale=opt['upscale'])
    net = build_model(opt)
    state = extract_state_dict(safe_torch_load(path), path)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f'{path}: does not fit {name} = {describe_options(opt)} at x{opt["upscale"]}: '
                              f'{str(err).splitlines()[0]}') from None
    return net.eval(), opt


def compare_models(output_dir: PathType, settings: Optional[CompareSettings] = None) -> dict:
    """Run the model-zoo comparison and write ``model_zoo.md``, ``model_zoo.csv`` and the plots into ``output_dir``.

    Args:
        output_dir (str | PathLike): Created if needed.
        settings (CompareSettings | None): None: the defaults. Default: None.

    Returns:
        dict: ``{'rows': [...], 'bicubic': {...}, 'published': {...}, 'files': [...], 'settings': ...}``.
    """
    st = settings or CompareSettings()
    unknown = [m for m in st.models if m not in st.configs]
    if unknown:
        raise KeyError(f'unknown models {unknown}; choose from {list(st.configs)}')
    for name, path in st.checkpoints.items():
        if name not in st.configs:
            raise KeyError(f'checkpoint given for unknown model {name!r}; choose from {list(st.configs)}')
        if not os.path.isfile(path):  # fail before the long measurements
            raise CheckpointError(f'{path}: checkpoint not found; check the --checkpoint {name}=PATH argument.')
    output_dir = os.fspath(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(st.threads)
    try:
        return _run_comparison(output_dir, st)
    finally:
        torch.set_num_threads(threads)


def _run_comparison(output_dir: str, st: CompareSettings) -> dict:
    device = torch.device(st.device)
    published = load_published(st.reference, st.scale)
    pairs = load_benchmark(st.scale, st.hr_dir, st.lr_dir, st.eval_crop)
    bench_name = f'`{st.hr_dir}`' if st.hr_dir else 'bundled held-out photos'
    bicubic = evaluate(lambda lr: bicubic_upscale(lr, st.scale), pairs, st.scale, 'bicubic')
    sampler = PatchSampler([load_photo(n) for n in TRAIN_PHOTOS], st.scale) if st.iters else None
    rows, outputs = [], {'Bicubic': bicubic[2]}

    for name in tqdm(st.models, desc='models', unit='model'):
        opt = network_options(name, st.scale, st.configs)
        net = build_model(opt)
        row = {'model': name, 'config': describe_options(opt), 'params': count_parameters(net),
               'macs': count_macs(net, (st.flops_size, st.flops_size), opt.get('num_in_ch', 3))}
        prof = profile_model(net, st.sizes, st.repeats, device, opt.get('num_in_ch', 3))
        for p in prof:
            row[f'latency_ms@{p["size"]}'] = p['latency_ms']
            row[f'peak_mem_mib@{p["size"]}'] = p['peak_mem_mib']
        pix = [p['pixels'] for p in prof]
        row['latency_growth'] = growth_exponent(pix, [p['latency_ms'] for p in prof])
        row['memory_growth'] = growth_exponent(pix, [max(p['peak_mem_mib'], 1e-9) for p in prof])
        del net
        if name in st.checkpoints:
            net, _ = _load_zoo_checkpoint(name, st.checkpoints[name], opt)
            psnr, ssim, outs = evaluate(make_upscaler(net, st.scale, device=device), pairs, st.scale, f'{name} ckpt')
            row.update(ckpt_psnr=psnr, ckpt_ssim=ssim)
            outputs[name] = outs
            del net
        if st.iters and name in st.budget_configs:
            bopt = network_options(name, st.scale, st.budget_configs)
            torch.manual_seed(st.seed)
            bnet = build_model(bopt)
            stats = train_same_budget(bnet, sampler, st.iters, st.batch_size, st.lr_patch, st.learning_rate, st.seed,
                                      device, desc=f'train {name}')
            psnr, ssim, outs = evaluate(make_upscaler(bnet, st.scale, device=device), pairs, st.scale, name)
            row.update(budget_config=describe_options(bopt), budget_params=count_parameters(bnet),
                       budget_macs=count_macs(bnet, (st.flops_size, st.flops_size), bopt.get('num_in_ch', 3)),
                       budget_psnr=psnr, budget_ssim=ssim, budget_train_s=stats['seconds'],
                       budget_first_loss=stats['first_loss'], budget_last_loss=stats['last_loss'])
            outputs.setdefault(name, outs)
        for dataset, (psnr, ssim, source) in published.get(name, {}).items():
            row[f'published_psnr_{dataset}'] = psnr
            row[f'published_ssim_{dataset}'] = ssim
            row['published_source'] = source
        rows.append(row)

    result = {'rows': rows, 'bicubic': {'psnr': bicubic[0], 'ssim': bicubic[1]}, 'published': published,
              'benchmark': bench_name, 'num_images': len(pairs), 'settings': st, 'threads': torch.get_num_threads(),
              'device': str(device), 'files': []}
    result['files'].append(write_csv(os.path.join(output_dir, 'model_zoo.csv'), rows))
    result['files'] += write_plots(output_dir, result)
    crop_name = st.crop_image or next(iter(pairs))
    if crop_name not in pairs:
        raise KeyError(f'crop image {crop_name!r} is not in the benchmark ({list(pairs)})')
    result['files'].append(write_crop_grid(os.path.join(output_dir, 'crop_grid.png'), pairs[crop_name][0],
                                           {k: v[crop_name] for k, v in outputs.items()}, st.scale))
    result['crop_image'] = crop_name
    result['files'].append(write_markdown(os.path.join(output_dir, 'model_zoo.md'), result))
    return result


# --------------------------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------------------------
def _atomic_text(path: str, text: str) -> str:
    tmp = f'{path}.tmp'
    with open(tmp, 'w', encoding='utf-8', newline='') as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def write_csv(path: str, rows: Sequence[Mapping]) -> str:
    """All measured columns (union over rows, first-seen order); lists are joined with ';'."""
    columns: List[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator='\n')
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f'{v:.6g}' if isinstance(v, float) else v) for k, v in row.items()})
    return _atomic_text(path, buf.getvalue())


def _fmt(value, spec: str = '.2f') -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    return format(value, spec)


def write_markdown(path: str, result: Mapping) -> str:
    """The human-readable report: what was measured, how, on what, and the published figures beside it."""
    st, rows = result['settings'], result['rows']
    s = st.scale
    lines = [f'# Model zoo x{s}: MSRN vs EDSR / RCAN (BasicSR registry)', '']
    if st.quick:
        lines += ['> **Quick run** (`--quick`): small sizes and a short training budget; a smoke test of the '
                  'pipeline, not figures to quote.', '']
    lines += ['## Configurations (papers\' models)', '', '| model | network options | parameters | '
              f'MACs at 1x3x{st.flops_size}x{st.flops_size} (G) |', '|---|---|---:|---:|']
    for r in rows:
        lines.append(f"| {r['model']} | `{r['config']}` | {r['params']:,} | {r['macs'] / 1e9:.2f} |")
    lines += ['', 'MACs: multiply-accumulates of convolution/linear layers counted by `mmengine.analysis` '
              '(1 MAC = 2 FLOPs; element-wise ops not counted), for one LR input of the size shown.', '']
    sizes = st.sizes
    lines += [f'## Speed and memory (this machine: {result["device"]}, {result["threads"]} thread(s), fp32, batch 1)',
              '', '| model | ' + ' | '.join(f'latency {z}x{z} (ms)' for z in sizes) + ' | '
              + ' | '.join(f'peak mem {z}x{z} (MiB)' for z in sizes) + ' | latency ~ pixels^k | memory ~ pixels^k |',
              '|---|' + '---:|' * (2 * len(sizes) + 2)]
    for r in rows:
        lines.append(f"| {r['model']} | " + ' | '.join(_fmt(r.get(f'latency_ms@{z}'), '.1f') for z in sizes) + ' | '
                     + ' | '.join(_fmt(r.get(f'peak_mem_mib@{z}'), '.1f') for z in sizes)
                     + f" | {_fmt(r.get('latency_growth'))} | {_fmt(r.get('memory_growth'))} |")
    lines += ['', f'Latency: median of {st.repeats} forward passes after one warm-up (sizes are LR inputs). Peak '
              'memory: PyTorch tensor memory allocated during one forward pass (profiler events; oneDNN scratch '
              'excluded). k: slope of log(value) over log(pixels); 1 = proportional to the pixel count.', '']
    bic = result['bicubic']
    bench = f"{result['benchmark']} ({result['num_images']} images" + (f', {st.eval_crop}px centre crops)'
                                                                         if st.eval_crop else ')')
    if any('budget_psnr' in r for r in rows):
        lines += ['## Same-budget training (measured here)', '',
                  f'Each slim model trained {st.iters} iterations, batch {st.batch_size} of {st.lr_patch}x'
                  f'{st.lr_patch} LR patches, L1, Adam lr {st.learning_rate:g}, seed {st.seed}, identical batches, '
                  f'on the bundled training photos; evaluated on {bench}: Y-channel PSNR/SSIM, {s}-pixel border '
                  'cropped, LR by MATLAB bicubic.', '',
                  '| model | slim network options | parameters | train time (s) | L1 first -> last 10% | PSNR | SSIM |',
                  '|---|---|---:|---:|---|---:|---:|',
                  f"| Bicubic | - | - | - | - | {bic['psnr']:.2f} | {bic['ssim']:.4f} |"]
        for r in rows:
            if 'budget_psnr' in r:
                lines.append(f"| {r['model']} | `{r['budget_config']}` | {r['budget_params']:,} | "
                             f"{r['budget_train_s']:.0f} | {r['budget_first_loss']:.4f} -> {r['budget_last_loss']:.4f}"
                             f" | {r['budget_psnr']:.2f} | {r['budget_ssim']:.4f} |")
        lines.append('')
    if any('ckpt_psnr' in r for r in rows):
        lines += [f'## Given checkpoints on {bench} (measured here)', '', '| model | checkpoint | PSNR | SSIM |',
                  '|---|---|---:|---:|', f"| Bicubic | - | {bic['psnr']:.2f} | {bic['ssim']:.4f} |"]
        for r in rows:
            if 'ckpt_psnr' in r:
                lines.append(f"| {r['model']} | `{st.checkpoints[r['model']]}` | {r['ckpt_psnr']:.2f} | "
                             f"{r['ckpt_ssim']:.4f} |")
        lines.append('')
    published = result['published']
    if published:
        lines += [f'## Published results x{s} (not measured here)', '',
                  'PSNR / SSIM as **published** by the papers (Y channel, DIV2K-trained full models), from '
                  '`published_results.csv`; the source of each row is named. EDSR-M has no published row there.', '',
                  '| model (published) | ' + ' | '.join(PUBLISHED_DATASETS) + ' | source |',
                  '|---|' + '---|' * (len(PUBLISHED_DATASETS) + 1)]
        for r in rows:
            if r['model'] in published:
                pub = published[r['model']]
                cells = [f'{pub[d][0]:.2f} / {pub[d][1]:.4f}' if d in pub else '-' for d in PUBLISHED_DATASETS]
                source = next(iter(pub.values()))[2]
                lines.append(f"| {r['model']} (published) | " + ' | '.join(cells) + f' | {source} |')
        lines.append('')
    images = [os.path.basename(f) for f in result['files'] if f.endswith('.png')]
    lines += ['## Figures', ''] + [f'![{name}]({name})' for name in images]
    lines += ['', f"Crop grid image: `{result.get('crop_image')}` (HR, bicubic, then each model: given checkpoint if "
              'any, else its same-budget slim model).', '']
    return _atomic_text(path, '\n'.join(lines))


def write_plots(output_dir: str, result: Mapping) -> List[str]:
    """``psnr_vs_params.png``, ``psnr_vs_flops.png`` (paper style: PSNR over size, one labelled point per model) and
    ``latency_vs_pixels.png``. Needs matplotlib (an mmengine dependency); without it the plots are skipped."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        from matplotlib import ticker
    except ImportError:
        logger.warning('matplotlib is not installed (pip install matplotlib): plots skipped.')
        return []
    st, rows, published = result['settings'], result['rows'], result['published']
    files = []
    pub_set = 'Set5'
    for key, label, budget_key, fname in (('params', 'parameters (M)', 'budget_params', 'psnr_vs_params.png'),
                                          ('macs', f'GMACs at {st.flops_size}x{st.flops_size} LR input',
                                           'budget_macs', 'psnr_vs_flops.png')):
        panels = []
        if any(pub_set in published.get(r['model'], {}) for r in rows):
            panels.append(('published', f'published PSNR, {pub_set} x{st.scale} (papers)', key))
        if any('budget_psnr' in r for r in rows):
            panels.append(('budget', f'measured PSNR, same budget ({st.iters} it), {result["benchmark"]}',
                           budget_key))
        if not panels:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
        for ax, (kind, title, xkey) in zip(axes[0], panels):
            for r in rows:
                if kind == 'published':
                    if pub_set not in published.get(r['model'], {}):
                        continue
                    y = published[r['model']][pub_set][0]
                else:
                    if 'budget_psnr' not in r:
                        continue
                    y = r['budget_psnr']
                x = r[xkey] / (1e6 if 'params' in xkey else 1e9)
                mine = r['model'].startswith('MSRN')
                ax.scatter([x], [y], s=120 if mine else 60, marker='*' if mine else 'o',
                           color='red' if mine else 'tab:blue', zorder=3)
                ax.annotate(r['model'], (x, y), textcoords='offset points', xytext=(6, 4))
            if kind == 'budget':
                ax.axhline(result['bicubic']['psnr'], color='gray', ls='--', lw=1, label='bicubic')
                ax.legend(loc='best')
            ax.margins(x=0.2, y=0.15)
            ax.set_xlabel(label if kind == 'published' else f'{label}, slim models')
            ax.set_ylabel('PSNR (dB)')
            ax.set_title(title, fontsize=10)
            ax.grid(True, which='both', alpha=0.3)
        fig.tight_layout()
        files.append(os.path.join(output_dir, fname))
        fig.savefig(files[-1], dpi=120)
        plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in rows:
        pix = [z * z for z in st.sizes]
        axes[0].plot(pix, [r[f'latency_ms@{z}'] for z in st.sizes], 'o-', label=r['model'])
        axes[1].plot(pix, [r[f'peak_mem_mib@{z}'] for z in st.sizes], 'o-', label=r['model'])
    for ax, ylabel in zip(axes, ('latency (ms)', 'peak tensor memory (MiB)')):
        ax.set_xscale('log')
        ax.set_yscale('log')
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f'{v:g}'))
            axis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel('LR input pixels')
        ax.set_ylabel(ylabel)
        ax.grid(True, which='both', alpha=0.3)
        ax.legend()
    axes[0].set_title(f'{result["device"]} forward, {result["threads"]} thread(s), fp32', fontsize=10)
    fig.tight_layout()
    files.append(os.path.join(output_dir, 'latency_vs_pixels.png'))
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)
    return files


def pick_crop(hr: np.ndarray, size: int) -> Tuple[int, int]:
    """Top-left corner of the ``size`` x ``size`` window with the most gradient energy (a detailed region)."""
    gray = cv2.cvtColor(hr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    energy = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    h, w = gray.shape
    size = min(size, h, w)
    best, corner = -1.0, (0, 0)
    step = max(size // 4, 1)
    for top in range(0, h - size + 1, step):
        for left in range(0, w - size + 1, step):
            value = float(energy[top:top + size, left:left + size].sum())
            if value > best:
                best, corner = value, (top, left)
    return corner


def write_crop_grid(path: str, hr: np.ndarray, outputs: Mapping[str, np.ndarray], scale: int,
                    crop: int = 96, zoom: int = 2) -> str:
    """One row of crops: HR, then each output (bicubic first), each labelled with its name and crop PSNR."""
    top, left = pick_crop(hr, crop)
    crop = min(crop, *hr.shape[:2])
    tiles = []
    for name, img in [('HR', hr)] + list(outputs.items()):
        patch = img[top:top + crop, left:left + crop]
        if name != 'HR':
            name = f'{name} {calculate_psnr(patch, hr[top:top + crop, left:left + crop], 0, test_y_channel=True):.2f}dB'
        patch = cv2.resize(patch, (crop * zoom, crop * zoom), interpolation=cv2.INTER_NEAREST)
        bar = np.full((22, patch.shape[1], 3), 255, np.uint8)
        cv2.putText(bar, name, (3, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(np.vstack([bar, patch]))
        tiles.append(np.full((tiles[-1].shape[0], 4, 3), 255, np.uint8))
    write_image(path, np.hstack(tiles[:-1]))
    return path


# --------------------------------------------------------------------------------------------------------------------
# Inference benchmark (scripts/benchmark_inference.py)
# --------------------------------------------------------------------------------------------------------------------
def conv_roofline(num_feat: int = 64, size: int = 128, kernel: int = 5, repeats: int = 5,
                  device: Union[str, torch.device] = 'cpu', dtype: torch.dtype = torch.float32,
                  channels_last: bool = False) -> dict:
    """GFLOP/s of one large ``kernel`` x ``kernel`` convolution, ``num_feat`` -> ``num_feat`` channels: the practical
    peak for MSRN's dominant operation on this machine.

    Returns:
        dict: ``{'flops', 'latency_ms', 'gflops_per_s', 'best_gflops_per_s'}`` (FLOPs = 2 x MACs; ``best_``: from
        the fastest run).
    """
    conv = nn.Conv2d(num_feat, num_feat, kernel, 1, kernel // 2).to(device, dtype)
    x = torch.rand(1, num_feat, size, size, device=device, dtype=dtype)
    if channels_last:
        conv, x = conv.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    flops = 2 * num_feat * num_feat * kernel * kernel * size * size
    times = measure_latency(conv, x, repeats=repeats, warmup=2)
    median = statistics.median(times)
    return {'flops': flops, 'latency_ms': 1000 * median, 'gflops_per_s': flops / median / 1e9,
            'best_gflops_per_s': flops / min(times) / 1e9}


def benchmark_inference(net: nn.Module,
                        sizes: Sequence[int] = (32, 64, 128),
                        repeats: int = 5,
                        device: Union[str, torch.device] = 'cpu',
                        dtype: torch.dtype = torch.float32,
                        channels_last: bool = False) -> List[dict]:
    """Forward latency, achieved GFLOP/s and peak memory at square LR sizes.

    MACs are counted once by mmengine at 32x32 and scaled by the pixel count (exact for networks of "same"-padded
    convolutions such as MSRN, whose MAC count is linear in the pixels); GFLOP/s = 2 x MACs / median latency.

    Args:
        net (nn.Module): The model (moved to ``device`` / ``dtype`` in place).
        sizes (Sequence[int]): LR side lengths. Default: (32, 64, 128).
        repeats (int): Timed runs per size. Default: 5.
        device (str | torch.device): Default: 'cpu'.
        dtype (torch.dtype): Default: torch.float32.
        channels_last (bool): Use the channels-last memory format. Default: False.

    Returns:
        list[dict]: ``{'size', 'gmacs', 'latency_ms', 'min_latency_ms', 'gflops_per_s', 'best_gflops_per_s',
        'peak_mem_mib'}`` per size (``best_``: from the fastest run, the better estimate on a shared machine).
    """
    macs_32 = count_macs(copy.deepcopy(net).float().cpu(), (32, 32))
    model = net.to(device, dtype).eval()
    model = model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    rows = []
    for size in sizes:
        x = torch.rand(1, 3, size, size, device=device, dtype=dtype)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        times = measure_latency(model, x, repeats=repeats, warmup=1)
        median = statistics.median(times)
        macs = macs_32 * size * size / 32**2
        rows.append({'size': size, 'gmacs': macs / 1e9, 'latency_ms': 1000 * median,
                     'min_latency_ms': 1000 * min(times),
                     'gflops_per_s': 2 * macs / median / 1e9, 'best_gflops_per_s': 2 * macs / min(times) / 1e9,
                     'peak_mem_mib': measure_peak_memory(model, x) / 2**20})
    return rows


def benchmark_tiling(net: nn.Module, size: int = 96, tile: int = 48, repeats: int = 1,
                     device: Union[str, torch.device] = 'cpu') -> List[dict]:
    """Whole-image vs exactly tiled forward of an MSRN: time, peak memory and the largest output difference.

    Tiles are padded by :func:`msrn_plugin.inference.msrn_receptive_radius`, so the difference is float rounding; the
    price is the recomputed overlap (for 48-px tiles and the paper's radius 36, about 3x the pixels of a whole pass
    on a 96x96 input, less for larger tiles).

    Args:
        net (nn.Module): An MSRN (float32).
        size (int): Side of the square LR input. Default: 96.
        tile (int): Tile side in LR pixels. Default: 48.
        repeats (int): Timed runs per mode (no warm-up: run after :func:`benchmark_inference`, or expect the first
            timing to include one-off costs). Default: 1.
        device (str | torch.device): Default: 'cpu'.

    Returns:
        list[dict]: ``{'mode', 'latency_ms', 'peak_mem_mib', 'max_abs_diff'}`` for the whole image, then the tiles.
    """
    from msrn_plugin.inference import msrn_receptive_radius
    net = net.to(device).eval()
    pad = msrn_receptive_radius(net)
    x = torch.rand(1, 3, size, size, device=device)

    def tiled(t: torch.Tensor) -> torch.Tensor:
        return tile_forward(net, t, net.upscale, tile, pad)

    rows, outputs = [], []
    for mode, fn in (('whole', net), (f'tiled {tile}+{pad}', tiled)):
        times = []
        with torch.no_grad():
            for _ in range(repeats):
                _sync(x.device)
                start = time.perf_counter()
                out = fn(x)
                _sync(x.device)
                times.append(time.perf_counter() - start)
        outputs.append(out)
        rows.append({'mode': mode, 'latency_ms': 1000 * statistics.median(times),
                     'peak_mem_mib': measure_peak_memory(fn, x) / 2**20,
                     'max_abs_diff': float((out - outputs[0]).abs().max())})
    return rows
