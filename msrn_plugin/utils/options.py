"""Safe loading of BasicSR option files.

BasicSR 1.4.2 parses option files with PyYAML's full ``Loader``, which constructs arbitrary Python objects: a file
containing ``!!python/object/apply:os.system [...]`` runs that command when it is parsed. :class:`SafeOrderedLoader`
keeps what option files need (ordered mappings, ``!!float``, ``~``, lists, anchors) and refuses every Python tag.
``msrn_plugin.compat`` installs it into BasicSR's parser; scripts that read option files call :func:`load_options`.

BasicSR's ``--force_yml key:sub=value`` overrides are also code paths: ``parse_options`` builds
``opt["key"]["sub"]=value`` as a string and ``exec``-utes it, and ``eval``-uates values that start with ``[``.
:func:`check_force_yml` refuses keys that could break out of that string, :func:`parse_override_value` replaces the
``eval`` (compat fix 2), and :func:`apply_force_yml` applies the overrides to a copy for the start-up checks.
"""
import copy
import re
import yaml
from collections import OrderedDict
from os import PathLike
from typing import Any, List, Mapping, Sequence, Union

try:
    from yaml import CSafeLoader as _BaseSafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _BaseSafeLoader


class OptionFileError(ValueError):
    """An option file cannot be used; the message names the file (and line) and the fix."""


class SafeOrderedLoader(_BaseSafeLoader):
    """PyYAML's safe loader that builds ``OrderedDict`` mappings, as BasicSR's ``ordered_yaml()`` does."""


def _construct_ordered_mapping(loader: SafeOrderedLoader, node: yaml.MappingNode) -> OrderedDict:
    seen = {}
    for key_node, _ in node.value:  # a key written twice silently drops the first value in PyYAML: refuse it
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != 'tag:yaml.org,2002:merge':
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f'duplicate key {key_node.value!r} (first on line {seen[key_node.value] + 1})',
                    key_node.start_mark)
            seen[key_node.value] = key_node.start_mark.line
    loader.flatten_mapping(node)
    return OrderedDict(loader.construct_pairs(node))


SafeOrderedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_ordered_mapping)


def parse_yaml(stream: Any, source: str = '<string>') -> Any:
    """Parse YAML text or a stream with :class:`SafeOrderedLoader`.

    Args:
        stream (str | IO): YAML text or an open text stream.
        source (str): Name used in error messages (usually the file path). Default: '<string>'.

    Returns:
        The parsed document (an ``OrderedDict`` for option files).

    Raises:
        OptionFileError: On a Python (or any unknown) tag, or a YAML syntax error, naming ``source`` and the line.
    """
    try:
        return yaml.load(stream, Loader=SafeOrderedLoader)
    except yaml.constructor.ConstructorError as err:
        mark = err.problem_mark
        line = f':{mark.line + 1}' if mark is not None else ''
        if str(err.problem).startswith('duplicate key'):
            raise OptionFileError(f'{source}{line}: {err.problem}; keep only one of them.') from None
        tag = re.search(r"tag '?([^' ]+)'?", str(err.problem))
        tag = tag.group(1).replace('tag:yaml.org,2002:', '!!') if tag else str(err.problem)
        why = 'Python tags construct objects and can run code' if 'python/' in tag else 'unknown tag'
        raise OptionFileError(f'{source}{line}: refused to load this option file: {tag} ({why}). Option files may '
                              'only hold plain data (mappings, lists, strings, numbers, !!float, ~); remove the tag.'
                              ) from None
    except yaml.YAMLError as err:
        raise OptionFileError(f'{source}: not valid YAML: {err}') from None


def load_options(path: Union[str, PathLike]) -> OrderedDict:
    """Read a BasicSR option file safely.

    Args:
        path (str | PathLike): The YAML option file.

    Returns:
        OrderedDict: The options, in file order.

    Raises:
        OptionFileError: If the file is missing, unreadable, not YAML, not a mapping, or holds a Python tag.
    """
    try:
        with open(path, encoding='utf-8') as f:
            opt = parse_yaml(f, source=str(path))
    except OSError as err:
        raise OptionFileError(f'{path}: cannot read option file ({err.strerror}); check the -opt path.') from None
    if not isinstance(opt, dict):
        raise OptionFileError(f'{path}: an option file must be a YAML mapping (key: value lines), '
                              f'got {type(opt).__name__}.')
    return opt


