"""Training speed of MSRN under each speed switch, and loader rate against consumption (scripts/benchmark_train.py)."""
import copy
import logging
import multiprocessing
import os
import platform
import tempfile
import time
import torch
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

logger = logging.getLogger('basicsr')

#: The rows of the table: name -> MSRNModel switches. The fp32 row turns TF32 off so that it is real fp32.
MODES = OrderedDict([
    ('fp32 eager', {'fast_matmul': False}),
    ('TF32', {'fast_matmul': True}),
    ('bf16', {'fast_matmul': True, 'use_amp': True, 'amp_bf16': True}),
    ('bf16+channels_last', {'fast_matmul': True, 'use_amp': True, 'amp_bf16': True, 'use_channels_last': True}),
    ('bf16+channels_last+compile', {'fast_matmul': True, 'use_amp': True, 'amp_bf16': True, 'use_channels_last': True,
                                    'use_compile': True}),
])


def model_options(device: str, scale: int = 4, num_feat: int = 64, num_block: int = 8, **switches) -> dict:
    """Training options of ``MSRNModel`` as in ``options/train_MSRN_x{scale}.yml`` (L1, Adam 1e-4), no data."""
    return dict({
        'num_gpu': 1 if device == 'cuda' else 0, 'is_train': True, 'dist': False, 'model_type': 'MSRNModel',
        'network_g': {'type': 'MSRN', 'num_feat': num_feat, 'num_block': num_block, 'upscale': scale},
        'path': {'pretrain_network_g': None, 'strict_load_g': True},
        'train': {'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.999]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [200000], 'gamma': 0.5},
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}}}, **switches)


def _sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def measure_mode(switches: dict, device: str = 'cpu', scale: int = 4, batch_size: int = 16, lq_size: int = 64,
                 num_feat: int = 64, num_block: int = 8, warmup: int = 2, steps: int = 5) -> Dict[str, float]:
    """Time ``MSRNModel.optimize_parameters`` with one set of switches on random data already on the device.

    Args:
        switches (dict): Top-level switches (see :data:`MODES`).
        device (str): 'cpu' or 'cuda'. Default: 'cpu'.
        scale (int): Upscale factor. Default: 4.
        batch_size (int): Patches per step (the paper: 16). Default: 16.
        lq_size (int): LR patch size (the paper: 64). Default: 64.
        num_feat (int): MSRN width (the paper: 64). Default: 64.
        num_block (int): MSRN blocks (the paper: 8). Default: 8.
        warmup (int): Untimed steps first (compilation happens here). Default: 2.
        steps (int): Timed steps. Default: 5.

    Returns:
        dict: ``it_per_s``, ``patches_per_s``, ``warmup_s`` (time of the warm-up steps, compile included) and
        ``loss`` (of the last step, to see that the mode trains).

    Raises:
        ValueError: If the switches cannot work here (fp16 on a CPU, compile without a compiler, ...).
    """
    from msrn_plugin.models.msrn_model import MSRNModel
    torch.manual_seed(0)
    if switches.get('use_compile'):
        torch._dynamo.reset()
    model = MSRNModel(model_options(device, scale, num_feat, num_block, **switches))
    data = {'lq': torch.rand(batch_size, 3, lq_size, lq_size, device=device),
            'gt': torch.rand(batch_size, 3, lq_size * scale, lq_size * scale, device=device)}
    model.feed_data(data)
    start = time.perf_counter()
    for i in range(warmup):
        model.optimize_parameters(i + 1)
    _sync(device)
    warmup_s = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(steps):
        model.optimize_parameters(warmup + i + 1)
    _sync(device)
    seconds = (time.perf_counter() - start) / steps
    return {'it_per_s': 1 / seconds, 'patches_per_s': batch_size / seconds, 'warmup_s': warmup_s,
            'loss': float(model.log_dict['l_pix'])}


def _measure_in_child(name: str, device: str, threads: int, kwargs: dict) -> Dict[str, float]:
    torch.set_num_threads(threads)
    return measure_mode(MODES[name], device, **kwargs)


