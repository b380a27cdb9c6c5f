"""Start-up checks of options and data (:func:`validate_options`), before BasicSR creates a folder or runs anything.

The checks and the messages they give: docs/reliability.md ("Start-up validation", "Untrusted inputs").
"""
import difflib
import inspect
import logging
import os
import torch
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from msrn_plugin.utils.checkpoint import (CheckpointError, checkpoint_upscale, msrn_config_from_state_dict,
                                          nonfinite_message, read_network_record, record_differences, safe_torch_load,
                                          strip_module_prefix, training_state_iters)
from msrn_plugin.utils.image_io import ImageReadError, image_size, is_image_file
from msrn_plugin.utils.misc import format_examples as _examples
from msrn_plugin.utils.option_values import check_names, check_sections, check_values
from msrn_plugin.utils.options import coerce_float_strings

logger = logging.getLogger('basicsr')

Size = Tuple[int, int]  # (height, width)


class OptionValidationError(ValueError):
    """Options or data that cannot work. ``problems`` holds one message per problem (key or file, and the fix).

    Args:
        problems (Sequence[str]): The problems found.
        source (str): The option file. Default: '<options>'.
    """

    def __init__(self, problems: Sequence[str], source: str = '<options>') -> None:
        self.problems = list(problems)
        self.source = source
        count = f'{len(self.problems)} problem' + ('s' if len(self.problems) > 1 else '')
        super().__init__(f'{source}: {count} found before starting; nothing was run or written:\n' +
                         '\n'.join(f'  - {p}' for p in self.problems))


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f' (did you mean {close[0]}?)' if close else ''


def _registry_problem(registry, name: Any, key: str) -> Optional[str]:
    if name is None:
        return f'{key}: missing; set it to one of: {_examples(sorted(registry.keys()), 12)}.'
    if name not in registry:
        return (f'{key}: {name!r} is not registered{_suggest(str(name), list(registry.keys()))}; known: '
                f'{_examples(sorted(registry.keys()), 12)}.')
    return None


def _check_structure(opt: Mapping, is_train: bool) -> List[str]:
    from basicsr.utils.registry import DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

    problems = []
    required = ['name', 'model_type', 'datasets', 'network_g', 'path'] + (['train', 'logger'] if is_train else ['val'])
    for key in required:
        if opt.get(key) is None:
            problems.append(f'{key}: missing; see options/{"train" if is_train else "test"}_MSRN_x4.yml for an '
                            'example.')
    for key in ('datasets', 'network_g', 'path', 'train', 'logger', 'val'):
        if opt.get(key) is not None and not isinstance(opt[key], Mapping):
            problems.append(f'{key}: must be a section (key: value lines), got {type(opt[key]).__name__}.')
    if problems:
        return problems
    problem = _registry_problem(MODEL_REGISTRY, opt['model_type'], 'model_type')
    if problem:
        problems.append(problem)
    datasets = opt['datasets']
    if not datasets:
        problems.append('datasets: empty; add at least one dataset.')
    for phase, dataset_opt in datasets.items():
        if not isinstance(dataset_opt, Mapping):
            problems.append(f'datasets.{phase}: must be a section, got {type(dataset_opt).__name__}.')
            continue
        problem = _registry_problem(DATASET_REGISTRY, dataset_opt.get('type'), f'datasets.{phase}.type')
        if problem:
            problems.append(problem)
        if is_train and phase != 'train' and phase.split('_')[0] != 'val':
            problems.append(f'datasets.{phase}: BasicSR trains with datasets named train and val (or val_1, '
                            f'val_2, ...); rename {phase}.')
    if is_train:
        if 'train' not in datasets:
            problems.append('datasets.train: missing; training needs a train dataset.')
        if opt['train'].get('total_iter') is None:
            problems.append('train.total_iter: missing; set the number of iterations.')
        for key in ('print_freq', 'save_checkpoint_freq'):
            if opt['logger'].get(key) is None:
                problems.append(f'logger.{key}: missing; set it (e.g. {key}: 100).')
        problems += _check_optimizers(opt)
        for key, loss_opt in opt['train'].items():
            if key.endswith('_opt') and isinstance(loss_opt, Mapping):
                problem = _registry_problem(LOSS_REGISTRY, loss_opt.get('type'), f'train.{key}.type')
                if problem:
                    problems.append(problem)
        if any(phase.split('_')[0] == 'val' for phase in datasets) and (opt.get('val') or {}).get('val_freq') is None:
            problems.append('val.val_freq: missing while datasets has a val dataset; set val.val_freq (e.g. 5000) '
                            'or remove the val dataset.')
    val_opt = opt.get('val') or {}
    if not is_train and val_opt.get('save_img') and 'suffix' not in val_opt:
        problems.append('val.suffix: missing (BasicSR needs it to save images); add `suffix: ~`.')
    for name, metric_opt in (val_opt.get('metrics') or {}).items():
        problem = _registry_problem(METRIC_REGISTRY, (metric_opt or {}).get('type'), f'val.metrics.{name}.type')
        if problem:
            problems.append(problem)
    return problems


