"""Start-up checks of option values BasicSR uses as they are: folder names, and the types and ranges of numbers."""
import math
import re
from typing import Any, Callable, List, Mapping, Optional, Tuple

from msrn_plugin.utils.options import find_values, yaml12_number

_PLAIN_NAME = re.compile(r'[^/\\\x00-\x1f]+')
_MAX_NAME = 200


def plain_name_problem(name: Any, key: str, where: str) -> Optional[str]:
    """Why ``name`` cannot be used as one folder name, or None.

    Args:
        name (Any): The value.
        key (str): The option key, for the message.
        where (str): The folder it goes under (e.g. ``experiments/``), for the message.

    Returns:
        str | None: The problem (with a suggested name), or None for a plain folder name.
    """
    if isinstance(name, str) and _PLAIN_NAME.fullmatch(name) and name.strip() not in ('', '.', '..') \
            and len(name.encode('utf-8', 'replace')) <= _MAX_NAME and not re.match(r'[A-Za-z]:', name):
        return None
    suggestion = re.sub(r'[^A-Za-z0-9_.-]+', '_', str(name)).strip('._') or 'MSRN_x4'
    return (f'{key}: {name!r} is not a plain folder name; it becomes a folder under {where}, so a path (/, \\, ..), '
            f'an absolute path or an empty name would write or rename folders elsewhere. Use letters, digits, _, - '
            f'and . only, e.g. {key.split(".")[-1]}: {suggestion[:_MAX_NAME]}.')


def check_names(opt: Mapping, is_train: bool) -> List[str]:
    """``name``, each dataset's ``name`` and ``val.suffix``: plain folder (or file-name) parts.

    Args:
        opt (Mapping): Options.
        is_train (bool): Training (``experiments/``) or testing (``results/``).

    Returns:
        list[str]: One problem per bad name.
    """
    root = 'experiments/' if is_train else 'results/'
    problems = []
    if opt.get('name') is not None:
        problem = plain_name_problem(opt['name'], 'name', root)
        if problem:
            problems.append(problem)
    for phase, dataset_opt in (opt.get('datasets') or {}).items():
        if not isinstance(dataset_opt, Mapping):
            continue
        if dataset_opt.get('name') is None:
            problems.append(f'datasets.{phase}.name: missing; BasicSR logs it and saves images under it (e.g. name: '
                            'Set5).')
            continue
        problem = plain_name_problem(dataset_opt['name'], f'datasets.{phase}.name', f'{root}<name>/visualization/')
        if problem:
            problems.append(problem)
    suffix = (opt.get('val') or {}).get('suffix') if isinstance(opt.get('val'), Mapping) else None
    if suffix not in (None, ''):
        problem = plain_name_problem(suffix, 'val.suffix', 'the image names of visualization/')
        if problem:
            problems.append(problem)
    return problems


# A rule: (dotted key, '*' = any key and '#' = any list index; kind; test; the range in words; an example).
# Kinds: 'int' (a Python int: DataLoader arguments), 'whole' (an int or a float with no fraction, as BasicSR's own
# option files write `!!float 5e3`), 'number', 'bool'.
_Rule = Tuple[str, str, Optional[Callable[[float], bool]], str, str]
_RULES_ANY: Tuple[_Rule, ...] = (
    ('manual_seed', 'int', lambda v: 0 <= v < 2**31, 'from 0 to 2**31 - 1 (numpy seeds are 32-bit)', '0'),
    ('datasets.*.use_hflip', 'bool', None, '', 'true'),
    ('datasets.*.use_rot', 'bool', None, '', 'true'),
    ('datasets.*.pin_memory', 'bool', None, '', 'true'),
    ('datasets.*.persistent_workers', 'bool', None, '', 'true'),
    ('val.save_img', 'bool', None, '', 'false'),
    ('val.metrics.*.crop_border', 'whole', lambda v: v >= 0, '>= 0', '4'),
    ('val.metrics.*.test_y_channel', 'bool', None, '', 'true'),
    ('path.strict_load_*', 'bool', None, '', 'true'),
)
_RULES_TRAIN: Tuple[_Rule, ...] = (
    ('datasets.train.batch_size_per_gpu', 'int', lambda v: v >= 1, '>= 1', '16'),
    ('datasets.train.num_worker_per_gpu', 'int', lambda v: v >= 0, '>= 0 (0: load in the main process)', '4'),
    ('datasets.train.dataset_enlarge_ratio', 'whole', lambda v: v >= 1, '>= 1', '1'),
    ('datasets.train.num_prefetch_queue', 'int', lambda v: v >= 1, '>= 1', '1'),
    ('train.total_iter', 'whole', lambda v: v >= 1, '>= 1', '1000000'),
    ('train.warmup_iter', 'whole', lambda v: v >= -1, '>= -1 (-1: no warm-up)', '-1'),
    ('train.ema_decay', 'number', lambda v: 0 <= v < 1, 'from 0 (no EMA) to below 1', '0.999'),
    ('train.optim_*.lr', 'number', lambda v: v >= 0, '>= 0', '2e-4'),
    ('train.optim_*.weight_decay', 'number', lambda v: v >= 0, '>= 0', '0'),
    ('train.optim_*.eps', 'number', lambda v: v >= 0, '>= 0', '1e-8'),
    ('train.optim_*.betas.#', 'number', lambda v: 0 <= v < 1, 'from 0 to below 1', '0.9'),
    ('train.scheduler.milestones.#', 'whole', lambda v: v >= 0, '>= 0', '200000'),
    ('train.scheduler.gamma', 'number', lambda v: v > 0, '> 0', '0.5'),
    ('train.scheduler.periods.#', 'whole', lambda v: v >= 1, '>= 1', '250000'),
    ('train.scheduler.restart_weights.#', 'number', lambda v: v >= 0, '>= 0', '1'),
    ('train.scheduler.eta_min', 'number', lambda v: v >= 0, '>= 0', '1e-7'),
    ('train.*_opt.loss_weight', 'number', lambda v: v >= 0, '>= 0', '1.0'),
    ('logger.print_freq', 'whole', lambda v: v >= 1, '>= 1', '100'),
    ('logger.save_checkpoint_freq', 'whole', lambda v: v >= 1, '>= 1', '5000'),
    ('logger.use_tb_logger', 'bool', None, '', 'true'),
    ('val.val_freq', 'whole', lambda v: v >= 1, '>= 1', '5000'),
)
_TEXT_RULES: Tuple[Tuple[str, Optional[Tuple[str, ...]], str], ...] = (
    ('path.pretrain_network_*', None, 'a file path'),
    ('path.resume_state', None, 'a file path'),
    ('path.param_key_*', None, 'a key such as params or params_ema (~ for a bare state dict)'),
    ('train.*_opt.reduction', ('none', 'mean', 'sum'), 'one of none, mean, sum'),
)
#: Values BasicSR reads as sections (``.get`` / ``.pop`` on them): anything else fails after folders were made.
_SECTIONS = ('datasets.*.io_backend', 'train.optim_*', 'train.scheduler', 'train.*_opt', 'val.metrics', 'val.metrics.*',
             'logger.wandb')