_OVERRIDE_KEY = re.compile(r'[A-Za-z0-9_.\-]+(:[A-Za-z0-9_.\-]+)*')


def parse_override_value(value: str) -> Any:
    """Convert a ``--force_yml`` value like BasicSR's ``_postprocess_yml_value``, without ``eval``.

    ``~``/``none`` become None, ``true``/``false`` booleans, ``!!float 1e-4`` and digit strings numbers, ``[...]``
    a list parsed with the safe YAML loader; anything else stays a string.

    Args:
        value (str): The text after ``=``.

    Returns:
        The converted value.

    Raises:
        OptionFileError: If a ``[...]`` value is not a plain YAML list.
    """
    if value == '~' or value.lower() == 'none':
        return None
    if value.lower() in ('true', 'false'):
        return value.lower() == 'true'
    if value.startswith('!!float'):
        return float(value.replace('!!float', ''))
    if value.isdigit():
        return int(value)
    if value.replace('.', '', 1).isdigit() and value.count('.') < 2:
        return float(value)
    if value.startswith('['):
        parsed = parse_yaml(value, source=f'--force_yml value {value!r}')
        if not isinstance(parsed, list):
            raise OptionFileError(f'--force_yml value {value!r}: not a list; write it as [a, b, c].')
        return parsed
    return value


def check_force_yml(entries: Sequence[str]) -> List[tuple]:
    """Check ``--force_yml`` entries before BasicSR turns them into code.

    Args:
        entries (Sequence[str]): Entries like ``train:ema_decay=0.999``.

    Returns:
        list[tuple[list[str], str]]: ``(key path, raw value)`` per entry.

    Raises:
        OptionFileError: If an entry has no single ``=`` or its key holds anything but letters, digits, ``_.-``
            separated by ``:``.
    """
    parsed = []
    for entry in entries:
        if entry.count('=') != 1:
            raise OptionFileError(f'--force_yml {entry!r}: expected exactly one "=", as in train:ema_decay=0.999.')
        keys, value = (part.strip() for part in entry.split('='))
        if not _OVERRIDE_KEY.fullmatch(keys):
            raise OptionFileError(f'--force_yml {entry!r}: refused key {keys!r}; keys may only hold letters, digits, '
                                  '"_", "." and "-", separated by ":" (e.g. train:optim_g:lr=0.0002).')
        parsed.append((keys.split(':'), value))
    return parsed


def apply_force_yml(opt: Mapping, entries: Sequence[str], source: str = '<options>') -> OrderedDict:
    """Apply ``--force_yml`` overrides to a copy of ``opt``, as BasicSR's ``parse_options`` does, but safely.

    Args:
        opt (Mapping): Options from :func:`load_options` (not modified).
        entries (Sequence[str]): Entries like ``train:ema_decay=0.999``.
        source (str): The option file, for messages. Default: '<options>'.

    Returns:
        OrderedDict: A deep copy of ``opt`` with the overrides.

    Raises:
        OptionFileError: On a refused entry (see :func:`check_force_yml`) or a parent key missing from the file
            (BasicSR cannot create new sections).
    """
    out = copy.deepcopy(opt)
    for keys, value in check_force_yml(entries):
        node = out
        for i, key in enumerate(keys[:-1]):
            if not isinstance(node, dict) or key not in node:
                raise OptionFileError(f'--force_yml {":".join(keys)}: {source} has no section '
                                      f'{".".join(keys[:i + 1])}; add it to the option file first.')
            node = node[key]
        if not isinstance(node, dict):
            raise OptionFileError(f'--force_yml {":".join(keys)}: {".".join(keys[:-1])} in {source} is not a '
                                  'section.')
        node[keys[-1]] = parse_override_value(value)
    return out
