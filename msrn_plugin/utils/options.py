"""Safe reading of BasicSR option files and ``--force_yml`` overrides: plain data only, bounded aliases, UTF-8.

What is refused and why: docs/reliability.md ("Option files run no code", "Untrusted inputs").
"""
import codecs
import copy
import logging
import math
import re
import yaml
from collections import OrderedDict
from os import PathLike
from typing import Any, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

try:
    from yaml import CSafeLoader as _BaseSafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _BaseSafeLoader


logger = logging.getLogger('basicsr')

#: Most values an option file may expand to, counting every use of an alias (``*name``) as a copy of its anchor.
#: Option files hold a few hundred; a "billion laughs" file of 7 nested levels of 10 aliases expands to 10 million.
MAX_OPTION_VALUES = 10_000

#: Option keys that BasicSR passes to float arguments (dotted paths; ``*`` is one key, ``#`` a list index). YAML 1.1
#: reads ``1e-3`` (no dot) as text; these keys accept such text as the number it spells, with a note in the log.
FLOAT_KEYS = ('train.optim_*.lr', 'train.optim_*.weight_decay', 'train.optim_*.eps', 'train.optim_*.momentum',
              'train.optim_*.betas.#', 'train.scheduler.gamma', 'train.scheduler.eta_min',
              'train.scheduler.restart_weights.#', 'train.ema_decay', 'train.*_opt.loss_weight',
              'train.*_opt.perceptual_weight', 'train.*_opt.style_weight')

#: Numbers as YAML 1.2's core schema reads them (PyYAML reads YAML 1.1: ``1e-3`` and ``-1e4`` stay text there).
_YAML12_INT = re.compile(r'[-+]?[0-9]+')
_YAML12_FLOAT = re.compile(r'[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?')
_YAML12_SPECIAL = {'.inf': math.inf, '+.inf': math.inf, '-.inf': -math.inf, '.nan': math.nan}


_NOTED: set = set()


class OptionFileError(ValueError):
    """An option file cannot be used; the message names the file (and line) and the fix."""


class _ExpansionError(yaml.YAMLError):
    """Aliases that expand past :data:`MAX_OPTION_VALUES` values, or refer to themselves."""


def yaml12_number(text: str) -> Optional[Union[int, float]]:
    """The number ``text`` spells in YAML 1.2's core schema (``1e-3``, ``-1``, ``+2.5E4``, ``.inf``), or None.

    Args:
        text (str): A plain scalar.

    Returns:
        int | float | None: The number, or None when ``text`` is not one.
    """
    text = text.strip()
    if _YAML12_INT.fullmatch(text):
        return int(text)
    if _YAML12_FLOAT.fullmatch(text):
        return float(text)
    return _YAML12_SPECIAL.get(text.lower())


