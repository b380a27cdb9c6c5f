"""Turn the DIV2K download into the sub-image LMDBs that options/train_MSRN_x{2,3,4,8}.yml read.

Example::

    python scripts/prepare_div2k.py --root DIV2K_ROOT --output datasets/DIV2K --scales 2 3 4 8 --workers 2

DIV2K_ROOT holds DIV2K_train_HR/ and, optionally, DIV2K_train_LR_bicubic/X{2,3,4}/ and DIV2K_train_LR_x8/; a scale
without its LR folder gets LR generated from HR (mod-crop, MATLAB bicubic). Writes
OUTPUT/DIV2K_train_HR_sub.lmdb and OUTPUT/DIV2K_train_LR_bicubic_X{s}_sub.lmdb; reruns skip finished databases.

With --format raw it writes OUTPUT/DIV2K_train_raw.lmdb instead: the whole images (HR and each LR scale)
uncompressed, no overlapping sub-images, for type RawLMDBDataset (the faster loader, docs/training_speed.md); the
summary puts its disk use beside the PNG sub-image LMDBs' for the same images (measured when they are in OUTPUT,
estimated otherwise).
"""
import argparse
import logging
import sys

from msrn_plugin.prep import PrepError
from msrn_plugin.prep.div2k import prepare_div2k
from msrn_plugin.utils.image_io import ImageReadError


def _raw_summary(result: dict) -> None:
    db, png = result['databases']['raw'], result['png']
    scales = ', x'.join(db['sources'])
    logging.info(f'{db["num_images"]} images, HR + x{scales} ({db["status"]}, {db["seconds"]:.1f} s): {db["path"]}')
    logging.info(f'  raw (whole images, uncompressed):  {db["disk_bytes"] / 2**20:9.1f} MiB')
    if png['bytes'] is None:
        logging.info('  PNG sub-image LMDBs:               n/a (no image holds a sub-image of that size)')
        return
    how = 'measured' if png['measured'] else f'estimated for --crop-size {png["crop_size"]} --step {png["step"]}'
    logging.info(f'  PNG sub-image LMDBs, same images:  {png["bytes"] / 2**20:9.1f} MiB ({how}); raw/PNG = '
                 f'{db["disk_bytes"] / max(png["bytes"], 1):.2f}')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', required=True, help='folder containing DIV2K_{split}_HR/ (+ optional LR folders)')
    parser.add_argument('--output', required=True, help='folder for the .lmdb databases, e.g. datasets/DIV2K')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4, 8], help='default: 2 3 4 8')
    parser.add_argument('--workers', type=int, default=1, help='processes for reading/resizing/encoding (default 1)')
    parser.add_argument('--crop-size', type=int, default=576, help='sub-image size in HR pixels (default 576)')
    parser.add_argument('--step', type=int, default=288, help='sub-image step in HR pixels (default 288)')
    parser.add_argument('--thresh-size', type=int, default=0, help='border leftover threshold (default 0)')
    parser.add_argument('--split', choices=('train', 'valid'), default='train')
    parser.add_argument('--format', choices=('png', 'raw'), default='png', dest='data_format',
                        help='png: BasicSR sub-image LMDBs (default); raw: whole uncompressed images in one LMDB')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    try:
        result = prepare_div2k(args.root, args.output, scales=args.scales, workers=args.workers,
                               crop_size=args.crop_size, step=args.step, thresh_size=args.thresh_size,
                               split=args.split, progress=not args.no_progress, data_format=args.data_format)
    except (PrepError, ImageReadError) as err:
        logging.error(f'error: {err}')
        return 2
    except KeyboardInterrupt:
        logging.error('interrupted: finished databases are kept, the unfinished one was removed; rerun to continue.')
        return 130
    if args.data_format == 'raw':
        _raw_summary(result)
        return 0
    logging.info(f'{result["num_images"]} HR images, {result["num_subimages"]} sub-images of '
                 f'{args.crop_size}x{args.crop_size} each:')
    for name, db in result['databases'].items():
        label = 'HR' if name == 'hr' else f'x{name}'
        logging.info(f'  {label:>3}  {db["status"]:<7}  {db["seconds"]:7.1f} s  {db["disk_bytes"] / 2**20:9.1f} MiB  '
                     f'{db["source"]:<9}  {db["path"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
