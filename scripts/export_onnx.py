"""Export an MSRN checkpoint to ONNX and check it against PyTorch on a test image (needs onnx and onnxruntime).

Example::

    python scripts/export_onnx.py --model_path experiments/MSRN_x4/models/net_g_latest.pth -o results/msrn_x4.onnx

Scale and configuration come from the checkpoint: its network record (written by training) or, for older files, its
weights plus ``--global_residual true|false`` (required for x1) and ``--img_range`` (default 255). A checkpoint that
is refused (not MSRN, NaN/Inf weights, x1 without a record or flag) exits with 2 before anything is written. Height
and width are dynamic unless --static. The check runs the exported file with onnxruntime on --check_image (default:
a 64x64 crop of a bundled photo) against the PyTorch model built the same way and fails (exit 1) when the largest
difference exceeds --tolerance.
"""
import argparse
import logging
import numpy as np
import sys
import torch

from msrn_plugin.inference import add_network_arguments, load_msrn
from msrn_plugin.inference.export import compare_onnx, export_onnx
from msrn_plugin.utils.checkpoint import CheckpointError
from msrn_plugin.utils.image_io import ImageReadError, read_image
from msrn_plugin.utils.outputs import check_no_overwrite
from msrn_plugin.utils.photos import load_photo


def _test_input(path, num_in_ch: int) -> torch.Tensor:
    img = read_image(path) if path else load_photo('chelsea.png')[100:164, 150:214]
    img = img.astype(np.float32) / float(np.iinfo(img.dtype).max)
    if num_in_ch == 1:
        img = img if img.ndim == 2 else img[:, :, :3].mean(axis=2)
        return torch.from_numpy(np.ascontiguousarray(img))[None, None]
    img = np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img[:, :, 2::-1]  # BGR(A) -> RGB
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model_path', required=True, help='BasicSR MSRN checkpoint (net_g_*.pth)')
    parser.add_argument('-o', '--output', required=True, help='the .onnx file to write')
    parser.add_argument('--param_key', default=None, help="weights key (default: 'params_ema', else 'params')")
    add_network_arguments(parser)
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset (default: 17)')
    parser.add_argument('--static', action='store_true', help='fixed input size (--input_size) instead of dynamic')
    parser.add_argument('--input_size', type=int, default=32, help='trace / static LR size (default: 32)')
    parser.add_argument('--check_image', default=None, help='image for the PyTorch check (default: bundled photo)')
    parser.add_argument('--tolerance', type=float, default=1e-4, help='max abs difference in [0, 1] (default 1e-4)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    try:
        check_no_overwrite([args.output], [args.model_path] + ([args.check_image] if args.check_image else []),
                           error=CheckpointError, hint='Write the .onnx file to another --output.')
        model, opt = load_msrn(args.model_path, param_key=args.param_key, img_range=args.img_range,
                               global_residual=args.global_residual)
    except CheckpointError as err:
        logging.error(f'error: {err}')
        return 2
    try:
        export_onnx(model, args.output, opt['num_in_ch'], args.input_size, args.opset, dynamic=not args.static)
        x = _test_input(args.check_image, opt['num_in_ch'])
        if args.static:
            x = x[:, :, :args.input_size, :args.input_size]
        diff = compare_onnx(args.output, model, x)
    except (ImportError, ImageReadError, OSError, ValueError) as err:
        logging.error(f'error: {err}')
        return 1
    status = 'OK' if diff <= args.tolerance else 'FAILED'
    logging.info(f'Wrote {args.output} (MSRN x{opt["upscale"]}, opset {args.opset}, '
                 f'{"static" if args.static else "dynamic"} size). onnxruntime vs PyTorch on a '
                 f'{x.shape[2]}x{x.shape[3]} image: max abs difference {diff:.2e} (tolerance {args.tolerance:g}): '
                 f'{status}')
    return 0 if status == 'OK' else 1


if __name__ == '__main__':
    sys.exit(main())
