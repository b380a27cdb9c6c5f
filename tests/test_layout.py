"""The package layout: old module paths still import (with a warning), the README shows every folder."""
import importlib
import os
import pytest
import re
import sys

import msrn_plugin
from msrn_plugin.inference import MSRNer
from msrn_plugin.utils.moved import MOVED_MODULES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def forget(name: str) -> None:
    """Drop a module from sys.modules and from its parent package, so the next import finds it again."""
    sys.modules.pop(name, None)
    parent, _, child = name.rpartition('.')
    if parent in sys.modules and child in vars(sys.modules[parent]):
        delattr(sys.modules[parent], child)


@pytest.mark.parametrize('old, new', sorted(MOVED_MODULES.items()))
def test_old_module_path_is_the_new_module_with_a_warning(old, new):
    assert not os.path.exists(os.path.join(REPO, *old.split('.')) + '.py')  # the finder only answers moved paths
    forget(old)
    with pytest.warns(DeprecationWarning, match=re.escape(f'{old} moved to {new}; the old path goes in the next')):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert sys.modules[old] is module


def test_from_import_of_an_old_path_gets_the_new_functions():
    forget('msrn_plugin.imageio')
    with pytest.warns(DeprecationWarning):
        from msrn_plugin.imageio import read_image
    from msrn_plugin.utils.image_io import read_image as new_read_image
    assert read_image is new_read_image


def test_unknown_module_is_still_an_import_error():
    with pytest.raises(ModuleNotFoundError, match="No module named 'msrn_plugin.imagio'"):
        importlib.import_module('msrn_plugin.imagio')


def test_upsampler_is_the_renamed_msrner_with_a_warning():
    import msrn_plugin.inference as inference
    with pytest.warns(DeprecationWarning, match='msrn_plugin.inference.Upsampler was renamed MSRNer'):
        assert inference.Upsampler is MSRNer


def test_readme_layout_names_every_subpackage():
    with open(os.path.join(REPO, 'README.md'), encoding='utf-8') as f:
        readme = f.read()
    layout = readme[readme.index('## Project layout'):]
    layout = layout[:layout.index('\n## ', 1)]
    package = os.path.dirname(msrn_plugin.__file__)
    folders = sorted(d for d in os.listdir(package) if os.path.isfile(os.path.join(package, d, '__init__.py')))
    assert folders == ['archs', 'bench', 'compat', 'data', 'demos', 'inference', 'models', 'prep', 'utils', 'zoo']
    assert [d for d in folders if f'{d}/' not in layout] == []