def _check_optimizers(opt: Mapping) -> List[str]:
    """Optimizer and scheduler types that BasicSR 1.4.2's ``BaseModel`` can build (when the model keeps them)."""
    from basicsr.models.base_model import BaseModel
    from basicsr.utils.registry import MODEL_REGISTRY

    if opt['model_type'] not in MODEL_REGISTRY:
        return []
    model_cls = MODEL_REGISTRY.get(opt['model_type'])
    problems = []
    if model_cls.get_optimizer is BaseModel.get_optimizer:
        for key, optim_opt in opt['train'].items():
            if key.startswith('optim_') and isinstance(optim_opt, Mapping) and optim_opt.get('type') != 'Adam':
                problems.append(f'train.{key}.type: {optim_opt.get("type")!r} is not supported by BasicSR 1.4.2 '
                                '(only Adam); set type: Adam.')
    scheduler = opt['train'].get('scheduler')
    known = ('MultiStepLR', 'MultiStepRestartLR', 'CosineAnnealingRestartLR')
    if (model_cls.setup_schedulers is BaseModel.setup_schedulers and isinstance(scheduler, Mapping)
            and scheduler.get('type') not in known):
        problems.append(f'train.scheduler.type: {scheduler.get("type")!r} is not supported by BasicSR 1.4.2; use one '
                        f'of {", ".join(known)}.')
    return problems


def _check_environment(opt: Mapping) -> List[str]:
    problems = []
    num_gpu = opt.get('num_gpu', 'auto')
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if num_gpu != 'auto':
        if not isinstance(num_gpu, int) or isinstance(num_gpu, bool) or num_gpu < 0:
            problems.append(f'num_gpu: {num_gpu!r} is not a number of GPUs; use auto, 0 or a positive integer.')
        elif num_gpu > available:
            problems.append(f'num_gpu: {num_gpu} but {available} CUDA GPU(s) are visible; set num_gpu: auto (or 0 '
                            'for the CPU).')
    for phase, dataset_opt in (opt.get('datasets') or {}).items():
        if isinstance(dataset_opt, Mapping) and dataset_opt.get('prefetch_mode') == 'cuda':
            if not available:
                problems.append(f'datasets.{phase}.prefetch_mode: cuda needs a GPU; set prefetch_mode: ~.')
            elif not dataset_opt.get('pin_memory'):
                problems.append(f'datasets.{phase}.prefetch_mode: cuda needs pin_memory: true in the same section.')
    return problems


