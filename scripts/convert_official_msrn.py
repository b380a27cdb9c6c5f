"""Convert an official MSRN checkpoint (MIVRC/MSRN-PyTorch ``MSRN_x{2,3,4,8}.pt``) to a BasicSR checkpoint.

Example::

    python scripts/convert_official_msrn.py --input MSRN_x4.pt --output experiments/pretrained_models/MSRN_x4.pth

Then set ``path.pretrain_network_g`` to the output in an option file (e.g. options/test_MSRN_x4.yml); the printed
``network_g`` block must match the option file's. The output also records that configuration (docs/inference.md,
"The network record"), so scripts/inference_msrn.py and scripts/export_onnx.py need no flags. Exit code 2 when the
input is refused (missing, not an official MSRN checkpoint, pickled code, NaN/Inf weights).
"""
import argparse
import logging
import sys

from msrn_plugin.utils.checkpoint import CheckpointError
from msrn_plugin.utils.convert import convert_official_checkpoint


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='official MSRN_x{s}.pt (flat state dict)')
    parser.add_argument('--output', required=True, help='BasicSR checkpoint to write ({"params": state_dict})')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    try:
        config = convert_official_checkpoint(args.input, args.output)
    except CheckpointError as err:
        logging.error(f'error: {err}')
        return 2
    except OSError as err:
        logging.error(f'error: {err}')
        return 1
    block = '\n'.join(f'  {k}: {v}' for k, v in config.items())
    logging.info(f'Wrote {args.output} (scale x{config["upscale"]}). Option file:\nnetwork_g:\n  type: MSRN\n{block}\n'
                 f'  img_range: 255.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
