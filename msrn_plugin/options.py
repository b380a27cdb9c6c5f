"""Safe loading of BasicSR option files.

BasicSR 1.4.2 parses option files with PyYAML's full ``Loader``, which constructs arbitrary Python objects: a file
containing ``!!python/object/apply:os.system [...]`` runs that command when it is parsed. :class:`SafeOrderedLoader`
keeps what option files need (ordered mappings, ``!!float``, ``~``, lists, anchors) and refuses every Python tag.
``msrn_plugin.compat`` installs it into BasicSR's parser; scripts that read option files call :func:`load_options`.
"""
from collections import OrderedDict
from os import PathLike
from typing import Any, Union

import yaml

try:
    from yaml import CSafeLoader as _BaseSafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _BaseSafeLoader


class OptionFileError(ValueError):
    """An option file cannot be used; the message names the file (and line) and the fix."""


class SafeOrderedLoader(_BaseSafeLoader):
    """PyYAML's safe loader that builds ``OrderedDict`` mappings, as BasicSR's ``ordered_yaml()`` does."""


def _construct_ordered_mapping(loader: SafeOrderedLoader, node: yaml.MappingNode) -> OrderedDict:
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
        raise OptionFileError(f'{source}{line}: refused to load this option file: {err.problem}. Option files may '
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
