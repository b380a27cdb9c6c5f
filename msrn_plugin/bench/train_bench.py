"""Training speed of MSRN under each speed switch, and loader rate against consumption (scripts/benchmark_train.py)."""
import logging
import os
import platform
import statistics
import tempfile
import time
import torch
from collections import OrderedDict
from typing import List, Optional, Sequence

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


def measure_modes(modes: Sequence[str] = tuple(MODES), device: str = 'cpu', scale: int = 4, batch_size: int = 16,
                  lq_size: int = 64, num_feat: int = 64, num_block: int = 8, warmup: int = 2,
                  steps: int = 5) -> List[dict]:
    """Time ``MSRNModel.optimize_parameters`` under each mode, on random data already on the device.

    Every mode gets its own model (same seed) and its warm-up steps (compilation happens there); then the timed steps
    go round-robin, one step of each mode per round (with that mode's TF32 flags set), and each mode's median step
    time is reported. A machine whose load changes during the run (shared CPUs) then slows every mode alike instead
    of whichever ran at the wrong moment. A mode that cannot run here (refused by the start-up checks, or failing)
    gets ``error`` instead of figures.

    Args:
        modes (Sequence[str]): Keys of :data:`MODES`. Default: all.
        device (str): 'cpu' or 'cuda'. Default: 'cpu'.
        scale (int): Upscale factor. Default: 4.
        batch_size (int): Patches per step (the paper: 16). Default: 16.
        lq_size (int): LR patch size (the paper: 64). Default: 64.
        num_feat (int): MSRN width (the paper: 64). Default: 64.
        num_block (int): MSRN blocks (the paper: 8). Default: 8.
        warmup (int): Untimed steps of each mode first. Default: 2.
        steps (int): Timed steps of each mode. Default: 5.

    Returns:
        list[dict]: One row per mode: ``mode``, ``it_per_s``, ``patches_per_s``, ``warmup_s`` (compile included),
        ``loss`` (last step) and ``speedup`` against the fp32 row when it ran; or ``mode`` and ``error``.
    """
    from msrn_plugin.models.msrn_model import MSRNModel, set_tf32
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    rows, models, times = [], {}, {}
    try:
        for name in modes:
            switches = MODES[name]
            try:
                torch.manual_seed(0)
                model = MSRNModel(model_options(device, scale, num_feat, num_block, **switches))
                model.feed_data({'lq': torch.rand(batch_size, 3, lq_size, lq_size, device=device),
                                 'gt': torch.rand(batch_size, 3, lq_size * scale, lq_size * scale, device=device)})
                start = time.perf_counter()
                for i in range(warmup):
                    model.optimize_parameters(i + 1)
                _sync(device)
                rows.append({'mode': name, 'warmup_s': time.perf_counter() - start})
                models[name], times[name] = model, []
            except Exception as err:  # a row that cannot run is reported, the others still run
                rows.append({'mode': name, 'error': f'{type(err).__name__}: {err}'.splitlines()[0][:300]})
        for step in range(steps):
            for name, model in models.items():
                set_tf32(MODES[name].get('fast_matmul', False))
                _sync(device)
                start = time.perf_counter()
                model.optimize_parameters(warmup + step + 1)
                _sync(device)
                times[name].append(time.perf_counter() - start)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags[:2]
        torch.set_float32_matmul_precision(flags[2])
    for row in rows:
        if 'error' not in row:
            seconds = statistics.median(times[row['mode']])
            row.update(it_per_s=1 / seconds, patches_per_s=batch_size / seconds,
                       loss=float(models[row['mode']].log_dict['l_pix']))
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
        return [{'data': name, 'workers': n, 'patches_per_s': measure_loader(opt, n, batch_size, num_batches)}
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
