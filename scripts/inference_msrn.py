"""Upscale an image or a folder of images with a trained MSRN checkpoint.

Example::

    python scripts/inference_msrn.py -i inputs/ -o results/x4 --model_path experiments/MSRN_x4/models/net_g_latest.pth
    python scripts/inference_msrn.py -i big.png -o out/ --model_path net_g.pth --tile 128 --ensemble --bf16

Scale and network configuration are read from the checkpoint (``-s`` only checks it): from the network record that
training writes or, for older files, from the weights plus ``--global_residual true|false`` (required for x1 files)
and ``--img_range`` (default 255). Gray, RGB, RGBA (alpha upscaled separately) and 16-bit images are handled; outputs
keep the input's name (plus ``_SUFFIX``), layout and bit depth. ``--tile`` bounds memory: tiles are padded by MSRN's
receptive-field radius (the default ``--tile_pad``), so the stitched output equals the whole-image output. Exit code
1 if any file failed, 2 if the checkpoint is refused (unreadable, not MSRN, wrong scale, NaN/Inf weights, x1 without
a record or --global_residual) or the run is (a missing input, an output that would replace an input: real paths
are compared before anything is written). Images declaring more than ``--max-pixels`` (default 100 megapixels, or
``$MSRN_MAX_PIXELS``) fail from their header, before decoding.
"""
import argparse
import logging
import sys
import torch

from msrn_plugin.inference import MSRNer, add_network_arguments, load_msrn, msrn_receptive_radius, upscale_path
from msrn_plugin.utils.checkpoint import CheckpointError
from msrn_plugin.utils.image_io import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, max_pixels_limit


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-i', '--input', required=True, help='input image or folder')
    parser.add_argument('-o', '--output', required=True, help='output folder')
    parser.add_argument('--model_path', required=True, help='BasicSR MSRN checkpoint (net_g_*.pth)')
    parser.add_argument('-s', '--scale', type=int, default=None, help='expected scale (default: the checkpoint\'s)')
    parser.add_argument('--param_key', default=None, help="weights key (default: 'params_ema', else 'params')")
    add_network_arguments(parser)
    parser.add_argument('--tile', type=int, default=0, help='tile size in LR pixels, 0 = whole image (default: 0)')
    parser.add_argument('--tile_pad', type=int, default=None,
                        help='tile overlap in LR pixels (default: the exact minimum, MSRN\'s receptive radius)')
    parser.add_argument('--ensemble', action='store_true', help='self-ensemble over 8 flips/rotations (MSRN+)')
    precision = parser.add_mutually_exclusive_group()
    for name in ('fp32', 'fp16', 'bf16'):
        precision.add_argument(f'--{name}', dest='precision', action='store_const', const=name,
                               help=f'run in {name}' + (' (default)' if name == 'fp32' else ''))
    parser.set_defaults(precision='fp32')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default=None,
                        help='default: cuda when available, else cpu')
    parser.add_argument('--suffix', default='', help='append _SUFFIX to output names (default: none)')
    parser.add_argument('--alpha_upsampler', choices=('bicubic', 'model'), default='bicubic',
                        help='how the alpha channel of RGBA images is upscaled (default: bicubic)')
    parser.add_argument('--max-pixels', '--max_pixels', dest='max_pixels', type=int, default=None,
                        help='refuse input images with more pixels than this, from their header, before decoding '
                        f'(default: ${MAX_PIXELS_ENV} or {DEFAULT_MAX_PIXELS:,}; 0: no limit; --tile bounds the '
                        'network memory of images under the limit)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if device == 'cuda' and not torch.cuda.is_available():
        logging.error('error: --device cuda, but no CUDA device is available; use --device cpu.')
        return 1
    try:
        model, opt = load_msrn(args.model_path, scale=args.scale, device=device, param_key=args.param_key,
                               img_range=args.img_range, global_residual=args.global_residual)
    except CheckpointError as err:
        logging.error(f'error: {err}')
        return 2
    try:
        upsampler = MSRNer(model, opt['upscale'], tile=args.tile, tile_pad=args.tile_pad, ensemble=args.ensemble,
                              precision=args.precision, device=device, alpha_upsampler=args.alpha_upsampler)
    except ValueError as err:
        logging.error(f'error: {err}')
        return 1
    logging.info(f'MSRN x{opt["upscale"]} ({opt["num_feat"]} features, {opt["num_block"]} blocks) on {device}, '
                 f'{args.precision}; receptive radius {msrn_receptive_radius(model)} LR px'
                 + (f'; tiles {args.tile} + pad {upsampler.tile_pad}' if args.tile else '')
                 + ('; self-ensemble' if args.ensemble else ''))
    try:
        max_pixels_limit(args.max_pixels)
        report = upscale_path(args.input, args.output, upsampler, suffix=args.suffix, max_pixels=args.max_pixels)
    except (FileNotFoundError, ValueError) as err:
        logging.error(f'error: {err}')
        return 2
    return report.exit_code


if __name__ == '__main__':
    sys.exit(main())
