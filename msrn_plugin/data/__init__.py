"""Every `*_dataset.py` module here is imported so that its classes register in BasicSR's registry."""
from os import path as osp

from msrn_plugin.utils.registry import import_modules

__all__ = import_modules(__name__, osp.dirname(osp.abspath(__file__)), '_dataset')
