"""Inference benchmark of MSRN alone (``scripts/benchmark_inference.py``): the convolution roofline, latency /
GFLOP/s / peak memory at several sizes, and whole-image vs exactly tiled forward."""
import copy
import statistics
import time
import torch
from torch import nn
from typing import List, Sequence, Union

from msrn_plugin.inference import tile_forward
from msrn_plugin.zoo.profiling import _sync, count_macs, measure_latency, measure_peak_memory


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
