"""Start-up hook of msrn-basicsr, run by ``msrn_basicsr_hook.pth``: registers MSRN when ``basicsr`` is first imported.

At interpreter start-up it only puts :class:`BasicSRImportHook` on ``sys.meta_path`` (nothing else is imported).
Set ``MSRN_BASICSR_DISABLE_HOOK=1`` to turn it off; docs/basicsr_fixes.md explains it and how to uninstall.
"""
import os
import sys

#: Environment variable that turns the hook off (any value but '', '0', 'false', 'no').
DISABLE_ENV = 'MSRN_BASICSR_DISABLE_HOOK'
#: The basicsr release the plugin's fixes were written for.
BASICSR_VERSION = '1.4.2'
TORCHVISION_OLD = 'torchvision.transforms.functional_tensor'
TORCHVISION_NEW = 'torchvision.transforms._functional_tensor'
#: Whether the hook already warned that it skipped the torchvision alias (msrn_plugin.compat then does not repeat it).
alias_warning_given = False


def disabled() -> bool:
    """Whether :data:`DISABLE_ENV` turns the hook off."""
    return os.environ.get(DISABLE_ENV, '').strip().lower() not in ('', '0', 'false', 'no')


def basicsr_version_before_import(spec=None):
    """The version of the ``basicsr`` an import would load, read from its ``version.py`` without importing it.

    Args:
        spec (ModuleSpec | None): basicsr's spec. Default: the imported basicsr's version, else ``find_spec``'s.

    Returns:
        str | None: The version, or None when basicsr or its version file is not found.
    """
    import importlib.util
    import re
    if spec is None:
        if getattr(sys.modules.get('basicsr'), '__version__', None):
            return sys.modules['basicsr'].__version__
        spec = importlib.util.find_spec('basicsr')
    if spec is None or not spec.origin:
        return None
    try:
        with open(os.path.join(os.path.dirname(spec.origin), 'version.py'), encoding='utf-8') as f:
            match = re.search(r"^__version__ = '([^']+)'", f.read(), re.MULTILINE)
    except OSError:
        return None
    return match.group(1) if match else None


def alias_torchvision(basicsr_version):
    """Register ``torchvision.transforms._functional_tensor`` as ``torchvision.transforms.functional_tensor``.

    basicsr 1.4.2 imports the old name, which torchvision 0.17 renamed; nothing is done when it still exists.

    Args:
        basicsr_version (str | None): The basicsr that will import it.

    Returns:
        str | None: None when the old name imports (now or already), else why the alias was not made.
    """
    import importlib
    import importlib.util
    if TORCHVISION_OLD in sys.modules or importlib.util.find_spec(TORCHVISION_OLD) is not None:
        return None
    if basicsr_version != BASICSR_VERSION:
        return f'basicsr {basicsr_version} is installed; the fix was written for {BASICSR_VERSION}'
    if importlib.util.find_spec(TORCHVISION_NEW) is None:
        return f'{TORCHVISION_NEW} does not exist in this torchvision'
    new = importlib.import_module(TORCHVISION_NEW)
    if not hasattr(new, 'rgb_to_grayscale'):
        return f'{TORCHVISION_NEW}.rgb_to_grayscale does not exist'
    sys.modules[TORCHVISION_OLD] = new
    return None


class _LoaderProxy:
    """Wraps basicsr's loader for one ``exec_module``: the torchvision alias before, ``import msrn_plugin`` after."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self._loader  # the proxy leaves no trace on the module
        skipped = alias_torchvision(basicsr_version_before_import(module.__spec__))
        if skipped:
            import warnings
            global alias_warning_given
            alias_warning_given = True
            warnings.warn(f"msrn_plugin skipped the BasicSR fix 'torchvision_alias': {skipped}.", RuntimeWarning)
        self._loader.exec_module(module)
        if 'msrn_plugin' not in sys.modules:  # else msrn_plugin is being imported, and applies everything itself
            try:
                import msrn_plugin  # noqa: F401  (compatibility layer and registration)
            except Exception as err:
                raise ImportError(f'msrn-basicsr could not register MSRN in basicsr ({type(err).__name__}: {err}); '
                                  f'set {DISABLE_ENV}=1 to import basicsr without the plugin.') from err


class BasicSRImportHook:
    """``sys.meta_path`` finder that acts once, on the first import of ``basicsr``, then removes itself."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'basicsr':
            return None
        uninstall()
        import importlib.util
        spec = importlib.util.find_spec('basicsr')
        if spec is None or spec.loader is None or not hasattr(spec.loader, 'exec_module'):
            return spec
        spec.loader = _LoaderProxy(spec.loader)
        return spec


def install() -> None:
    """Put the hook first on ``sys.meta_path`` (unless disabled, already there, or basicsr already imported)."""
    if disabled() or 'basicsr' in sys.modules or any(isinstance(f, BasicSRImportHook) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, BasicSRImportHook())


def uninstall() -> None:
    """Remove the hook from ``sys.meta_path``."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, BasicSRImportHook)]