def _check_network(opt: Mapping, net_key: str) -> Tuple[List[str], Optional[torch.nn.Module], Dict[str, Any]]:
    """Check ``opt[net_key]`` against the architecture's signature and build it (on the CPU).

    Returns:
        tuple: Problems, the network (None if it cannot be built), and the effective arguments (with defaults).
    """
    from basicsr.utils.registry import ARCH_REGISTRY

    net_opt = opt[net_key]
    if not isinstance(net_opt, Mapping):
        return [f'{net_key}: must be a section with type and arguments.'], None, {}
    problem = _registry_problem(ARCH_REGISTRY, net_opt.get('type'), f'{net_key}.type')
    if problem:
        return [problem], None, {}
    arch = ARCH_REGISTRY.get(net_opt['type'])
    args = {k: v for k, v in net_opt.items() if k != 'type'}
    params = inspect.signature(arch).parameters
    effective = {name: p.default for name, p in params.items() if p.default is not inspect.Parameter.empty}
    effective.update(args)
    problems = []
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        names = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
        for key in args:
            if key not in names:
                problems.append(f'{net_key}.{key}: {net_opt["type"]} has no such argument{_suggest(key, names)}; '
                                f'its arguments are {", ".join(names)}.')
    for name, p in params.items():
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            if name not in args:
                problems.append(f'{net_key}.{name}: missing; {net_opt["type"]} needs it.')
    if problems:
        return problems, None, effective
    try:
        net = arch(**args)
    except Exception as err:  # any constructor error is a bad option value; report it with the key
        return [f'{net_key}: {net_opt["type"]} cannot be built from these arguments: {err}'], None, effective
    return [], net, effective


def _check_scale(opt: Mapping, net_args: Mapping) -> List[str]:
    scale = opt.get('scale')
    if scale is None:
        hint = f' {net_args["upscale"]}' if isinstance(net_args.get('upscale'), int) else ''
        return [f'scale: missing; set scale:{hint or " N"} (the network_g.upscale factor; 1 for restoration).']
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        return [f'scale: {scale!r} is not a positive integer; write e.g. scale: 4.']
    if 'upscale' in net_args and net_args['upscale'] != scale:
        set_where = '' if 'upscale' in opt['network_g'] else ' (not set: the architecture default)'
        return [f'scale is {scale} but network_g.upscale is {net_args["upscale"]}{set_where}; set network_g.upscale: '
                f'{scale} (or scale: {net_args["upscale"]}) so that the data and the network agree.']
    return []


def _check_lmdb(path: str, key: str, tool: Optional[str] = None) -> Tuple[List[str], Dict[str, Tuple[int, ...]]]:
    """An LMDB dataroot: ``.lmdb`` name, then :func:`msrn_plugin.data.lmdb_check.check_lmdb` (``data.mdb``, a
    well-formed ``meta_info.txt``, and exactly its keys in the database); ``tool`` re-creates it (the dataset's
    ``lmdb_tool``)."""
    import lmdb

    from msrn_plugin.data.lmdb_check import LmdbIntegrityError, check_lmdb, read_meta_info

    if not path.endswith('.lmdb'):
        return [f'{key}: {path} must be a folder ending in .lmdb for io_backend lmdb (BasicSR requires it); use the '
                '.lmdb folder, or set io_backend.type: disk for an image folder.'], {}
    try:
        return [], dict(check_lmdb(path, tool=tool))
    except LmdbIntegrityError as err:
        if 'already open' not in str(err):
            return [f'{key}: {err}'], {}
    except lmdb.Error:  # py-lmdb's "already open in this process", if raised as is
        pass
    # This process holds the database open (an earlier run in the same process): it opened fine, so only its
    # meta_info.txt is checked here.
    try:
        return [], dict(read_meta_info(path, tool))
    except LmdbIntegrityError as err:
        return [f'{key}: {err}'], {}


def _list_folder(path: str, key: str) -> Tuple[List[str], List[str]]:
    """Problems and the sorted file names BasicSR's ``scandir`` would pair (non-hidden files)."""
    try:
        names = sorted(e.name for e in os.scandir(path) if not e.name.startswith('.') and e.is_file())
    except OSError as err:
        return [f'{key}: cannot read folder {path} ({err.strerror}); check its permissions.'], []
    if not names:
        return [f'{key}: {path} holds no images; check the path or prepare the data first.'], []
    others = [n for n in names if not is_image_file(n)]
    if others:
        return [f'{key}: {path} holds files that are not images ({_examples(others)}); BasicSR reads every file '
                'in a dataroot, so move them out.'], []
    return [], names


