"""How the compatibility layer replaces BasicSR attributes: all or nothing per fix, on BasicSR 1.4.2 only."""
import importlib
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import msrn_basicsr_hook

#: The BasicSR release every fix was written for (and checked against).
BASICSR_VERSION = msrn_basicsr_hook.BASICSR_VERSION

#: Fix name -> 'applied' or 'skipped: <reason>', for every fix that was tried in this process.
STATUS: Dict[str, str] = {}

_ORIGINALS: Dict[Tuple[str, str], Any] = {}
_warned = set()


class CompatWarning(RuntimeWarning):
    """A BasicSR fix was skipped: another basicsr version, or the attribute it replaces is gone."""


@dataclass(frozen=True)
class Fix:
    """One fix: the BasicSR attributes it replaces, all of which must exist before any is replaced.

    Args:
        name (str): Short name, used in warnings and :data:`STATUS` (docs/basicsr_fixes.md lists them).
        patches (tuple): ``(owner, attribute, replacement)`` triples; ``owner`` is a module name or
            ``'module:Class'``.
        on_apply (callable | None): Called once after the patches are in place (for fixes that register a hook
            rather than replace an attribute). Default: None.
        requires (tuple[str]): Fixes that must have been applied first. Default: ().
    """
    name: str
    patches: Tuple[Tuple[str, str, Any], ...] = ()
    on_apply: Optional[Callable[[], None]] = field(default=None, compare=False)
    requires: Tuple[str, ...] = ()


def resolve_owner(owner: str) -> Any:
    """The module or class named by ``owner`` (``'basicsr.train'`` or ``'basicsr.models.base_model:BaseModel'``).

    Raises:
        ImportError, AttributeError: If it does not exist.
    """
    module_name, _, class_name = owner.partition(':')
    obj = importlib.import_module(module_name)
    return getattr(obj, class_name) if class_name else obj


def missing_target(fix: Fix) -> Optional[str]:
    """The first attribute ``fix`` replaces that does not exist (``'owner.attribute'``), else None."""
    for owner, attr, _ in fix.patches:
        try:
            obj = resolve_owner(owner)
        except (ImportError, AttributeError):
            return owner.replace(':', '.')
        if not hasattr(obj, attr):
            return f"{owner.replace(':', '.')}.{attr}"
    return None


def warn_once(fix_names: Sequence[str], reason: str) -> None:
    """Record in :data:`STATUS` that fixes were skipped, and warn once per fix and process naming them.

    Args:
        fix_names (Sequence[str]): The fixes skipped.
        reason (str): Why.
    """
    for name in fix_names:
        STATUS[name] = f'skipped: {reason}'
    new = [name for name in fix_names if name not in _warned]
    if not new:
        return
    _warned.update(new)
    what = 'fix ' + repr(new[0]) if len(new) == 1 else 'fixes ' + ', '.join(repr(n) for n in new)
    warnings.warn(f'msrn_plugin skipped the BasicSR {what}: {reason}. BasicSR keeps its own behaviour there '
                  '(docs/basicsr_fixes.md).', CompatWarning, stacklevel=3)


def original(owner: str, attr: str) -> Any:
    """What ``owner.attr`` was before the layer replaced it (upstream's function).

    Raises:
        KeyError: If no fix replaced it.
    """
    return _ORIGINALS[(owner, attr)]


def installed_version() -> Optional[str]:
    """``basicsr.__version__`` (imports basicsr)."""
    import basicsr
    return getattr(basicsr, '__version__', None)


def apply_fixes(fixes: Sequence[Fix]) -> None:
    """Apply each fix whose targets all exist, on BasicSR 1.4.2; warn once naming each fix skipped.

    A fix is applied whole or not at all: its targets are checked before the first one is replaced. Applying a fix
    again does nothing.

    Args:
        fixes (Sequence[Fix]): The fixes, in order.
    """
    version = installed_version()
    if version != BASICSR_VERSION:
        skipped = [fix.name for fix in fixes if STATUS.get(fix.name) != 'applied']
        if skipped:
            warn_once(skipped, f'basicsr {version} is installed; the fixes were written for {BASICSR_VERSION}')
        return
    for fix in fixes:
        if STATUS.get(fix.name) == 'applied':
            continue
        needed = [name for name in fix.requires if STATUS.get(name) != 'applied']
        if needed:
            warn_once([fix.name], f"it needs the fix '{needed[0]}', which is not applied")
            continue
        missing = missing_target(fix)
        if missing:
            warn_once([fix.name], f'{missing} does not exist')
            continue
        for owner, attr, replacement in fix.patches:
            obj = resolve_owner(owner)
            _ORIGINALS.setdefault((owner, attr), getattr(obj, attr))
            setattr(obj, attr, replacement)
        if fix.on_apply is not None:
            fix.on_apply()
        STATUS[fix.name] = 'applied'
