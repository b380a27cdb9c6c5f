"""Print training-patch throughput of the LMDB and PNG-folder backends with 0, 1 and 2 loader workers, beside the
rate at which a default MSRN training step (BasicSR SRModel, L1 + Adam) consumes patches on this machine.

Example::

    python scripts/benchmark_data.py                 # x4, 256x256 GT patches, batch 16 (options/train_MSRN_x4.yml)
    python scripts/benchmark_data.py --scale 8 --gt-size 512 --crop-size 528 --step 264

The data is a miniature DIV2K made from the photos bundled with scikit-image, in a temporary folder.
"""
import argparse
import logging
import os
import sys
import tempfile
import torch

from msrn_plugin.bench.loader_bench import (measure_loader, measure_train_step, paired_dataset_opt,
                                            prepare_benchmark_data)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('--gt-size', type=int, default=256, help='GT patch size (default 256: 64x64 LR at x4)')
    parser.add_argument('--crop-size', type=int, default=288, help='sub-image size of the miniature LMDB')
    parser.add_argument('--step', type=int, default=144, help='sub-image step of the miniature LMDB')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--batches', type=int, default=20, help='timed loader batches per setting')
    parser.add_argument('--workers', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--train-steps', type=int, default=1, help='timed MSRN steps after a warm-up one (0: skip)')
    parser.add_argument('--threads', type=int, default=os.cpu_count(), help='torch threads for the training step')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format='%(message)s')
    torch.set_num_threads(args.threads)
    print(f'Machine: {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, '
          f'CUDA: {torch.cuda.is_available()}')
    print(f'x{args.scale}, GT patch {args.gt_size}, batch {args.batch_size}, flips and rotations on')
    with tempfile.TemporaryDirectory() as tmp:
        paths = prepare_benchmark_data(tmp, args.scale, args.crop_size, args.step)
        print(f'{"backend":<8} {"workers":>7} {"patches/s":>10}')
        rates = []
        for backend in ('lmdb', 'disk'):
            opt = paired_dataset_opt(paths[f'gt_{backend}'], paths[f'lq_{backend}'], backend, args.scale,
                                     args.gt_size)
            for workers in args.workers:
                rate = measure_loader(opt, workers, args.batch_size, args.batches)
                rates.append(rate)
                print(f'{backend:<8} {workers:>7} {rate:>10.1f}', flush=True)
    if args.train_steps:
        step = measure_train_step(args.scale, args.batch_size, args.gt_size // args.scale, steps=args.train_steps)
        print(f'MSRN (64 features, 8 blocks) training step: {step["seconds_per_step"]:.2f} s per batch of '
              f'{args.batch_size} = {step["patches_per_s"]:.2f} patches/s consumed')
        print(f'Slowest loader setting delivers {min(rates) / step["patches_per_s"]:.0f}x what training consumes.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
