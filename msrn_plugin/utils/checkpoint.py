"""Checkpoints: crash-safe writing, code-free reading, and the one place that introspects their content.

Writing, reading, the network record, scale inference, ``module.`` prefixes and NaN/Inf checks: docs/inference.md.
"""
import inspect
import logging
import math
import os
import pickle
import re
import torch
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from msrn_plugin.utils.atomic import atomic_write
from msrn_plugin.utils.misc import PathType

StateDict = Dict[str, torch.Tensor]

logger = logging.getLogger(__name__)

#: Entry of the network record in checkpoints the plugin writes, beside BasicSR's ``'params'`` / ``'params_ema'``.
RECORD_KEY = 'msrn_plugin'
#: Version of the record's layout.
RECORD_FORMAT = 1
#: Keys every MSRN state dict has.
MSRN_REQUIRED_KEYS = ('conv_first.weight', 'body.0.conv_3_1.weight', 'body.0.conv_5_1.weight', 'conv_fusion.weight',
                      'conv_after_fusion.weight', 'conv_last.weight')
#: MSRN options read from the weights' shapes.
MSRN_SHAPE_KEYS = ('num_in_ch', 'num_out_ch', 'num_feat', 'num_block', 'upscale')
#: Key patterns of other BasicSR architectures, to say what a wrong checkpoint is.
_OTHER_ARCHS = (('an RCAN', 'body.0.residual_group.0.rcab.0.weight'), ('an EDSR', 'conv_after_body.weight'),
                ('an RRDBNet (ESRGAN / Real-ESRGAN)', 'body.0.rdb1.conv1.weight'), ('an MSRResNet', 'upconv1.weight'),
                ('a SwinIR', 'patch_embed.norm.weight'))


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used; the message names the file and what to do."""


def atomic_torch_save(obj: Any, path: PathType) -> None:
    """``torch.save`` that never leaves a partial file under ``path``.

    Args:
        obj (Any): What to save.
        path (str | PathLike): Final file name; its folder must exist.
    """
    with atomic_write(path) as f:
        torch.save(obj, f)


def safe_torch_load(path: PathType, map_location: Any = 'cpu') -> Any:
    """Load a checkpoint with ``weights_only=True``.

    Args:
        path (str | PathLike): The checkpoint.
        map_location (Any): Passed to ``torch.load``. Default: 'cpu'.

    Returns:
        The loaded object (tensors, containers and plain Python values only).

    Raises:
        CheckpointError: If the file is missing, truncated or corrupt, or holds pickled code.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: checkpoint not found; check the path.')
    if os.path.getsize(path) == 0:
        raise CheckpointError(f'{path}: checkpoint is empty (0 bytes), probably from an interrupted copy; '
                              'use another checkpoint.')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # torch reports both "pickled code" and "not a pickle at all" as weights-only failures; only the first
        # names a GLOBAL (a class or function the file asks to import and call)
        refused = re.search(r'GLOBAL ([\w.]+)', str(err))
        if refused is None:
            detail = re.search(r'WeightsUnpickler error:\s*(\S[^\n]*)', str(err))
            raise CheckpointError(f'{path}: cannot read checkpoint (UnpicklingError: '
                                  f'{detail.group(1)[:120] if detail else "no PyTorch data found"}); the file is '
                                  'truncated or not a PyTorch checkpoint.') from None
        raise CheckpointError(f'{path}: refused to load: the file holds pickled Python objects, not only weights '
                              f'(it would import and call {refused.group(1)}). Only plain state dicts are loaded; '
                              're-save the weights with `torch.save(model.state_dict(), path)` from a trusted '
                              'environment.') from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f'{path}: cannot read checkpoint ({type(err).__name__}: {err}); the file is truncated '
                              'or not a PyTorch checkpoint.') from None


def training_state_iters(names: Iterable[str]) -> List[int]:
    """The iterations of BasicSR's training-state files (``<iter>.state``) among ``names``, newest first.

    Args:
        names (Iterable[str]): File names (e.g. ``os.listdir`` of ``training_states/``).

    Returns:
        list[int]: Iterations, in decreasing order; other names are ignored.
    """
    matches = (re.fullmatch(r'(\d+)\.state', name) for name in names)
    return sorted((int(m.group(1)) for m in matches if m), reverse=True)


# --------------------------------------------------------------------------------------------------------------------
# State dicts: where the weights are, prefixes, NaN/Inf
# --------------------------------------------------------------------------------------------------------------------
def strip_module_prefix(state_dict: Mapping[str, Any]) -> 'OrderedDict[str, Any]':
    """Drop the ``module.`` prefix that DataParallel / DDP put on keys (BasicSR's rule: every key that has it).

    Args:
        state_dict (Mapping[str, Any]): Weights.

    Returns:
        OrderedDict: A new dict, same order, same values.
    """
    return OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v) for k, v in state_dict.items())


