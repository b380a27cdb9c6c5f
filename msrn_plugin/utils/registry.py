"""Import every module of a sub-package whose name ends with a suffix, so that its classes register themselves."""
import importlib
import os
from typing import List


def import_modules(package: str, folder: str, suffix: str) -> List[str]:
    """Import ``package.<name>`` for every ``<name><suffix>.py`` in ``folder`` (BasicSR's discovery convention).

    Args:
        package (str): Dotted package name, e.g. ``msrn_plugin.archs``.
        folder (str): The package's folder.
        suffix (str): File-name suffix without ``.py``, e.g. ``_arch``.

    Returns:
        list[str]: The imported module names, sorted.
    """
    names = sorted(f[:-3] for f in os.listdir(folder) if f.endswith(f'{suffix}.py'))
    for name in names:
        importlib.import_module(f'{package}.{name}')
    return names