def measure_modes(modes: Sequence[str] = tuple(MODES), device: str = 'cpu', isolate: bool = True,
                  **kwargs) -> List[dict]:
    """:func:`measure_mode` for each named mode; each row also gets ``speedup`` against the fp32 row.

    A mode that cannot run here (refused by the start-up checks, or failing) gets ``error`` instead of figures.

    Args:
        modes (Sequence[str]): Keys of :data:`MODES`, the fp32 row first. Default: all.
        device (str): 'cpu' or 'cuda'. Default: 'cpu'.
        isolate (bool): Run each mode in a fresh process (spawned), so that no mode inherits another's process-wide
            flags, caches or compiled graphs (measured here: in one process the rows depended on their order).
            Default: True.
        **kwargs: Sizes and step counts for :func:`measure_mode`.

    Returns:
        list[dict]: One row per mode: ``mode`` and the figures (or ``error``).
    """
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    rows = []
    try:
        for name in modes:
            try:
                if isolate:
                    with multiprocessing.get_context('spawn').Pool(1) as pool:
                        figures = pool.apply(_measure_in_child, (name, device, torch.get_num_threads(), kwargs))
                else:
                    figures = measure_mode(MODES[name], device, **kwargs)
                row = dict(mode=name, **figures)
            except Exception as err:  # a row that cannot run is reported, the others still run
                row = {'mode': name, 'error': f'{type(err).__name__}: {err}'.splitlines()[0][:300]}
            rows.append(row)
            logger.info('%s', row)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags[:2]
        torch.set_float32_matmul_precision(flags[2])
    base = next((r for r in rows if r['mode'] == 'fp32 eager' and 'error' not in r), None)
    for row in rows:
        if base is not None and 'error' not in row:
            row['speedup'] = row['it_per_s'] / base['it_per_s']
    return rows


def measure_loaders(workers: Sequence[int], scale: int = 4, gt_size: int = 256, batch_size: int = 16,
                    num_batches: int = 20, root: Optional[str] = None) -> List[dict]:
    """Patches/s of the raw-LMDB loader (and BasicSR's PNG LMDB loader) with each number of workers, on a miniature
    DIV2K made from the bundled photos (see :mod:`msrn_plugin.bench.loader_bench`).

    Returns:
        list[dict]: ``data``, ``workers``, ``patches_per_s``.
    """
    from msrn_plugin.bench.loader_bench import (measure_loader, paired_dataset_opt, prepare_benchmark_data,
                                                raw_dataset_opt)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        paths = prepare_benchmark_data(tmp, scale, crop_size=max(gt_size, 480), step=240, folders=False)
        opts = {'raw LMDB': raw_dataset_opt(paths['raw_lmdb'], scale, gt_size),
                'PNG LMDB': paired_dataset_opt(paths['gt_lmdb'], paths['lq_lmdb'], 'lmdb', scale, gt_size)}
        return [{'data': name, 'workers': n, 'patches_per_s': measure_loader(copy.deepcopy(opt), n, batch_size,
                                                                              num_batches)}
                for name, opt in opts.items() for n in workers]


def machine_description(device: str) -> str:
    """CPU model and core count, or the GPU's name, and the torch version."""
    if device == 'cuda':
        return f'{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}'
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return f'{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads'


def format_table(rows: List[dict]) -> str:
    """The modes as a Markdown table (it/s, patches/s, against fp32, warm-up)."""
    lines = ['| mode | iterations/s | patches/s | vs fp32 eager | warm-up (s) |', '| --- | ---: | ---: | ---: | ---: |']
    for row in rows:
        if 'error' in row:
            lines.append(f'| {row["mode"]} | not run: {row["error"]} | | | |')
        else:
            speed = f'{row["speedup"]:.2f}x' if 'speedup' in row else 'n/a'
            lines.append(f'| {row["mode"]} | {row["it_per_s"]:.3f} | {row["patches_per_s"]:.1f} | {speed} | '
                         f'{row["warmup_s"]:.1f} |')
    return '\n'.join(lines)