def _check_dataroot(dataset_opt: Mapping, root_key: str, key: str, paired: bool) -> Tuple[List[str], Any]:
    """Check one dataroot. Returns problems and what the pair check needs (LMDB shapes or folder file names).

    Folder contents are only checked for ``PairedImageDataset`` and its subclasses (BasicSR pairs every file of the
    folder); other datasets list their folders their own way (recursively, filtered) and get existence checks only.
    """
    path = dataset_opt.get(root_key)
    if not isinstance(path, (str, os.PathLike)):
        return [f'{key}: missing; set it to the image folder (or .lmdb).'], None
    path = os.path.expanduser(os.fspath(path))
    backend = (dataset_opt.get('io_backend') or {}).get('type')
    if not os.path.exists(path):
        return [f'{key}: {path} does not exist (relative paths start at {os.getcwd()}); fix the path or prepare the '
                'data first (scripts/prepare_div2k.py, scripts/prepare_benchmark.py).'], None
    if not os.path.isdir(path):
        return [f'{key}: {path} is a file, not a folder; point it to the image folder (or .lmdb folder).'], None
    if not os.access(path, os.R_OK | os.X_OK):
        return [f'{key}: cannot read folder {path} (permission denied); fix its permissions.'], None
    if backend == 'lmdb':
        return _check_lmdb(path, key, getattr(_dataset_class(dataset_opt.get('type')), 'lmdb_tool', None))
    if dataset_opt.get('meta_info_file') or not paired:
        return [], None
    return _list_folder(path, key)


def _dataset_class(dataset_type: Any) -> Optional[type]:
    """The registered dataset class, or None for an unknown type (reported elsewhere)."""
    from basicsr.utils.registry import DATASET_REGISTRY

    if not isinstance(dataset_type, str) or dataset_type not in DATASET_REGISTRY:
        return None
    return DATASET_REGISTRY.get(dataset_type)


def _is_paired(dataset_type: Any) -> bool:
    """Whether the dataset type is BasicSR's ``PairedImageDataset`` or a subclass (same pairing and cropping)."""
    from basicsr.data.paired_image_dataset import PairedImageDataset
    from basicsr.utils.registry import DATASET_REGISTRY

    if dataset_type not in DATASET_REGISTRY:
        return False
    cls = DATASET_REGISTRY.get(dataset_type)
    return isinstance(cls, type) and issubclass(cls, PairedImageDataset)


def _sample(items: Sequence[Any], count: int) -> List[Any]:
    if len(items) <= count:
        return list(items)
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]


def _pair_sizes(dataset_opt: Mapping, lq_info: Any, gt_info: Any, prefix: str,
                max_samples: int) -> Tuple[List[str], List[Tuple[str, Size, Size]]]:
    """Pair LQ and GT as ``PairedImageDataset`` does; return problems and ``(GT name, LQ size, GT size)``."""
    from basicsr.data.data_util import paired_paths_from_folder

    lq_root, gt_root = (os.path.expanduser(os.fspath(dataset_opt[k])) for k in ('dataroot_lq', 'dataroot_gt'))
    if isinstance(gt_info, dict):  # LMDB: meta_info.txt has every shape
        only_gt, only_lq = sorted(set(gt_info) - set(lq_info)), sorted(set(lq_info) - set(gt_info))
        if only_gt or only_lq:
            return [f'{prefix}.dataroot_lq / dataroot_gt: the two meta_info.txt files list different keys (only in '
                    f'GT: {_examples(only_gt) or "none"}; only in LQ: {_examples(only_lq) or "none"}); make both '
                    'LMDBs from the same sub-images.'], []
        return [], [(os.path.join(gt_root, k), lq_info[k][:2], gt_info[k][:2]) for k in sorted(gt_info)]
    if not isinstance(gt_info, list) or not isinstance(lq_info, list):
        return [], []  # meta_info_file mode: BasicSR pairs from that file; no folder listing here
    tmpl = dataset_opt.get('filename_tmpl', '{}')
    try:
        paths = paired_paths_from_folder([lq_root, gt_root], ['lq', 'gt'], tmpl)
    except AssertionError as err:
        return [f'{prefix}.dataroot_lq / dataroot_gt: the folders do not pair up: {err} Each GT image needs an LQ '
                f'image named filename_tmpl ({tmpl!r}) applied to its name, with the same extension.'], []
    problems, pairs = [], []
    for pair in _sample(paths, max_samples):
        try:
            pairs.append((pair['gt_path'], image_size(pair['lq_path']), image_size(pair['gt_path'])))
        except ImageReadError as err:
            problems.append(f'{prefix}: {err}')
    return problems, pairs


