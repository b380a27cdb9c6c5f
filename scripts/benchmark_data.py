"""Training-patch throughput of the raw LMDB (RawLMDBDataset) beside BasicSR's PairedImageDataset on the PNG
sub-image LMDB (and on PNG folders), same patch size, measured side by side in one run; plus disk use of both.

Example::

    python scripts/benchmark_data.py                  # x4, 256x256 GT patches, batch 16, one process (workers 0)
    python scripts/benchmark_data.py --workers 0 2    # also with 2 loader worker processes
    python scripts/benchmark_data.py --crop-size 288 --step 144   # smaller sub-images: less for PNG to decode

The data is a miniature DIV2K made from the photos bundled with scikit-image, in a temporary folder. The goal of
the raw format is at least 10x the patches/s of PairedImageDataset on the PNG LMDB with one process (workers 0);
the settings are interleaved and repeated (--repeats) and the best round of each is reported, so that other jobs on
the machine disturb the ratio less.
"""
import argparse
import logging
import os
import sys
import tempfile
import torch

from msrn_plugin.bench.loader_bench import (measure_loader, measure_train_step, paired_dataset_opt,
                                            prepare_benchmark_data, raw_dataset_opt)

GOAL = 10.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('--gt-size', type=int, default=256, help='GT patch size (default 256: 64x64 LR at x4)')
    parser.add_argument('--crop-size', type=int, default=480,
                        help='sub-image size of the miniature PNG LMDB (default 480: the largest multiple of 48 the '
                        '512x512 bundled photos hold; prepare_div2k.py uses 576 on DIV2K)')
    parser.add_argument('--step', type=int, default=240, help='sub-image step of the miniature PNG LMDB')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--batches', type=int, default=20, help='timed loader batches per setting and round')
    parser.add_argument('--repeats', type=int, default=3, help='rounds; the best of each setting is reported')
    parser.add_argument('--workers', type=int, nargs='+', default=[0], help='loader worker processes (default 0)')
    parser.add_argument('--no-folders', action='store_true', help='skip the PNG-folder (disk backend) rows')
    parser.add_argument('--train-steps', type=int, default=0,
                        help='timed full-MSRN training steps for the consumption rate (default 0: skip; '
                        'scripts/benchmark_train.py measures it in detail)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads in this process (default 1)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format='%(message)s')
    if args.gt_size % args.scale or args.gt_size > args.crop_size:
        print(f'error: --gt-size must be a multiple of --scale and at most --crop-size ({args.crop_size}).',
              file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    print(f'Machine: {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, '
          f'CUDA: {torch.cuda.is_available()}')
    print(f'x{args.scale}, GT patch {args.gt_size}, batch {args.batch_size}, flips and rotations on, '
          f'best of {args.repeats} rounds of {args.batches} batches')
    with tempfile.TemporaryDirectory() as tmp:
        paths = prepare_benchmark_data(tmp, args.scale, args.crop_size, args.step, folders=not args.no_folders)
        settings = {
            'raw LMDB, RawLMDBDataset': raw_dataset_opt(paths['raw_lmdb'], args.scale, args.gt_size),
            'PNG LMDB, PairedImageDataset': paired_dataset_opt(paths['gt_lmdb'], paths['lq_lmdb'], 'lmdb',
                                                               args.scale, args.gt_size),
        }
        if not args.no_folders:
            settings['PNG folders, PairedImageDataset'] = paired_dataset_opt(paths['gt_disk'], paths['lq_disk'],
                                                                             'disk', args.scale, args.gt_size)
        best = {}
        for _ in range(args.repeats):
            for name, opt in settings.items():
                for workers in args.workers:
                    rate = measure_loader(opt, workers, args.batch_size, args.batches)
                    best[name, workers] = max(rate, best.get((name, workers), 0.0))
        print(f'{"data":<32} {"workers":>7} {"patches/s":>10}')
        for (name, workers), rate in best.items():
            print(f'{name:<32} {workers:>7} {rate:>10.1f}')
        for workers in args.workers:
            ratio = best['raw LMDB, RawLMDBDataset', workers] / best['PNG LMDB, PairedImageDataset', workers]
            verdict = f'goal >= {GOAL:g}x: {"met" if ratio >= GOAL else "NOT met"}' if workers == 0 else ''
            print(f'raw / PNG LMDB with {workers} workers: {ratio:.1f}x {verdict}')
        print(f'Disk use for the same images (HR + x{args.scale}): raw {paths["raw_bytes"] / 2**20:.1f} MiB, PNG '
              f'sub-images ({args.crop_size}/{args.step}) {paths["png_bytes"] / 2**20:.1f} MiB')
    if args.train_steps:
        step = measure_train_step(args.scale, args.batch_size, args.gt_size // args.scale, steps=args.train_steps)
        print(f'MSRN (64 features, 8 blocks) fp32 training step: {step["seconds_per_step"]:.2f} s per batch of '
              f'{args.batch_size} = {step["patches_per_s"]:.2f} patches/s consumed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
