"""Small helpers shared across the package: the path type and the examples listed in error messages."""
from os import PathLike
from typing import Any, Iterable, Union

#: A file or folder path, as the plugin's functions accept it: ``str`` or ``os.PathLike`` (e.g. ``pathlib.Path``).
PathType = Union[str, PathLike]


def format_examples(items: Iterable[Any], limit: int = 3) -> str:
    """The first ``limit`` items, comma-separated, then how many more: ``'a, b, c and 4 more'``.

    Args:
        items (Iterable[Any]): What to list (strings, or anything ``str()`` accepts).
        limit (int): How many to show. Default: 3.

    Returns:
        str: The listing (empty for no items).
    """
    items = list(items)
    shown = ', '.join(str(v) for v in items[:limit])
    return shown + (f' and {len(items) - limit} more' if len(items) > limit else '')
