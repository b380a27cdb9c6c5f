"""Denoising / dehazing demo on scikit-image's bundled photos (CPU, minutes): train a tiny MSRN, print PSNR.

Trains through BasicSR's pipeline with options derived from the shipped option files, then prints the PSNR of the
noisy/hazy input and of the MSRN output against the clean photo for each held-out photo (never trained on):

    python scripts/demo_restoration.py --task denoise --work-dir /tmp/msrn_demo
    python scripts/demo_restoration.py --task dehaze --work-dir /tmp/msrn_demo
    python scripts/demo_restoration.py --task both --work-dir /tmp/msrn_demo --iters 1000 --num-feat 32

See msrn_plugin/demos/restoration_demo.py and docs/restoration.md.
"""
import argparse
import logging
import os
import sys
import torch

from msrn_plugin.demos.restoration_demo import format_result, run_demo

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OPTIONS = {
    ('denoise', False): os.path.join(REPO_ROOT, 'options', 'train_MSRN_denoise_color_sigma25.yml'),
    ('denoise', True): os.path.join(REPO_ROOT, 'options', 'train_MSRN_denoise_gray_sigma25.yml'),
    ('dehaze', False): os.path.join(REPO_ROOT, 'options', 'train_MSRN_dehaze_synthetic.yml'),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--task', choices=('denoise', 'dehaze', 'both'), default='both', help='default: both')
    parser.add_argument('--work-dir', required=True, help='folder for the data, option files and experiments/')
    parser.add_argument('--options', help='training option file to derive from (default: the shipped one per task)')
    parser.add_argument('--iters', type=int, default=400, help='training iterations per task (default: 400)')
    parser.add_argument('--num-feat', type=int, default=16, help='MSRN num_feat (default: 16)')
    parser.add_argument('--num-block', type=int, default=2, help='MSRN num_block (default: 2)')
    parser.add_argument('--gt-size', type=int, default=48, help='training patch size (default: 48)')
    parser.add_argument('--batch-size', type=int, default=8, help='default: 8')
    parser.add_argument('--lr', type=float, default=5e-4, help='Adam learning rate (default: 5e-4)')
    parser.add_argument('--sigma', type=float, help='denoising noise level, 0-255 scale (default: the option file, 25)')
    parser.add_argument('--gray', action='store_true', help='denoising on grey photos')
    parser.add_argument('--num-per-image', type=int, default=4, help='dehazing: hazy versions per training photo')
    parser.add_argument('--num-worker', type=int, default=0, help='data-loading worker processes (default: 0)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads (default: 1; tiny networks gain little from more, and several threads '
                        'slow down badly on a machine shared with other jobs); 0: torch\'s default')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    if args.options and args.task == 'both':
        parser.error('--options needs a single --task')
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    results = []
    for task in (('denoise', 'dehaze') if args.task == 'both' else (args.task, )):
        options = args.options or DEFAULT_OPTIONS[(task, args.gray and task == 'denoise')]
        results.append(
            run_demo(task, args.work_dir, options, total_iter=args.iters, num_feat=args.num_feat,
                     num_block=args.num_block, gt_size=args.gt_size, batch_size=args.batch_size, lr=args.lr,
                     sigma=args.sigma, gray=args.gray, num_per_image=args.num_per_image, num_worker=args.num_worker))
    print('\n\n'.join(format_result(r) for r in results))
    return 0


if __name__ == '__main__':
    sys.exit(main())
