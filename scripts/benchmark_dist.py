"""Training throughput (samples/s) of MSRN for 1..N DDP processes at the same per-rank batch, and scaling efficiency.

CPU (gloo), one thread per rank by default so N ranks use N cores::

    python scripts/benchmark_dist.py --world-sizes 1 2
    python scripts/benchmark_dist.py --world-sizes 1 2 4 --device cuda   # one GPU per rank (nccl)

The library code is :mod:`msrn_plugin.bench.dist_bench`; see docs/distributed.md for the figures measured so far.
"""
import argparse
import os
import platform
import sys
from typing import List, Optional

if __name__ == '__main__':  # run as a file: don't let scripts/ shadow top-level modules
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != os.path.dirname(os.path.abspath(__file__))]

import torch  # noqa: E402

from msrn_plugin.bench.dist_bench import measure_throughput, scaling_table  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--world-sizes', type=int, nargs='+', default=[1, 2], help='Process counts (1 is added).')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu', help='Device of each rank.')
    parser.add_argument('--backend', default=None, help='Process-group backend (default: nccl on GPUs, else gloo).')
    parser.add_argument('--batch-size', type=int, default=8, help='Batch per rank.')
    parser.add_argument('--lq-size', type=int, default=24, help='LR patch side (GT = LR x scale).')
    parser.add_argument('--scale', type=int, default=4, choices=[2, 3, 4, 8], help='Upscale factor.')
    parser.add_argument('--num-feat', type=int, default=64, help='MSRN channels (paper: 64).')
    parser.add_argument('--num-block', type=int, default=8, help='MSRN blocks (paper: 8).')
    parser.add_argument('--iters', type=int, default=10, help='Timed iterations per run.')
    parser.add_argument('--warmup', type=int, default=2, help='Untimed iterations before timing.')
    parser.add_argument('--threads-per-rank', type=int, default=1, help='torch threads in each rank.')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    world_sizes = sorted(set([1] + args.world_sizes))
    load = ' '.join(f'{v:.2f}' for v in os.getloadavg()) if hasattr(os, 'getloadavg') else 'n/a'
    gpu = torch.cuda.get_device_name(0) if args.device == 'cuda' else 'none used'
    print(f'machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, GPU: {gpu}; '
          f'load average before: {load}; torch {torch.__version__}')
    print(f'MSRN num_feat {args.num_feat}, num_block {args.num_block}, x{args.scale}; per-rank batch '
          f'{args.batch_size} of {args.lq_size}x{args.lq_size} LR; {args.iters} timed iterations after '
          f'{args.warmup}; {args.threads_per_rank} thread(s) per rank; device {args.device}')
    results = []
    for world_size in world_sizes:
        results.append(measure_throughput(
            world_size, batch_size=args.batch_size, lq_size=args.lq_size, scale=args.scale, num_feat=args.num_feat,
            num_block=args.num_block, iters=args.iters, warmup=args.warmup, threads_per_rank=args.threads_per_rank,
            device=args.device, backend=args.backend))
        print(f'  {world_size} process(es): {results[-1]["samples_per_s"]:.2f} samples/s', flush=True)
    print(f'{"processes":>9}  {"samples/s":>10}  {"s/iter":>7}  {"speedup":>7}  {"efficiency":>10}')
    for row in scaling_table(results):
        print(f'{row["world_size"]:>9}  {row["samples_per_s"]:>10.2f}  {row["seconds"] / row["iters"]:>7.3f}  '
              f'{row["speedup"]:>7.2f}  {row["efficiency"]:>9.0%}')


if __name__ == '__main__':
    main()