def _expanded_size(node: yaml.Node, sizes: dict, active: set) -> int:
    """Values ``node`` stands for once every alias is expanded (memoised per node; a cycle is infinite)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in active:
        raise _ExpansionError('an alias refers to the value that contains it (a recursive structure)')
    active.add(key)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    else:
        children = []
    for child in children:
        size += _expanded_size(child, sizes, active)
        if size > MAX_OPTION_VALUES:
            break
    active.discard(key)
    sizes[key] = size
    return size


class SafeOrderedLoader(_BaseSafeLoader):
    """PyYAML's safe loader that builds ``OrderedDict`` mappings, as BasicSR's ``ordered_yaml()`` does.

    It also refuses documents whose aliases expand past :data:`MAX_OPTION_VALUES` values (checked on the node graph,
    before anything is constructed), and reads text at :data:`FLOAT_KEYS` that spells a number as that number
    (``notes`` lists each one).
    """

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        try:
            size = _expanded_size(node, {}, set())
        except RecursionError:
            raise _ExpansionError('values nested too deeply') from None
        if size > MAX_OPTION_VALUES:
            raise _ExpansionError(f'its aliases (*name) expand to more than {MAX_OPTION_VALUES:,} values (a "billion '
                                  'laughs" file, which would exhaust memory when BasicSR logs the options)')
        data = self.construct_document(node)
        data, self.notes = coerce_float_strings(data)
        return data


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
    return _parse_yaml(stream, source)[0]


def _parse_yaml(stream: Any, source: str) -> Tuple[Any, List[str]]:
    """:func:`parse_yaml`, also returning the loader's notes (numbers read from text)."""
    try:
        loader = SafeOrderedLoader(stream)
        try:
            return loader.get_single_data(), loader.notes
        finally:
            loader.dispose()
    except _ExpansionError as err:
        raise OptionFileError(f'{source}: refused to load this option file: {err}; write the values out instead of '
                              'nesting aliases.') from None
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
        OptionFileError: If the file is missing, unreadable, not UTF-8, not YAML, not a mapping, holds a Python tag,
            or its aliases expand past :data:`MAX_OPTION_VALUES` values.
    """
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except OSError as err:
        raise OptionFileError(f'{path}: cannot read option file ({err.strerror}); check the -opt path.') from None
    opt, notes = _parse_yaml(decode_option_text(raw, str(path)), source=str(path))
    if not isinstance(opt, dict):
        raise OptionFileError(f'{path}: an option file must be a YAML mapping (key: value lines), '
                              f'got {type(opt).__name__}.')
    for note in notes:
        if (str(path), note) not in _NOTED:  # the same file is read by several start-up steps: say it once
            _NOTED.add((str(path), note))
            logger.warning(f'{path}: {note}')
    return opt


_BOMS = ((codecs.BOM_UTF32_LE, 'UTF-32'), (codecs.BOM_UTF32_BE, 'UTF-32'), (codecs.BOM_UTF16_LE, 'UTF-16'),
         (codecs.BOM_UTF16_BE, 'UTF-16'))


def decode_option_text(raw: bytes, source: str) -> str:
    """Decode an option file as UTF-8 (BasicSR reads it so), refusing other encodings by name.

    Args:
        raw (bytes): The file's bytes.
        source (str): The file, for messages.

    Returns:
        str: The text (a UTF-8 byte-order mark is kept; YAML skips it).

    Raises:
        OptionFileError: For UTF-16/UTF-32 (with a byte-order mark, or NUL bytes without one) and for bytes that are
            not UTF-8 (with the line, the byte, and what it would be in Windows-1252).
    """
    fix = 'BasicSR reads option files as UTF-8: save it as UTF-8 (in most editors: Save As, Encoding: UTF-8).'
    for bom, name in _BOMS:
        if raw.startswith(bom):
            raise OptionFileError(f'{source}: the file is {name} text (it starts with a {name} byte-order mark); '
                                  f'{fix}')
    if b'\x00' in raw:
        raise OptionFileError(f'{source}: the file holds NUL bytes (UTF-16 text without a byte-order mark, or not '
                              f'text at all); {fix}')
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b'\n') + 1
        byte = raw[err.start]
        try:
            guess = f', which is {bytes([byte]).decode("cp1252")!r} in Windows-1252 (cp1252)'
        except UnicodeDecodeError:
            guess = ''
        raise OptionFileError(f'{source}:{line}: not UTF-8 text (byte 0x{byte:02x}{guess}); the file is in another '
                              f'encoding. {fix}') from None


def find_values(opt: Any, pattern: str) -> Iterator[Tuple[str, Any]]:
    """``(dotted key, value)`` for every value of ``opt`` at a dotted key ``pattern``: ``*`` in a part matches any
    characters of a key, ``#`` any list index (e.g. ``train.optim_*.betas.#``).

    Args:
        opt (Any): Options.
        pattern (str): The dotted key pattern.

    Yields:
        tuple[str, Any]: The dotted key found and its value.
    """
    return _find(opt, pattern.split('.'), '')


def _find(node: Any, parts: List[str], path: str) -> Iterator[Tuple[str, Any]]:
    if not parts:
        yield path, node
        return
    part, rest = parts[0], parts[1:]
    if part == '#':
        if isinstance(node, list):
            for i, value in enumerate(node):
                yield from _find(value, rest, f'{path}.{i}')
        return
    if not isinstance(node, Mapping):
        return
    pattern = re.compile(re.escape(part).replace(r'\*', '.*'))
    for key, value in node.items():
        if isinstance(key, str) and pattern.fullmatch(key) and (value is not None or not rest):
            yield from _find(value, rest, f'{path}.{key}' if path else key)


def coerce_float_strings(opt: Any) -> Tuple[Any, List[str]]:
    """Read text at :data:`FLOAT_KEYS` that spells a number (YAML 1.2: ``1e-3``) as that number.

    Args:
        opt (Any): Options (not modified).

    Returns:
        tuple[Any, list[str]]: ``opt`` itself when nothing changes, else a deep copy with the numbers; and one note
        per value read this way (``train.optim_g.lr: read the text '1e-3' as the number 0.001 ...``).
    """
    if not isinstance(opt, Mapping):
        return opt, []
    found = []
    for pattern in FLOAT_KEYS:
        for dotted, value in find_values(opt, pattern):
            number = yaml12_number(value) if isinstance(value, str) else None
            if number is not None:
                found.append((dotted, value, float(number)))
    if not found:
        return opt, []
    out = copy.deepcopy(opt)
    notes = []
    for dotted, text, number in found:
        node = out
        keys = dotted.split('.')
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(keys[-1]) if isinstance(node, list) else keys[-1]] = number
        notes.append(f'{dotted}: read the text {text!r} as the number {number!r} (PyYAML reads quoted values, and '
                     f'1e-3 without a dot, as text); write {number!r} or !!float {text} to say so.')
    return out, notes


_OVERRIDE_KEY = re.compile(r'[A-Za-z0-9_.\-]+(:[A-Za-z0-9_.\-]+)*')


def parse_override_value(value: str) -> Any:
    """Convert a ``--force_yml`` value like BasicSR's ``_postprocess_yml_value``, without ``eval``.

    ``~``/``none`` become None, ``true``/``false`` booleans, ``!!float 1e-4`` and numbers as YAML 1.2 writes them
    (``-1``, ``1e-4``, ``2.5E+3``, ``.inf``) numbers, ``[...]`` a list parsed with the safe YAML loader; anything else
    stays a string.

    Args:
        value (str): The text after ``=``.

    Returns:
        The converted value.

    Raises:
        OptionFileError: If a ``[...]`` value is not a plain YAML list, or ``!!float`` is not followed by a number.
    """
    if value == '~' or value.lower() == 'none':
        return None
    if value.lower() in ('true', 'false'):
        return value.lower() == 'true'
    if value.startswith('!!float'):
        number = yaml12_number(value[len('!!float'):])
        if number is None:
            raise OptionFileError(f'--force_yml value {value!r}: not a number after !!float; write e.g. '
                                  '!!float 1e-4.')
        return float(number)
    number = yaml12_number(value)
    if number is not None:
        return number
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
