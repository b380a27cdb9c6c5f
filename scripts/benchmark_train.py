"""Iterations/s and patches/s of MSRN x4 paper training (batch 16 of 64x64 LR patches, L1, Adam) in fp32 eager, TF32,
bf16, bf16 + channels_last and bf16 + channels_last + torch.compile, each against the fp32 row; then the raw-LMDB
loader's patches/s with N workers beside the fastest mode's consumption, to show which one limits training.

Example::

    python scripts/benchmark_train.py --device cuda               # on a GPU: the paper's sizes
    python scripts/benchmark_train.py --quick                     # on a CPU: small sizes, minutes
    python scripts/benchmark_train.py --modes "fp32 eager" bf16   # some rows only

TF32 changes nothing on a CPU (it is a CUDA matmul/convolution mode), and fp16 is not offered there. The loader
data is a miniature DIV2K made from the photos bundled with scikit-image, in a temporary folder.
"""
import argparse
import logging
import os
import sys
import torch

from msrn_plugin.bench.train_bench import MODES, format_table, machine_description, measure_loaders, measure_modes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--quick', action='store_true',
                        help='small sizes for a CPU: batch 4 of 32x32 LR, MSRN 32 features x 2 blocks, 5 steps')
    parser.add_argument('--modes', nargs='+', default=list(MODES), choices=list(MODES), metavar='MODE',
                        help=f'rows to run (default all: {", ".join(MODES)})')
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('--batch-size', type=int, default=None, help='default 16 (4 with --quick)')
    parser.add_argument('--lq-size', type=int, default=None, help='LR patch size; default 64 (32 with --quick)')
    parser.add_argument('--num-feat', type=int, default=None, help='default 64 (32 with --quick)')
    parser.add_argument('--num-block', type=int, default=None, help='default 8 (2 with --quick)')
    parser.add_argument('--warmup', type=int, default=None, help='untimed steps per mode; default 3 (1 with --quick)')
    parser.add_argument('--steps', type=int, default=None, help='timed steps per mode; default 20 (5 with --quick)')
    parser.add_argument('--workers', type=int, nargs='+', default=None,
                        help='loader workers to measure; default 0 4 8 (0 2 with --quick); 0 alone: one process')
    parser.add_argument('--no-loader', action='store_true', help='skip the loader rows')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        print('error: --device cuda but no CUDA GPU is visible; run on a GPU machine or use --device cpu.',
              file=sys.stderr)
        return 2
    quick = args.quick
    sizes = dict(batch_size=args.batch_size or (4 if quick else 16), lq_size=args.lq_size or (32 if quick else 64),
                 num_feat=args.num_feat or (32 if quick else 64), num_block=args.num_block or (2 if quick else 8),
                 warmup=args.warmup if args.warmup is not None else (1 if quick else 3),
                 steps=args.steps or (5 if quick else 20))
    workers = args.workers if args.workers is not None else ([0, 2] if quick else [0, 4, 8])
    logging.basicConfig(level=logging.WARNING, format='%(message)s')
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f'Machine: {machine_description(args.device)}')
    print(f'MSRN x{args.scale}, {sizes["num_feat"]} features x {sizes["num_block"]} blocks, batch '
          f'{sizes["batch_size"]} of {sizes["lq_size"]}x{sizes["lq_size"]} LR patches, L1 + Adam; '
          f'{sizes["warmup"]} warm-up + {sizes["steps"]} timed steps per mode, round-robin, median', flush=True)
    rows = measure_modes(args.modes, args.device, scale=args.scale, **sizes)
    print(format_table(rows), flush=True)
    if args.device == 'cpu' and 'TF32' in args.modes:
        print('(TF32 is a CUDA mode: on a CPU the TF32 row runs the same fp32 kernels as the fp32 row.)')
    done = [r for r in rows if 'error' not in r]
    if args.no_loader or not done:
        return 0 if done else 1
    fastest = max(done, key=lambda r: r['patches_per_s'])
    gt_size = sizes['lq_size'] * args.scale
    print(f'\nLoader, {gt_size}x{gt_size} GT patches, batch {sizes["batch_size"]}, flips and rotations on '
          f'({os.cpu_count()} CPU cores here):', flush=True)
    for row in measure_loaders(workers, args.scale, gt_size, sizes['batch_size']):
        limit = 'loader limits' if row['patches_per_s'] < fastest['patches_per_s'] else 'model limits'
        print(f'  {row["data"]:<9} {row["workers"]:>2} workers: {row["patches_per_s"]:9.1f} patches/s vs '
              f'{fastest["patches_per_s"]:.1f} consumed by {fastest["mode"]}: {limit}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
