"""Module paths of release 0.1.0's flat layout, kept importable for one release with a deprecation warning."""
import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Optional, Sequence

#: Old module path -> the module that holds its code now.
MOVED_MODULES = {
    'msrn_plugin.atomic': 'msrn_plugin.utils.atomic',
    'msrn_plugin.batch': 'msrn_plugin.inference.batch',
    'msrn_plugin.checkpoint': 'msrn_plugin.utils.checkpoint',
    'msrn_plugin.convert': 'msrn_plugin.utils.convert',
    'msrn_plugin.demo': 'msrn_plugin.demos.sr_demo',
    'msrn_plugin.dist_bench': 'msrn_plugin.bench.dist_bench',
    'msrn_plugin.ensemble': 'msrn_plugin.inference.ensemble',
    'msrn_plugin.entry': 'msrn_plugin.utils.pipeline',
    'msrn_plugin.export': 'msrn_plugin.inference.export',
    'msrn_plugin.imageio': 'msrn_plugin.utils.image_io',
    'msrn_plugin.options': 'msrn_plugin.utils.options',
    'msrn_plugin.photos': 'msrn_plugin.utils.photos',
    'msrn_plugin.restoration_demo': 'msrn_plugin.demos.restoration_demo',
    'msrn_plugin.validation': 'msrn_plugin.utils.validation',
    'msrn_plugin.prep.loader_benchmark': 'msrn_plugin.bench.loader_bench',
    'msrn_plugin.zoo.inference_bench': 'msrn_plugin.bench.inference_bench',
}


class _AliasLoader(importlib.abc.Loader):
    """Loads an old path as the module object of its new path (one module, two names)."""

    def __init__(self, new_name: str):
        self.new_name = new_name

    def create_module(self, spec) -> ModuleType:
        return importlib.import_module(self.new_name)

    def exec_module(self, module: ModuleType) -> None:
        pass  # already executed under its new name


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old paths of :data:`MOVED_MODULES` (only those), warning once per path."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None, target: Optional[ModuleType] = None):
        new_name = MOVED_MODULES.get(fullname)
        if new_name is None:
            return None
        warnings.warn(f'{fullname} moved to {new_name}; the old path goes in the next release.', DeprecationWarning,
                      stacklevel=2)  # warnings skips importlib's frames
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new_name))


def install() -> None:
    """Put :class:`MovedModuleFinder` last on ``sys.meta_path`` (once): it only answers paths no file holds."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