_LISTS = {'train.optim_*.betas': 2, 'train.scheduler.milestones': 0, 'train.scheduler.periods': 0,
          'train.scheduler.restart_weights': 0}


def _value_problem(key: str, value: Any, kind: str, test: Optional[Callable[[float], bool]], words: str,
                   example: str) -> Optional[str]:
    if kind == 'bool':
        return None if isinstance(value, bool) else f'{key}: {value!r} is not true or false; write e.g. {example}.'
    want = 'a whole number' if kind in ('int', 'whole') else 'a number'
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str) and yaml12_number(value) is not None:
            return f'{key}: {value!r} is text, not a number; write {value.strip()} without quotes.'
        return f'{key}: {value!r} is not a number; use {want} {words}, e.g. {example}.'
    if math.isnan(value) or math.isinf(value):
        return f'{key}: {value!r} is not a finite number; use {want} {words}, e.g. {example}.'
    if kind == 'int' and not isinstance(value, int):
        return f'{key}: {value!r} must be written as a whole number without a dot (BasicSR passes it on as an ' \
               f'int), e.g. {example}.'
    if kind == 'whole' and not float(value).is_integer():
        return f'{key}: {value!r} is not a whole number; use {want} {words}, e.g. {example}.'
    if test is not None and not test(value):
        return f'{key}: {value!r} is out of range; use {want} {words}, e.g. {example}.'
    return None


def check_sections(opt: Mapping) -> List[str]:
    """Values BasicSR uses as sections (``io_backend``, ``optim_g``, ``scheduler``, losses, metrics) must be ones.

    Args:
        opt (Mapping): Options.

    Returns:
        list[str]: One problem per value that is not a section.
    """
    problems = []
    for dotted in _SECTIONS:
        for key, value in find_values(opt, dotted):
            if value is not None and not isinstance(value, Mapping):
                problems.append(f'{key}: must be a section (key: value lines, e.g. type: ...), got the '
                                f'{type(value).__name__} {value!r}.')
    return problems


def check_values(opt: Mapping, is_train: bool) -> List[str]:
    """Types and ranges of the option values BasicSR 1.4.2 uses without checking them.

    Args:
        opt (Mapping): Options (numbers already read from text at :data:`msrn_plugin.utils.options.FLOAT_KEYS`).
        is_train (bool): Also check the training-only keys (``train``, ``logger``, the train dataset, ``val_freq``).

    Returns:
        list[str]: One problem per bad value, naming the key, the value and the range.
    """
    problems = []
    if is_train:
        for dotted, size in _LISTS.items():
            for key, value in find_values(opt, dotted):
                if value is not None and (not isinstance(value, list) or (size and len(value) != size)):
                    count = f'{size} numbers' if size else 'numbers'
                    problems.append(f'{key}: {value!r} is not a list of {count}; write it as [a, b].')
    for dotted, kind, test, words, example in _RULES_ANY + (_RULES_TRAIN if is_train else ()):
        for key, value in find_values(opt, dotted):
            if value is None:
                continue
            problem = _value_problem(key, value, kind, test, words, example)
            if problem:
                problems.append(problem)
    for dotted, choices, words in _TEXT_RULES:
        for key, value in find_values(opt, dotted):
            if value is not None and (not isinstance(value, str) or not value.strip()
                                      or (choices is not None and value not in choices)):
                problems.append(f'{key}: {value!r} is not {words}.')
    if is_train:
        train_set = (opt.get('datasets') or {}).get('train')
        if isinstance(train_set, Mapping):
            for key, example in (('batch_size_per_gpu', '16'), ('num_worker_per_gpu', '4')):
                if train_set.get(key) is None:
                    problems.append(f'datasets.train.{key}: missing; set it (e.g. {key}: {example}).')
    return problems


__all__ = ['check_names', 'check_sections', 'check_values', 'plain_name_problem']
