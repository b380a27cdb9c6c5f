"""Compare MSRN with BasicSR's EDSR (M, L) and RCAN on this machine; write model_zoo.md, model_zoo.csv and plots.

Example::

    python scripts/compare_models.py --scale 4 --output results/model_zoo --quick
    python scripts/compare_models.py --scale 4 --output results/model_zoo --threads 1 \\
        --benchmark_dir datasets/benchmark/Set5 --checkpoint MSRN=experiments/MSRN_x4/models/net_g_latest.pth

Parameters, MACs (mmengine, multiply-accumulates), CPU latency and peak memory at several input sizes for the papers'
configurations; a same-budget run (slim members of each family trained for the same iterations on the same batches)
with PSNR/SSIM on a benchmark folder (default: the bundled held-out photos); PSNR/SSIM of given checkpoints; and the
published figures from --reference beside them, marked as published. ``--quick`` finishes in minutes on 2 cores.
"""
import argparse
import logging
import os
import sys

from msrn_plugin.prep.benchmark import gt_folder, lr_folder
from msrn_plugin.utils.checkpoint import CheckpointError
from msrn_plugin.zoo import ZOO_CONFIGS, CompareSettings, compare_models

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_REFERENCE = os.path.join(REPO, '..', 'shared', 'reference', 'published_results.csv')


def _checkpoint(text: str):
    name, sep, path = text.partition('=')
    if not sep or name not in ZOO_CONFIGS or not path:
        raise argparse.ArgumentTypeError(f'expected NAME=PATH with NAME in {list(ZOO_CONFIGS)}, got {text!r}')
    return name, path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--scale', type=int, default=4, choices=(2, 3, 4, 8), help='upscaling factor (default: 4)')
    parser.add_argument('--output', default='results/model_zoo', help='output folder (default: results/model_zoo)')
    parser.add_argument('--quick', action='store_true', help='small preset that finishes in minutes on a CPU')
    parser.add_argument('--models', nargs='+', choices=list(ZOO_CONFIGS), help='default: all')
    parser.add_argument('--sizes', type=int, nargs='+', help='LR sizes for latency/memory (default 32 64; quick 16 32)')
    parser.add_argument('--repeats', type=int, help='timed runs per size (default 5; quick 3)')
    parser.add_argument('--flops_size', type=int, help='LR size of the MAC count (default 64; quick 32)')
    parser.add_argument('--iters', type=int, help='same-budget iterations, 0 = none (default 1000; quick 100)')
    parser.add_argument('--batch_size', type=int, help='default 8; quick 4')
    parser.add_argument('--lr_patch', type=int, help='LR training patch size (default 24; quick 16)')
    parser.add_argument('--learning_rate', type=float, help='default 4e-4')
    parser.add_argument('--seed', type=int, help='default 0')
    parser.add_argument('--benchmark_dir',
                        help='a benchmark prepared by scripts/prepare_benchmark.py: uses its GTmod{s} and LRbicx{s}')
    parser.add_argument('--hr_dir', help='benchmark HR folder (default: bundled held-out photos)')
    parser.add_argument('--lr_dir', help='benchmark LR folder (default: MATLAB bicubic from HR)')
    parser.add_argument('--eval_crop', type=int, help='centre-crop evaluation images (default 0 = whole; quick 128)')
    parser.add_argument('--checkpoint', type=_checkpoint, action='append', default=[], metavar='NAME=PATH',
                        help='evaluate a checkpoint of a paper configuration (repeatable)')
    parser.add_argument('--reference', default=DEFAULT_REFERENCE,
                        help='published_results.csv (default: ../shared/reference/ beside the repo)')
    parser.add_argument('--threads', type=int,
                        help='CPU threads (default: all cores; use 1 on a machine shared with other jobs)')
    parser.add_argument('--device', choices=('cpu', 'cuda'), help='default: cpu')
    parser.add_argument('--crop_image', help='benchmark image (file stem) for the crop grid (default: the first)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    if args.benchmark_dir:
        if args.hr_dir or args.lr_dir:
            parser.error('give either --benchmark_dir or --hr_dir/--lr_dir')
        args.hr_dir, args.lr_dir = gt_folder(args.benchmark_dir, args.scale), lr_folder(args.benchmark_dir, args.scale)
    overrides = {k: v for k, v in vars(args).items()
                 if v is not None and k not in ('scale', 'output', 'quick', 'checkpoint', 'benchmark_dir')}
    overrides.update(scale=args.scale, checkpoints=dict(args.checkpoint))
    settings = CompareSettings.quick_preset(**overrides) if args.quick else CompareSettings(**overrides)
    try:
        result = compare_models(args.output, settings)
    except (CheckpointError, FileNotFoundError, KeyError, ValueError) as err:
        logging.error(f'error: {err}')
        return 1
    logging.info('Wrote ' + ', '.join(result['files']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