def extract_state_dict(checkpoint: object, source: str, param_key: Optional[str] = None) -> StateDict:
    """Take the network weights out of a loaded checkpoint.

    Args:
        checkpoint (object): What :func:`safe_torch_load` returned.
        source (str): The file name, for messages.
        param_key (str | None): Key of the weights in a BasicSR checkpoint. None: ``'params_ema'`` when present
            (BasicSR saves the EMA weights there), else ``'params'``, else the checkpoint itself when it is a bare
            state dict. Default: None.

    Returns:
        dict[str, Tensor]: The state dict, with any ``module.`` prefix (DataParallel/DDP) removed.

    Raises:
        CheckpointError: If no state dict can be found.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'{source}: expected a dict of weights, found a {type(checkpoint).__name__}; '
                              'give a BasicSR checkpoint (net_g_*.pth).')
    if param_key is not None:
        if param_key not in checkpoint:
            raise CheckpointError(f'{source}: no {param_key!r} entry (the checkpoint has {sorted(checkpoint)[:8]}); '
                                  'choose one of those with --param_key.')
        state_dict = checkpoint[param_key]
    else:
        found = [key for key in ('params_ema', 'params') if isinstance(checkpoint.get(key), Mapping)]
        if found:
            state_dict = checkpoint[found[0]]
            logger.info(f'{source}: using the {found[0]!r} weights.')
        elif checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
            state_dict = checkpoint
        else:
            raise CheckpointError(f'{source}: no network weights found (keys {sorted(checkpoint)[:8]}); expected '
                                  "'params' or 'params_ema' (a BasicSR net_g_*.pth) or a bare state dict.")
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f'{source}: the selected entry is not a state dict of tensors.')
    return dict(strip_module_prefix(state_dict))


def first_nonfinite(state_dict: Mapping[str, Any]) -> Optional[Tuple[str, str]]:
    """The first floating-point tensor holding NaN or Inf.

    Args:
        state_dict (Mapping[str, Any]): Weights (non-tensor values are skipped).

    Returns:
        tuple[str, str] | None: ``(key, 'NaN' or 'Inf')``, or None when every value is finite.
    """
    for key, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return key, 'NaN' if bool(torch.isnan(value).any()) else 'Inf'
    return None


def nonfinite_message(source: str, state_dict: Mapping[str, Any]) -> Optional[str]:
    """The refusal for weights holding NaN/Inf, naming the first bad tensor; None when all are finite."""
    bad = first_nonfinite(state_dict)
    if bad is None:
        return None
    return f'{source}: tensor {bad[0]!r} holds {bad[1]} (a diverged run?); use an earlier checkpoint.'


def check_finite(state_dict: Mapping[str, Any], source: str) -> None:
    """Refuse weights holding NaN or Inf (they give black or garbage images, silently).

    Args:
        state_dict (Mapping[str, Any]): Weights.
        source (str): The file name, for the message.

    Raises:
        CheckpointError: Naming the first bad tensor.
    """
    message = nonfinite_message(source, state_dict)
    if message:
        raise CheckpointError(message)


# --------------------------------------------------------------------------------------------------------------------
# Scale and MSRN configuration from the weights' shapes
# --------------------------------------------------------------------------------------------------------------------
def upsampler_scale(convs: Sequence[Tuple[int, int, int]]) -> Optional[int]:
    """The scale of a pixel-shuffle upsampler (MSRN's, BasicSR's ``Upsample``, the official MSRN's ``tail.2``).

    Args:
        convs (Sequence[tuple[int, int, int]]): ``(index in the Sequential, out_channels, in_channels)`` of each
            convolution, in index order. Empty: no upsampler.

    Returns:
        int | None: 1 (no upsampler), 3 (one conv with 9x the channels) or 2, 4, 8 (one to three convs with 4x the
        channels at Sequential indices 0, 2, 4); None for anything else.
    """
    if not convs:
        return 1
    ratios = [out_ch / max(in_ch, 1) for _, out_ch, in_ch in convs]
    if len(convs) == 1 and ratios[0] == 9:
        return 3
    indices = [i for i, _, _ in convs]
    if len(convs) <= 3 and all(r == 4 for r in ratios) and indices == list(range(0, 2 * len(convs), 2)):
        return 2**len(convs)
    return None


def upsampler_convs(state_dict: Mapping[str, Any], prefix: str = 'upsample.') -> list:
    """``(index, out_channels, in_channels)`` of the 4-D ``<prefix><index>.weight`` tensors, by index."""
    found = []
    for key, value in state_dict.items():
        m = re.fullmatch(re.escape(prefix) + r'(\d+)\.weight', key)
        if m and getattr(value, 'ndim', 0) == 4:
            found.append((int(m.group(1)), int(value.shape[0]), int(value.shape[1])))
    return sorted(found)


def checkpoint_upscale(state_dict: Mapping[str, Any]) -> Optional[int]:
    """The scale of a BasicSR-layout SR network (``conv_first`` + ``upsample.N``: MSRN, EDSR, RCAN), or None.

    Args:
        state_dict (Mapping[str, Any]): Weights (``module.`` prefixes allowed).

    Returns:
        int | None: 1, 2, 3, 4 or 8; None when the weights do not tell.
    """
    state_dict = strip_module_prefix(state_dict)
    convs = upsampler_convs(state_dict)
    if not convs and 'conv_first.weight' not in state_dict:
        return None
    return upsampler_scale(convs)


def _describe_architecture(keys: Sequence[str]) -> str:
    for name, key in _OTHER_ARCHS:
        if key in keys:
            return f'it looks like {name} checkpoint'
    return f'its first keys are {list(keys)[:4]}'


def msrn_config_from_state_dict(state_dict: Mapping[str, torch.Tensor], source: str = '<state_dict>') -> dict:
    """Infer MSRN's shape options from its state dict.

    ``num_feat`` and ``num_in_ch`` come from ``conv_first``, ``num_out_ch`` from ``conv_last``, ``num_block`` from the
    ``body.{i}`` blocks (checked against ``conv_fusion``), ``upscale`` from the pixel-shuffle convolutions
    (:func:`upsampler_scale`). ``img_range`` and ``global_residual`` are not in the weights: they come from the
    checkpoint's network record (:func:`msrn_network_options`).

    Args:
        state_dict (Mapping[str, Tensor]): MSRN weights.
        source (str): The file name, for messages. Default: '<state_dict>'.

    Returns:
        dict: ``{'type': 'MSRN', 'num_in_ch', 'num_out_ch', 'num_feat', 'num_block', 'upscale'}``.

    Raises:
        CheckpointError: If the weights are not MSRN's or are inconsistent.
    """
    keys = list(state_dict)
    missing = [k for k in MSRN_REQUIRED_KEYS if k not in state_dict]
    if missing:
        raise CheckpointError(f'{source}: not an MSRN checkpoint ({_describe_architecture(keys)}; missing '
                              f'{missing[:3]}). Give a checkpoint trained with network_g type MSRN.')
    first = state_dict['conv_first.weight']
    num_feat, num_in_ch = int(first.shape[0]), int(first.shape[1])
    num_out_ch = int(state_dict['conv_last.weight'].shape[0])
    blocks = sorted({int(m.group(1)) for m in (re.match(r'body\.(\d+)\.', k) for k in keys) if m})
    num_block = len(blocks)
    if blocks != list(range(num_block)):
        raise CheckpointError(f'{source}: MSRN blocks are not numbered 0..{num_block - 1} ({blocks}); the checkpoint '
                              'is damaged or was edited.')
    fusion = tuple(state_dict['conv_fusion.weight'].shape)
    if fusion[:2] != (num_feat, num_feat * (num_block + 1)):
        raise CheckpointError(f'{source}: conv_fusion has shape {fusion}, but {num_block} blocks of {num_feat} '
                              f'features need ({num_feat}, {num_feat * (num_block + 1)}, 1, 1); the checkpoint is '
                              'damaged or not MSRN.')
    convs = upsampler_convs(state_dict)
    upscale = upsampler_scale(convs) if all(in_ch == num_feat for _, _, in_ch in convs) else None
    if upscale is None:
        raise CheckpointError(f'{source}: cannot infer the scale from the upsampler (convolutions '
                              f'{[i for i, _, _ in convs]} with {[o for _, o, _ in convs]} outputs for num_feat '
                              f'{num_feat}); the checkpoint is damaged or not MSRN.')
    return {'type': 'MSRN', 'num_in_ch': num_in_ch, 'num_out_ch': num_out_ch, 'num_feat': num_feat,
            'num_block': num_block, 'upscale': upscale}


# --------------------------------------------------------------------------------------------------------------------
# The network record
# --------------------------------------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """YAML option values as plain Python (dict, list, str, int, float, bool, None), loadable with weights_only."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, 'item'):  # numpy / torch scalars
        return value.item()
    return str(value)


def complete_network_options(net_opt: Mapping[str, Any]) -> dict:
    """Network options with every argument of the architecture filled in (its defaults where the options omit one).

    Args:
        net_opt (Mapping): ``{'type': <ARCH_REGISTRY name>, **arguments}`` (not modified).

    Returns:
        dict: A new dict of plain values, ``type`` first; unknown types are returned as given.
    """
    from basicsr.utils.registry import ARCH_REGISTRY

    opt = _plain(dict(net_opt))
    if opt.get('type') not in ARCH_REGISTRY:
        return opt
    for name, param in inspect.signature(ARCH_REGISTRY.get(opt['type'])).parameters.items():
        if name not in opt and param.default is not inspect.Parameter.empty and \
                param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            opt[name] = _plain(param.default)
    return opt


def network_key(net_label: str) -> str:
    """The option key of a network: ``'net_g'`` -> ``'network_g'`` (BasicSR's naming)."""
    return 'network_' + (net_label[len('net_'):] if net_label.startswith('net_') else net_label)


def network_record(opt: Mapping[str, Any], net_label: str = 'net_g') -> Optional[dict]:
    """The network record saved with a network's weights (under :data:`RECORD_KEY`).

    Args:
        opt (Mapping): The run's options (not modified).
        net_label (str): BasicSR's network label (``save_network``'s ``net_label``). Default: 'net_g'.

    Returns:
        dict | None: ``{'format', 'plugin_version', 'network_key', 'network'}`` with the complete network options,
        or None when the options have no such network.
    """
    key = network_key(net_label)
    net_opt = opt.get(key)
    if not isinstance(net_opt, Mapping) or 'type' not in net_opt:
        return None
    return build_record(net_opt, key)


def build_record(net_opt: Mapping[str, Any], key: str = 'network_g', **extra: Any) -> dict:
    """A network record for ``net_opt`` (completed with the architecture's defaults).

    Args:
        net_opt (Mapping): Network options, ``type`` included (not modified).
        key (str): The option key of the network. Default: 'network_g'.
        extra: More plain values to keep in the record (e.g. ``converted_from``).

    Returns:
        dict: ``{'format', 'plugin_version', 'network_key', 'network', **extra}``.
    """
    from msrn_plugin import __version__

    return {'format': RECORD_FORMAT, 'plugin_version': __version__, 'network_key': key,
            'network': complete_network_options(net_opt), **_plain(extra)}


def read_network_record(checkpoint: object, source: str) -> Optional[dict]:
    """The network options recorded in a checkpoint, or None for files without a record.

    Args:
        checkpoint (object): What :func:`safe_torch_load` returned.
        source (str): The file name, for messages.

    Returns:
        dict | None: The recorded network options (``type`` included; a new dict).

    Raises:
        CheckpointError: If the record is there but damaged.
    """
    if not isinstance(checkpoint, Mapping) or RECORD_KEY not in checkpoint:
        return None
    record = checkpoint[RECORD_KEY]
    network = record.get('network') if isinstance(record, Mapping) else None
    if not isinstance(network, Mapping) or not isinstance(network.get('type'), str):
        raise CheckpointError(f'{source}: the network record ({RECORD_KEY!r} entry) is damaged: expected '
                              "{'network': {'type': ..., ...}}; delete that entry to infer the network from the "
                              'weights.')
    return dict(network)


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(_format(v) for v in value) + ']'
    return f'{value:g}' if isinstance(value, float) else str(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def record_differences(record: Mapping[str, Any], options: Mapping[str, Any],
                       ignore: Iterable[str] = ()) -> list:
    """``['global_residual: checkpoint true, options false', ...]`` for the keys both sides have (after completing
    both with the architecture's defaults)."""
    record, options = complete_network_options(record), complete_network_options(options)
    return [f'{k}: checkpoint {_format(record[k])}, options {_format(options[k])}' for k in record
            if k in options and k not in ignore and not _same(record[k], options[k])]


def msrn_network_options(state_dict: Mapping[str, torch.Tensor],
                         record: Optional[Mapping[str, Any]],
                         source: str,
                         img_range: Optional[float] = None,
                         global_residual: Optional[bool] = None) -> dict:
    """The complete MSRN network options for weights: from the checkpoint's record, else inferred.

    With a record, it must agree with the weights' shapes and with any value given here (a given value that differs
    is refused, not silently preferred). Without one (older checkpoints, bare state dicts): the shapes give
    ``num_in_ch``, ``num_out_ch``, ``num_feat``, ``num_block`` and ``upscale``; ``img_range`` is the given value or
    255 (the plugin's and the official code's); ``rgb_mean`` is read from the ``sub_mean`` buffer
    (``-bias / img_range``); ``global_residual`` is False where MSRN cannot have it (upscale > 1, or different
    in/out channels) and must be given for x1 networks.

    Args:
        state_dict (Mapping[str, Tensor]): MSRN weights (``module.`` prefixes removed).
        record (Mapping | None): :func:`read_network_record`'s result.
        source (str): The file name, for messages.
        img_range (float | None): ``--img_range``. Default: None.
        global_residual (bool | None): ``--global_residual``. Default: None.

    Returns:
        dict: ``{'type': 'MSRN', num_in_ch, num_out_ch, num_feat, num_block, upscale, img_range, rgb_mean,
        global_residual}``.

    Raises:
        CheckpointError: Not MSRN, record and weights or record and given values disagree, or an x1 checkpoint
            without a record and without ``global_residual``.
    """
    shapes = msrn_config_from_state_dict(state_dict, source)
    given = {k: v for k, v in (('img_range', img_range), ('global_residual', global_residual)) if v is not None}
    if record is not None:
        if record.get('type') != 'MSRN':
            raise CheckpointError(f"{source}: its network record says type {record.get('type')!r}, but the weights "
                                  'are MSRN; the file was edited or mixed up: delete its '
                                  f'{RECORD_KEY!r} entry to infer the network from the weights.')
        opt = complete_network_options(record)
        wrong = [f'{k} {_format(opt.get(k))} (weights: {_format(shapes[k])})' for k in MSRN_SHAPE_KEYS
                 if opt.get(k) != shapes[k]]
        if wrong:
            raise CheckpointError(f'{source}: its network record does not match its weights: {", ".join(wrong)}; '
                                  f'the file was edited: delete its {RECORD_KEY!r} entry to infer the network '
                                  'from the weights.')
        for name, value in given.items():
            if not _same(value, opt[name]):
                raise CheckpointError(f'{source}: this checkpoint was trained with {name} {_format(opt[name])}, '
                                      f'but {name} {_format(value)} was given; drop --{name} (the checkpoint '
                                      'records it).')
        return opt
    opt = dict(shapes)
    opt['img_range'] = float(given.get('img_range', 255.))
    bias = state_dict.get('sub_mean.bias')
    if isinstance(bias, torch.Tensor) and bias.numel() == opt['num_in_ch']:
        opt['rgb_mean'] = [float(v) for v in (-bias.double() / opt['img_range']).tolist()]
        if 'img_range' not in given and bias.abs().max() <= 1 and bias.abs().max() > 0:
            logger.warning(f'{source}: the input mean shift ({_format(opt["rgb_mean"])} at img_range 255) looks '
                           'like a network trained with img_range 1; pass --img_range 1 if so.')
    else:
        opt['rgb_mean'] = [0.5] * opt['num_in_ch']
    can_have_residual = opt['upscale'] == 1 and opt['num_in_ch'] == opt['num_out_ch']
    if global_residual is None:
        if can_have_residual:
            raise CheckpointError(
                f'{source}: an x1 MSRN checkpoint without a network record: whether it was trained with '
                'global_residual is not in its weights; pass --global_residual true or --global_residual false '
                "(the plugin's denoising and dehazing options train with true).")
        global_residual = False
    elif global_residual and not can_have_residual:
        raise CheckpointError(f"{source}: global_residual true needs an x1 network with as many input as output "
                              f"channels, but this one is x{opt['upscale']}, {opt['num_in_ch']} -> "
                              f"{opt['num_out_ch']} channels; drop --global_residual.")
    opt['global_residual'] = bool(global_residual)
    return opt


def read_checkpoint(path: PathType, param_key: Optional[str] = None) -> Tuple[StateDict, Optional[dict]]:
    """Read a checkpoint's weights and network record, refusing pickled code and NaN/Inf weights.

    Args:
        path (str | PathLike): BasicSR checkpoint (``net_g_*.pth``) or bare state dict.
        param_key (str | None): See :func:`extract_state_dict`. Default: None.

    Returns:
        tuple: The state dict (``module.`` prefixes removed) and the recorded network options (None without a record).

    Raises:
        CheckpointError: If the file is unreadable, holds no weights or non-finite weights, or a damaged record.
    """
    source = os.fspath(path)
    checkpoint = safe_torch_load(source)
    state_dict = extract_state_dict(checkpoint, source, param_key)
    check_finite(state_dict, source)
    return state_dict, read_network_record(checkpoint, source)
