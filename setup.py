"""Packaging glue: metadata lives in setup.cfg; this file only ships ``msrn_basicsr_hook.pth`` into site-packages.

The ``.pth`` start-up hook (docs/basicsr_fixes.md) must sit at the top of site-packages, where no setup.cfg key can
put it: ``build_py`` copies it beside the modules (``pip install .``, wheels) and ``editable_wheel`` adds it to the
editable wheel (``pip install -e .``). ``pip uninstall msrn-basicsr`` removes it with the rest.
"""
from setuptools import setup
from setuptools.command.build_py import build_py

import os

PTH = 'msrn_basicsr_hook.pth'
HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithPth(build_py):
    """``build_py`` that also puts the start-up hook's ``.pth`` at the top of the build folder."""

    def run(self):
        super().run()
        self.copy_file(os.path.join(HERE, PTH), os.path.join(self.build_lib, PTH), preserve_mode=False)

    def get_outputs(self, include_bytecode=1):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, PTH)]


cmdclass = {'build_py': BuildPyWithPth}
try:
    from setuptools.command.editable_wheel import editable_wheel
except ImportError:  # setuptools < 64: no PEP 660 editable installs
    editable_wheel = None
if editable_wheel is not None:
    if not hasattr(editable_wheel, '_install_namespaces'):  # the method overridden below (setuptools 84.2.1 has it)
        raise RuntimeError('This setuptools cannot add msrn_basicsr_hook.pth to an editable install: install the '
                           'plugin without -e, or with setuptools 84.2.1 (pip install setuptools==84.2.1).')

    class EditableWheelWithPth(editable_wheel):
        """``editable_wheel`` that adds the ``.pth`` to the wheel's top level, beside setuptools' own."""

        def _install_namespaces(self, installation_dir, pth_prefix):
            super()._install_namespaces(installation_dir, pth_prefix)
            self.copy_file(os.path.join(HERE, PTH), os.path.join(installation_dir, PTH), preserve_mode=False)

    cmdclass['editable_wheel'] = EditableWheelWithPth

setup(cmdclass=cmdclass)
