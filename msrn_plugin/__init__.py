"""MSRN for BasicSR.

``import msrn_plugin`` first applies the BasicSR 1.4.2 compatibility layer (:mod:`msrn_plugin.compat`; it must run
before anything imports ``basicsr``), then imports the architectures, datasets and models so that they register in
BasicSR's ``ARCH_REGISTRY``, ``DATASET_REGISTRY`` and ``MODEL_REGISTRY``.
"""
from msrn_plugin import compat

compat.apply()

from msrn_plugin import archs, data, models  # noqa: E402,F401  (registration)

__version__ = '0.1.0'
