"""Synthesise RESIDE-named hazy/clear pairs from any clear images (atmospheric scattering model).

I = J t + A (1 - t), t = exp(-beta d), with A, beta drawn per hazy image and a depth proxy d; see
msrn_plugin/prep/haze.py and docs/restoration.md for the ranges. The output is read by RESIDEDataset as it is:

    python scripts/synthesize_haze.py --input CLEAR_DIR --output datasets/haze_synthetic/train --num-per-image 4
    python scripts/synthesize_haze.py --input CLEAR_VAL_DIR --output datasets/haze_synthetic/val --seed 1

Then train with options/train_MSRN_dehaze_synthetic.yml.
"""
import argparse
import logging
import os
import sys

from msrn_plugin.prep import PrepError
from msrn_plugin.prep.haze import AIRLIGHT_RANGE, BETA_RANGE, DEPTH_MODES, DEPTH_RANGE, synthesize_haze_folder
from msrn_plugin.utils.image_io import ImageReadError

logger = logging.getLogger(__name__)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='folder of clear images')
    parser.add_argument('--output', required=True, help='output folder (gets clear/, hazy/, haze_params.csv)')
    parser.add_argument('--num-per-image', type=int, default=1, help='hazy versions per clear image (default: 1)')
    parser.add_argument('--airlight', type=float, nargs=2, default=AIRLIGHT_RANGE, metavar=('LOW', 'HIGH'),
                        help=f'range of the airlight A in (0, 1] (default: {AIRLIGHT_RANGE[0]} {AIRLIGHT_RANGE[1]})')
    parser.add_argument('--beta', type=float, nargs=2, default=BETA_RANGE, metavar=('LOW', 'HIGH'),
                        help=f'range of the scattering coefficient (default: {BETA_RANGE[0]} {BETA_RANGE[1]})')
    parser.add_argument('--depth-mode', choices=DEPTH_MODES, default='vertical', help='depth proxy (default: vertical)')
    parser.add_argument('--depth-range', type=float, nargs=2, default=DEPTH_RANGE, metavar=('NEAR', 'FAR'),
                        help=f'relative depth range (default: {DEPTH_RANGE[0]} {DEPTH_RANGE[1]})')
    parser.add_argument('--seed', type=int, default=0, help='base seed (default: 0)')
    parser.add_argument('--overwrite', action='store_true', help='replace a non-empty output folder')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    try:
        records = synthesize_haze_folder(args.input, args.output, num_per_image=args.num_per_image,
                                         airlight_range=tuple(args.airlight), beta_range=tuple(args.beta),
                                         depth_mode=args.depth_mode, depth_range=tuple(args.depth_range),
                                         seed=args.seed, overwrite=args.overwrite)
    except (PrepError, ImageReadError, OSError) as err:
        logger.error(f'error: {err}')
        return 1
    t_min = min(r.t_min for r in records)
    t_max = max(r.t_max for r in records)
    logger.info(f'{len(records)} hazy images in {os.path.join(args.output, "hazy")}, clear images in '
                f'{os.path.join(args.output, "clear")}; transmission range [{t_min:.3f}, {t_max:.3f}].')
    return 0


if __name__ == '__main__':
    sys.exit(main())
