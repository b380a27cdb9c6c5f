"""Prepare an SR benchmark (Set5, Set14, B100, Urban100, Manga109, or any folder of HR images).

Example::

    python scripts/prepare_benchmark.py --input Set5/HR --output datasets/Set5 --scales 2 3 4 8

Writes OUTPUT/GTmod{s}/NAME.png (HR mod-cropped to a multiple of s) and OUTPUT/LRbicx{s}/NAME.png (MATLAB bicubic),
the folders options/test_MSRN_x{s}.yml read. Exit status 2, with nothing written, on bad input: a missing folder, an
unreadable, 16-bit or too small image, or an output that would replace an input image (e.g. --input S/GTmod4
--output S --scales 4).
"""
import argparse
import logging
import sys

from msrn_plugin.prep import PrepError
from msrn_plugin.prep.benchmark import prepare_benchmark
from msrn_plugin.utils.image_io import ImageReadError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='folder of HR images')
    parser.add_argument('--output', required=True, help='benchmark folder, e.g. datasets/Set5')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4, 8], help='default: 2 3 4 8')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    try:
        result = prepare_benchmark(args.input, args.output, scales=args.scales, progress=not args.no_progress)
    except (PrepError, ImageReadError) as err:
        logging.error(f'error: {err}')
        return 2
    for s, folders in result['folders'].items():
        logging.info(f'x{s}: {len(result["images"])} images in {folders["gt"]} and {folders["lr"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
