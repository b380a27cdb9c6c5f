"""Quick-start demo: build the demo data from bundled photos, train MSRN x4 on the CPU, compare with bicubic.

    python scripts/demo.py            # continues a previous demo run if there is one (--auto_resume)
    python scripts/demo.py --fresh    # start over (BasicSR archives the previous experiment folder)

Run from the repository root (the option file's paths are relative to it). See
msrn_plugin/demos/sr_demo.py for what the demo is and is not.
"""
import argparse
import logging
import sys
import time
from os import path as osp

from msrn_plugin.demos.sr_demo import (DEMO_OPTION, build_demo_data, evaluate_sr, format_table, load_demo_network,
                                       write_summary)
from msrn_plugin.utils.options import load_options
from msrn_plugin.utils.pipeline import run_pipeline

logger = logging.getLogger('msrn_plugin.demos.sr_demo')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', default=DEMO_OPTION, help=f'demo option file (default: {DEMO_OPTION})')
    parser.add_argument('--fresh', action='store_true', help='start training over instead of resuming')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')

    opt = load_options(args.opt)
    start = time.time()
    logger.info('[demo 1/3] building the demo data set from scikit-image photos under datasets/demo')
    build_demo_data()
    prep_seconds = time.time() - start

    logger.info(f'[demo 2/3] training {opt["name"]} on the CPU ({opt["train"]["total_iter"]} iterations)')
    run_pipeline('train', ['-opt', args.opt] + ([] if args.fresh else ['--auto_resume']))
    train_seconds = time.time() - start - prep_seconds

    logger.info('[demo 3/3] evaluating on held-out photos (Y channel, 4-pixel border cropped)')
    checkpoint = osp.join('experiments', opt['name'], 'models', 'net_g_latest.pth')
    net = load_demo_network(checkpoint, opt['network_g'])
    val = opt['datasets']['val']
    save_dir = osp.join('results', opt['name'])
    rows = evaluate_sr(net, val['dataroot_gt'], val['dataroot_lq'], opt['scale'], save_dir=save_dir)
    mean = write_summary(rows, osp.join(save_dir, 'summary.csv'))
    logger.info('\n' + format_table(rows, mean))
    logger.info(f'\nMSRN vs bicubic on {len(rows)} held-out photos: {mean["psnr_msrn"]:.2f} dB vs '
                f'{mean["psnr_bicubic"]:.2f} dB ({mean["psnr_msrn"] - mean["psnr_bicubic"]:+.2f} dB), SSIM '
                f'{mean["ssim_msrn"]:.4f} vs {mean["ssim_bicubic"]:.4f}.')
    logger.info(f'Wall time: data {prep_seconds:.0f} s, training {train_seconds:.0f} s, total '
                f'{time.time() - start:.0f} s. Images: {save_dir}/ (*_compare.png: HR | bicubic | MSRN); '
                f'checkpoints: experiments/{opt["name"]}/models/.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
