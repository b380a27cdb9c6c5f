"""Complexity and speed of a network: trainable parameters, MACs (``mmengine.analysis``), forward latency and peak
tensor memory, and how latency / memory grow with the input's pixel count."""
import logging
import numpy as np
import os
import statistics
import time
import torch
from contextlib import contextmanager
from torch import nn
from typing import Callable, Iterator, List, Sequence, Tuple, Union


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