def _check_pairs(phase: str, dataset_opt: Mapping, scale: int, pairs: Sequence[Tuple[str, Size, Size]],
                 sampled: bool) -> List[str]:
    prefix = f'datasets.{phase}'
    bad = []
    for gt_path, (h_lq, w_lq), (h_gt, w_gt) in pairs:
        if phase == 'train':
            wrong = (h_gt, w_gt) != (h_lq * scale, w_lq * scale)
        else:  # validation and test crop the GT to LQ x scale, so a GT that is not mod-cropped is accepted
            wrong = (h_gt // scale, w_gt // scale) != (h_lq, w_lq)
        if wrong:
            bad.append(f'{os.path.basename(gt_path)}: GT {h_gt}x{w_gt}, LQ {h_lq}x{w_lq}')
    if not bad:
        return []
    where = f'{len(bad)} of {len(pairs)} {"sampled " if sampled else ""}pairs'
    return [f'{prefix}: LQ/GT sizes do not match scale {scale} in {where} ({_examples(bad)}); the GT must be '
            f'{scale}x the LQ: make the LQ from the mod-cropped GT at this scale (scripts/prepare_div2k.py, '
            'scripts/prepare_benchmark.py) or fix scale.']


def _check_gt_size_divisible(dataset_opt: Mapping, scale: int, paired: bool) -> List[str]:
    key = 'datasets.train.gt_size'
    gt_size = dataset_opt.get('gt_size')
    if gt_size is None:
        return [f'{key}: missing; set the GT patch size (e.g. gt_size: {48 * scale}).'] if paired else []
    if not isinstance(gt_size, int) or isinstance(gt_size, bool) or gt_size < scale:
        return [f'{key}: {gt_size!r} is not a patch size; use a positive multiple of the scale ({scale}).']
    if gt_size % scale:
        lower, upper = gt_size - gt_size % scale, gt_size - gt_size % scale + scale
        return [f'{key}: {gt_size} is not divisible by scale {scale} (LQ patches would be {gt_size / scale:g} '
                f'pixels); use {lower} or {upper}.']
    return []


def _check_gt_size_fits(dataset_opt: Mapping, scale: int, gt_sizes: Sequence[Tuple[str, Size]],
                        sampled: bool) -> List[str]:
    key = 'datasets.train.gt_size'
    gt_size = dataset_opt.get('gt_size')
    if not isinstance(gt_size, int) or isinstance(gt_size, bool) or gt_size < scale or gt_size % scale:
        return []  # reported by _check_gt_size_divisible
    if gt_sizes:
        name, (h, w) = min(gt_sizes, key=lambda item: min(item[1]))
        if gt_size > min(h, w):
            which = 'sampled ' if sampled else ''
            return [f'{key}: {gt_size} is larger than the smallest {which}GT image ({os.path.basename(name)}: '
                    f'{h}x{w}); use gt_size <= {min(h, w) - min(h, w) % scale} or make larger sub-images '
                    '(scripts/prepare_div2k.py --crop-size).']
    return []


def _check_datasets(opt: Mapping, is_train: bool, scale: Optional[int], max_samples: int) -> List[str]:
    problems = []
    for phase, dataset_opt in opt['datasets'].items():
        if not isinstance(dataset_opt, Mapping):
            continue
        prefix = f'datasets.{phase}'
        backend = (dataset_opt.get('io_backend') or {}).get('type')
        if backend not in ('disk', 'lmdb'):
            problems.append(f'{prefix}.io_backend.type: {backend!r}; use disk (image folders) or lmdb.')
            continue
        if dataset_opt.get('meta_info_file') and backend != 'lmdb':
            if not os.path.isfile(os.path.expanduser(os.fspath(dataset_opt['meta_info_file']))):
                problems.append(f'{prefix}.meta_info_file: {dataset_opt["meta_info_file"]} does not exist; fix the '
                                'path or remove the key to pair the folders by file name.')
        paired = _is_paired(dataset_opt.get('type'))
        roots = ['dataroot_gt', 'dataroot_lq'] if paired else [
            k for k in ('dataroot_gt', 'dataroot_lq') if dataset_opt.get(k) is not None]
        info, ok = {}, True
        for root_key in roots:
            root_problems, info[root_key] = _check_dataroot(dataset_opt, root_key, f'{prefix}.{root_key}', paired)
            problems += root_problems
            ok = ok and not root_problems
        if is_train and phase == 'train' and scale is not None:
            problems += _check_gt_size_divisible(dataset_opt, scale, paired)
        dataset_check = getattr(_dataset_class(dataset_opt.get('type')), 'check_dataroots', None)
        if ok and dataset_check is not None:  # a dataset that pairs its files its own way checks them itself
            problems += dataset_check(dict(dataset_opt, scale=dataset_opt.get('scale', scale)), prefix,
                                      is_train=is_train and phase == 'train',
                                      max_samples=max_samples)
        if not ok or scale is None or not paired:
            continue
        pair_problems, pairs = _pair_sizes(dataset_opt, info['dataroot_lq'], info['dataroot_gt'], prefix, max_samples)
        sampled = not isinstance(info['dataroot_gt'], dict)
        problems += pair_problems
        if pair_problems:
            continue
        pair_problems = _check_pairs(phase, dataset_opt, scale, pairs, sampled)
        problems += pair_problems
        if pair_problems:
            continue
        gt_sizes = [(name, gt) for name, _, gt in pairs]
        if is_train and phase == 'train':
            problems += _check_gt_size_fits(dataset_opt, scale, gt_sizes, sampled)
    return problems


def _check_pretrained(opt: Mapping, net_key: str, net: Optional[torch.nn.Module], upscale: Any) -> List[str]:
    suffix = net_key[len('network_'):]
    key = f'path.pretrain_{net_key}'
    path = opt['path'].get(f'pretrain_{net_key}')
    if not path or not isinstance(path, (str, os.PathLike)):
        return []  # a value that is not a path is reported by check_values
    path = os.path.expanduser(os.fspath(path))
    try:
        ckpt = safe_torch_load(path)
    except CheckpointError as err:
        return [f'{key}: {err}']
    if not isinstance(ckpt, Mapping):
        return [f'{key}: {path} holds a {type(ckpt).__name__}, not a dict of weights; save '
                "{'params': model.state_dict()} instead."]
    try:
        record = read_network_record(ckpt, path)
    except CheckpointError as err:
        return [f'{key}: {err}']
    param_key = opt['path'].get(f'param_key_{suffix}', 'params')
    if param_key is not None:
        if param_key not in ckpt and 'params' in ckpt:
            param_key = 'params'
        if param_key not in ckpt:
            bare = all(isinstance(v, torch.Tensor) for v in ckpt.values())
            hint = f'; it looks like a bare state dict: set path.param_key_{suffix}: ~' if bare else (
                f'; set path.param_key_{suffix} to one of {_examples(sorted(map(str, ckpt)), 6)}')
            return [f'{key}: {path} has no {param_key!r} entry{hint}, or convert it with '
                    'scripts/convert_official_msrn.py.']
        ckpt = ckpt[param_key]
    bad = nonfinite_message(path, ckpt) if isinstance(ckpt, Mapping) else None
    if bad:
        return [f'{key}: {bad}']
    if net is None or not isinstance(ckpt, Mapping):
        return []
    loaded = strip_module_prefix(ckpt)
    current = net.state_dict()
    missing = sorted(set(current) - set(loaded))
    unexpected = sorted(set(loaded) - set(current))
    shapes = [f'{k}: checkpoint {tuple(loaded[k].shape)}, network {tuple(current[k].shape)}'
              for k in sorted(set(current) & set(loaded))
              if isinstance(loaded[k], torch.Tensor) and loaded[k].shape != current[k].shape]
    if not (missing or unexpected or shapes):
        # the mean shifts' rgb_mean is loaded from the weights; the rest must be the record's
        differ = record_differences(record, opt[net_key], ignore=('rgb_mean', )) if record else []
        return [f'{key}: {path} was trained with other {net_key} settings ({"; ".join(differ)}); set them in '
                f'{net_key} as the checkpoint records them.'] if differ else []
    strict = opt['path'].get(f'strict_load_{suffix}', True)
    if not strict and not (missing and len(missing) == len(current)):
        logger.warning(f'{key}: {path} does not fully match {net_key}; strict_load_{suffix} is false, so only the '
                       'matching tensors are loaded.')
        return []
    arch = opt[net_key].get('type')
    details = '; '.join(part for part in (
        f'{len(missing)} missing keys (e.g. {_examples(missing)})' if missing else '',
        f'{len(unexpected)} unexpected keys (e.g. {_examples(unexpected)})' if unexpected else '',
        f'{len(shapes)} shape mismatches (e.g. {_examples(shapes, 2)})' if shapes else '') if part)
    if len(set(current) & set(loaded)) < len(current) // 2:
        return [f'{key}: {path} holds weights of another architecture, not {arch} ({details}); use a {arch} '
                'checkpoint (official MSRN files: scripts/convert_official_msrn.py).']
    ckpt_scale = checkpoint_upscale(loaded) if upscale is not None else None
    if ckpt_scale is not None and ckpt_scale != upscale:
        return [f'{key}: {path} is a x{ckpt_scale} checkpoint but network_g.upscale is {upscale} ({details}); use a '
                f'x{upscale} checkpoint, or set scale and network_g.upscale to {ckpt_scale}.']
    return [f'{key}: {path} does not match {net_key} ({details}); set {net_key} to the settings the checkpoint was '
            f'trained with, or use strict_load_{suffix}: false to load only the matching tensors.']


def _resume_checkpoint(opt: Mapping, root_path: str) -> Optional[str]:
    """The ``net_g`` a resumed run will load: that of ``path.resume_state``, else of the newest state with one."""
    models = os.path.join(root_path, 'experiments', opt['name'], 'models')
    states = os.path.join(root_path, 'experiments', opt['name'], 'training_states')
    resume_state = opt['path'].get('resume_state')
    if resume_state:
        names = [os.path.basename(os.fspath(resume_state))]
    else:
        names = os.listdir(states) if os.path.isdir(states) else []
    for it in training_state_iters(names):
        path = os.path.join(models, f'net_g_{it}.pth')
        if os.path.isfile(path):
            return path
    return None


def _check_resume_network(opt: Mapping, net: torch.nn.Module, net_args: Mapping, root_path: str) -> List[str]:
    """A resumed run loads the experiment's own ``net_g``: it must have the shapes ``network_g`` asks for."""
    path = _resume_checkpoint(opt, root_path)
    if path is None or not opt['path'].get('strict_load_g', True):
        return []
    try:
        ckpt = safe_torch_load(path)
    except CheckpointError:
        return []  # unreadable: compat's resume falls back to the previous state and says so
    param_key = opt['path'].get('param_key_g', 'params')
    weights = ckpt.get(param_key) if isinstance(ckpt, Mapping) and param_key else ckpt
    if not isinstance(weights, Mapping):
        return []
    weights = strip_module_prefix(weights)
    current = net.state_dict()
    if set(weights) == set(current) and all(
            getattr(weights[k], 'shape', None) == current[k].shape for k in current):
        return []
    trained: Dict[str, Any] = {}
    if opt['network_g'].get('type') == 'MSRN':
        try:
            trained = msrn_config_from_state_dict(weights, path)
        except CheckpointError:
            trained = {}
    diffs = [(k, v, net_args[k]) for k, v in trained.items() if k in net_args and k != 'type' and v != net_args[k]]
    if diffs:
        was = ' and '.join(f'{k} {v}' for k, v, _ in diffs)
        now = ' and '.join(f'{k} {v}' if len(diffs) > 1 else f'{v}' for k, _, v in diffs)
        fix = ', '.join(f'network_g.{k}: {v}' for k, v, _ in diffs)
    else:
        was, now, fix = 'other network settings', 'these', 'the network_g it was trained with'
    return [f'--auto_resume / path.resume_state: this experiment was trained with {was}, the options say {now} '
            f'({path} does not fit network_g); set {fix} to resume, or give the run a new name to start over.']


def validate_options(opt: Mapping,
                     is_train: bool = True,
                     source: str = '<options>',
                     resume: bool = False,
                     max_samples: int = 8,
                     root_path: Optional[str] = None) -> Mapping:
    """Check options and data before any work starts; raise once with every problem found.

    Args:
        opt (Mapping): Options as read by :func:`msrn_plugin.utils.options.load_options` (not modified).
        is_train (bool): Training (all checks) or testing (no ``train``/``logger``/``gt_size`` checks). Default: True.
        source (str): The option file, named in the error. Default: '<options>'.
        resume (bool): The run resumes from a training state, so pretrained paths are replaced by the experiment's
            own checkpoints and not checked. Default: False.
        max_samples (int): LQ/GT pairs of a folder dataset whose sizes are read (evenly spaced; LMDBs are checked
            in full from ``meta_info.txt``). Default: 8.
        root_path (str | None): Where ``experiments/`` is; when resuming, the experiment's newest ``net_g`` must fit
            ``network_g``. None: not checked. Default: None.

    Returns:
        Mapping: The checked options: ``opt`` itself, or a copy where text at number keys (``lr: '1e-3'``) is the
        number it spells (each noted in the log).

    Raises:
        OptionValidationError: Listing every problem, each naming the key or file and the fix.
    """
    import msrn_plugin  # noqa: F401  (compatibility layer and registration)

    opt, notes = coerce_float_strings(opt)
    for note in notes:
        logger.warning(f'{source}: {note}')
    problems = _check_structure(opt, is_train)
    problems += check_names(opt, is_train) + check_sections(opt)
    if problems:
        raise OptionValidationError(problems, source)
    problems += check_values(opt, is_train)
    problems += _check_environment(opt)
    from msrn_plugin.models.msrn_model import check_training_switches
    problems += check_training_switches(opt, is_train)  # use_amp, use_compile, ... (docs/training_speed.md)
    net_problems, net, net_args = _check_network(opt, 'network_g')
    problems += net_problems
    problems += _check_scale(opt, net_args)
    scale = opt.get('scale')
    valid_scale = isinstance(scale, int) and not isinstance(scale, bool) and scale >= 1
    problems += _check_datasets(opt, is_train, scale if valid_scale else None, max_samples)
    if not resume:
        problems += _check_pretrained(opt, 'network_g', net, net_args.get('upscale'))
        for net_key in (k for k in opt if k.startswith('network_') and k != 'network_g'):
            if opt['path'].get(f'pretrain_{net_key}'):
                extra_problems, extra_net, extra_args = _check_network(opt, net_key)
                problems += extra_problems or _check_pretrained(opt, net_key, extra_net, None)
    elif is_train and root_path is not None and net is not None:
        problems += _check_resume_network(opt, net, net_args, root_path)
    if problems:
        raise OptionValidationError(problems, source)
    return opt


__all__ = ['OptionValidationError', 'checkpoint_upscale', 'validate_options']
