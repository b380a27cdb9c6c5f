"""Convert the official MSRN checkpoints (MIVRC/MSRN-PyTorch ``MSRN_x{2,3,4,8}.pt``) to BasicSR checkpoints.

The key mapping is ``_PREFIX_MAP``; the trained mean shifts it keeps: README.md, Official checkpoints.
"""
import os
import re
import torch
from collections import OrderedDict
from typing import Dict, Tuple

from msrn_plugin.utils.checkpoint import (RECORD_KEY, CheckpointError, atomic_torch_save, build_record, check_finite,
                                          safe_torch_load, strip_module_prefix, upsampler_convs, upsampler_scale)
from msrn_plugin.utils.misc import PathType
from msrn_plugin.utils.outputs import check_no_overwrite

StateDict = Dict[str, torch.Tensor]

_PREFIX_MAP = (
    (re.compile(r'^head\.0\.'), 'conv_first.'),
    (re.compile(r'^tail\.0\.'), 'conv_fusion.'),
    (re.compile(r'^tail\.1\.'), 'conv_after_fusion.'),
    (re.compile(r'^tail\.2\.(\d+)\.'), r'upsample.\1.'),
    (re.compile(r'^tail\.3\.'), 'conv_last.'),
    (re.compile(r'^(body\.\d+\.(?:conv_3_1|conv_3_2|conv_5_1|conv_5_2|confusion)\.)'), r'\1'),
    (re.compile(r'^(sub_mean|add_mean)\.'), r'\1.'),
)
_REQUIRED = ('sub_mean.weight', 'sub_mean.bias', 'head.0.weight', 'tail.0.weight', 'tail.1.weight', 'tail.3.weight',
             'add_mean.weight', 'add_mean.bias')


def infer_official_config(state: StateDict, source: str = '<state_dict>') -> Dict[str, int]:
    """Read the MSRN configuration from an official state dict's shapes.

    Args:
        state (dict): Official flat state dict.
        source (str): Name used in error messages. Default: '<state_dict>'.

    Returns:
        dict: ``num_in_ch``, ``num_out_ch``, ``num_feat``, ``num_block`` and ``upscale``, as MSRN arguments.

    Raises:
        CheckpointError: If the state dict is not an official MSRN one.
    """
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        hint = (" It looks like a BasicSR checkpoint already ('params' key): use it directly."
                if 'params' in state or 'params_ema' in state else '')
        raise CheckpointError(f'{source}: not an official MSRN checkpoint: missing {", ".join(missing)}.{hint}')
    num_feat, num_in_ch = state['head.0.weight'].shape[:2]
    num_out_ch = state['tail.3.weight'].shape[0]
    blocks = {int(m.group(1)) for k in state for m in [re.match(r'^body\.(\d+)\.', k)] if m}
    num_block = len(blocks)
    if num_block == 0 or blocks != set(range(num_block)):
        raise CheckpointError(f'{source}: MSRB blocks body.N are missing or not numbered 0..N-1 '
                              f'(found {sorted(blocks)}).')
    up_convs = upsampler_convs(state, 'tail.2.')
    if not up_convs:
        raise CheckpointError(f'{source}: no upsampler convolutions (tail.2.N.weight) found.')
    upscale = upsampler_scale(up_convs) if all(in_ch == num_feat for _, _, in_ch in up_convs) else None
    if upscale is None:
        raise CheckpointError(f'{source}: cannot infer the scale from the upsampler ({len(up_convs)} convs with '
                              f'{[o for _, o, _ in up_convs]} output channels for {num_feat} features); supported '
                              'scales are 2, 3, 4 and 8.')
    return dict(num_in_ch=int(num_in_ch), num_out_ch=int(num_out_ch), num_feat=int(num_feat), num_block=num_block,
                upscale=upscale)


def convert_official_state_dict(state: StateDict, source: str = '<state_dict>') -> Tuple[StateDict, Dict[str, int]]:
    """Map an official MSRN state dict to the plugin's MSRN key names.

    Args:
        state (dict): Official flat state dict (a leading ``module.`` from DataParallel is accepted).
        source (str): Name used in error messages. Default: '<state_dict>'.

    Returns:
        tuple: The converted state dict (loads strictly into ``MSRN(**config)``) and the inferred config.

    Raises:
        CheckpointError: If the state dict is not an official MSRN one.
    """
    if not isinstance(state, dict):
        raise CheckpointError(f'{source}: expected a state dict, got {type(state).__name__}.')
    state = strip_module_prefix(state)
    config = infer_official_config(state, source)
    converted = OrderedDict()
    for key, value in state.items():
        for pattern, repl in _PREFIX_MAP:
            if pattern.match(key):
                converted[pattern.sub(repl, key, count=1)] = value.detach().clone().float()
                break
        else:
            raise CheckpointError(f'{source}: unexpected key {key!r} for an official MSRN checkpoint.')
    for name in ('sub_mean', 'add_mean'):
        weight = converted[f'{name}.weight']
        if weight.shape[:2] != (config['num_in_ch'] if name == 'sub_mean' else config['num_out_ch'], ) * 2:
            raise CheckpointError(f'{source}: {name}.weight has shape {tuple(weight.shape)}, expected a 1x1 '
                                  'convolution over the image channels.')
    return converted, config


def convert_official_checkpoint(input_path: PathType, output_path: PathType) -> Dict[str, int]:
    """Convert an official ``MSRN_x{s}.pt`` into a BasicSR checkpoint ``{'params': state_dict}`` with a network record.

    The input is loaded with ``weights_only=True`` (weights holding NaN/Inf are refused); the output is written
    atomically, after the weights have loaded strictly into MSRN built from the record it carries
    (:data:`~msrn_plugin.utils.checkpoint.RECORD_KEY`: img_range 255, global_residual false, the source file's name).

    Args:
        input_path (str | PathLike): Official checkpoint.
        output_path (str | PathLike): BasicSR checkpoint to write (``pretrain_network_g`` in an option file).

    Returns:
        dict: The MSRN configuration (``network_g`` arguments) the checkpoint needs.

    Raises:
        CheckpointError: If the input cannot be read or is not an official MSRN checkpoint, or the output is the
            input (real paths, links resolved; checked before anything is read or written).
    """
    from msrn_plugin.archs.msrn_arch import MSRN

    check_no_overwrite([output_path], [input_path], error=CheckpointError,
                       hint='Write the BasicSR checkpoint to another --output (keep the official file as it is).')
    state = safe_torch_load(input_path)
    converted, config = convert_official_state_dict(state, str(input_path))
    check_finite(state, str(input_path))  # names the key as the file has it
    rgb_mean = [float(v) for v in (-converted['sub_mean.bias'].double() / 255.).tolist()]
    record = build_record(dict(type='MSRN', **config, img_range=255., rgb_mean=rgb_mean, global_residual=False),
                          converted_from=os.path.basename(os.fspath(input_path)))
    MSRN(**{k: v for k, v in record['network'].items() if k != 'type'}).load_state_dict(converted, strict=True)
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    atomic_torch_save({'params': converted, RECORD_KEY: record}, output_path)
    return config
