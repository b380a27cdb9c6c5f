"""MSRN for BasicSR.

``import msrn_plugin`` applies the BasicSR 1.4.2 compatibility layer (:mod:`msrn_plugin.compat`), then registers the
architectures, datasets and models in BasicSR's registries. With the plugin installed, the start-up hook
(``msrn_basicsr_hook``) does the same when ``basicsr`` is first imported; docs/basicsr_fixes.md.
"""
from msrn_plugin import compat

compat.apply()

from msrn_plugin import archs, data, models  # noqa: E402,F401  (registration)
from msrn_plugin.utils import moved  # noqa: E402

moved.install()  # the flat layout's module paths, for one release

__version__ = '0.1.0'
