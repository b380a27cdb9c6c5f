"""Training throughput of MSRN under DistributedDataParallel for 1..N processes (docs/distributed.md)."""
import json
import logging
import os
import socket
import tempfile
import time
import torch
from typing import Dict, List, Optional, Sequence

logger = logging.getLogger('basicsr')


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def bench_options(world_size: int, rank: int, device: str = 'cpu', num_feat: int = 64, num_block: int = 8,
                  scale: int = 4) -> dict:
    """BasicSR options for an MSRN ``SRModel`` with the paper's optimiser and loss (no data, no logging to disk).

    Args:
        world_size (int): Number of ranks (1: no DDP).
        rank (int): This rank.
        device (str): 'cpu' or 'cuda'. Default: 'cpu'.
        num_feat (int): MSRN channel number. Default: 64.
        num_block (int): MSRN block number. Default: 8.
        scale (int): Upscale factor. Default: 4.

    Returns:
        dict: Options for ``basicsr.models.build_model``.
    """
    return {
        'name': 'msrn_dist_bench', 'model_type': 'SRModel', 'scale': scale, 'is_train': True,
        'num_gpu': 1 if device == 'cuda' else 0, 'dist': world_size > 1, 'rank': rank, 'world_size': world_size,
        'network_g': {'type': 'MSRN', 'num_feat': num_feat, 'num_block': num_block, 'upscale': scale},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0,
            'optim_g': {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'betas': [0.9, 0.999], 'eps': 1e-8},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [200000], 'gamma': 0.5},
            'total_iter': 1, 'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        },
    }


def _rank_worker(rank: int, world_size: int, port: int, cfg: dict, out_dir: str) -> None:
    """One rank: join the process group (N > 1), build the model, time ``iters`` training steps."""
    import torch.distributed as dist
    from basicsr.models import build_model
    from basicsr.utils.dist_util import init_dist

    from msrn_plugin import compat  # importing msrn_plugin applied the compatibility layer in this process

    torch.set_num_threads(cfg['threads_per_rank'])
    device = cfg['device']
    if world_size > 1:
        os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                          WORLD_SIZE=str(world_size))
        compat.set_dist_backend(cfg['backend'])
        init_dist('pytorch')  # BasicSR's entry, with the plugin's fix 4
    elif device == 'cuda':
        torch.cuda.set_device(0)
    logging.getLogger('basicsr').setLevel(logging.WARNING)  # the model's creation messages are not wanted here
    opt = bench_options(world_size, rank, device, cfg['num_feat'], cfg['num_block'], cfg['scale'])
    model = build_model(opt)
    gen = torch.Generator().manual_seed(rank)
    lq_size, batch, scale = cfg['lq_size'], cfg['batch_size'], cfg['scale']
    data = {'lq': torch.rand(batch, 3, lq_size, lq_size, generator=gen),
            'gt': torch.rand(batch, 3, lq_size * scale, lq_size * scale, generator=gen)}

    def sync() -> None:
        if device == 'cuda':
            torch.cuda.synchronize()
        if world_size > 1:
            dist.barrier()

    for it in range(cfg['warmup']):
        model.feed_data(data)
        model.optimize_parameters(it + 1)
    sync()
    start = time.perf_counter()
    for it in range(cfg['iters']):
        model.feed_data(data)
        model.optimize_parameters(it + 1)
    sync()
    elapsed = time.perf_counter() - start
    with open(os.path.join(out_dir, f'rank{rank}.json'), 'w') as f:
        json.dump({'elapsed': elapsed}, f)
    if world_size > 1:
        dist.destroy_process_group()


def measure_throughput(world_size: int, batch_size: int = 8, lq_size: int = 24, scale: int = 4, num_feat: int = 64,
                       num_block: int = 8, iters: int = 10, warmup: int = 2, threads_per_rank: int = 1,
                       device: str = 'cpu', backend: Optional[str] = None) -> Dict[str, float]:
    """Training samples per second of ``world_size`` processes, each on its own batch of ``batch_size``.

    Args:
        world_size (int): Number of processes (1: plain single-process training, no DDP).
        batch_size (int): Batch per rank. Default: 8.
        lq_size (int): Side of the LR patches (GT is ``lq_size * scale``). Default: 24.
        scale (int): Upscale factor. Default: 4.
        num_feat (int): MSRN channel number. Default: 64.
        num_block (int): MSRN block number. Default: 8.
        iters (int): Timed iterations. Default: 10.
        warmup (int): Untimed iterations first. Default: 2.
        threads_per_rank (int): ``torch.set_num_threads`` in each rank. Default: 1.
        device (str): 'cpu' or 'cuda' (one GPU per rank). Default: 'cpu'.
        backend (str | None): Process-group backend; None: nccl on GPUs, gloo on CPUs. Default: None.

    Returns:
        dict: ``world_size``, ``samples_per_s``, ``seconds`` (slowest rank) and ``iters``.

    Raises:
        ValueError: If an argument is out of range, or ``device='cuda'`` asks for more ranks than GPUs.
    """
    for key, value in (('world_size', world_size), ('batch_size', batch_size), ('lq_size', lq_size),
                       ('iters', iters), ('threads_per_rank', threads_per_rank)):
        if value < 1:
            raise ValueError(f'{key} must be at least 1, got {value}.')
    if device not in ('cpu', 'cuda'):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}.")
    if device == 'cuda' and world_size > torch.cuda.device_count():
        raise ValueError(f'device cuda with {world_size} ranks needs {world_size} GPUs; '
                         f'{torch.cuda.device_count()} visible.')
    cfg = dict(batch_size=batch_size, lq_size=lq_size, scale=scale, num_feat=num_feat, num_block=num_block,
               iters=iters, warmup=warmup, threads_per_rank=threads_per_rank, device=device, backend=backend)
    with tempfile.TemporaryDirectory(prefix='msrn_dist_bench_') as out_dir:
        import torch.multiprocessing as mp
        mp.start_processes(_rank_worker, args=(world_size, _free_port(), cfg, out_dir), nprocs=world_size,
                           join=True, start_method='spawn')  # 1 process too: same start-up, caller left untouched
        seconds = max(_read_elapsed(out_dir, rank) for rank in range(world_size))
    return {'world_size': world_size, 'samples_per_s': world_size * batch_size * iters / seconds,
            'seconds': seconds, 'iters': iters}


def _read_elapsed(out_dir: str, rank: int) -> float:
    with open(os.path.join(out_dir, f'rank{rank}.json')) as f:
        return json.load(f)['elapsed']


def scaling_table(results: Sequence[Dict[str, float]]) -> List[Dict[str, float]]:
    """Add ``speedup`` and ``efficiency`` (throughput(N) / (N x throughput(1))) to each result.

    Args:
        results (Sequence[dict]): From :func:`measure_throughput`; one of them must have ``world_size`` 1.

    Returns:
        list[dict]: Copies of the results with the two ratios.
    """
    base = [r for r in results if r['world_size'] == 1]
    if not base:
        raise ValueError('scaling_table needs the 1-process result as the baseline (world_size 1).')
    base_rate = base[0]['samples_per_s']
    return [dict(r, speedup=r['samples_per_s'] / base_rate,
                 efficiency=r['samples_per_s'] / (r['world_size'] * base_rate)) for r in results]
