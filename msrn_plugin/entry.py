"""The one place that runs BasicSR's train/test pipelines for ``msrn_plugin/train.py`` and ``msrn_plugin/test.py``."""
import os
import sys
from typing import List, Optional

import msrn_plugin  # noqa: F401  (compatibility layer and registration)
from msrn_plugin import compat
from msrn_plugin.options import load_options


def _option_path(argv: List[str]) -> Optional[str]:
    for i, arg in enumerate(argv):
        if arg == '-opt' and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith('-opt='):
            return arg.split('=', 1)[1]
    return None


def run_pipeline(kind: str, argv: Optional[List[str]] = None, root_path: Optional[str] = None) -> None:
    """Run BasicSR's ``train_pipeline`` or ``test_pipeline`` with the plugin in place.

    BasicSR's parsers read ``sys.argv`` themselves, so ``sys.argv`` is set for the call and restored afterwards.
    The option file is read once with the safe loader first, so a malicious or broken file is refused before
    BasicSR sees it, and ``dist_params.backend`` (if any) selects the process-group backend.

    Args:
        kind (str): 'train' or 'test'.
        argv (list[str] | None): Arguments without the program name. Default: ``sys.argv[1:]``.
        root_path (str | None): Where ``experiments/``, ``tb_logger/`` and ``results/`` go. Default: the current
            working directory.
    """
    if kind not in ('train', 'test'):
        raise ValueError(f"kind must be 'train' or 'test', got {kind!r}")
    argv = compat.normalize_argv(list(sys.argv[1:] if argv is None else argv))
    opt_path = _option_path(argv)
    if opt_path is not None:
        opt = load_options(opt_path)
        compat.set_dist_backend((opt.get('dist_params') or {}).get('backend'))
    root_path = os.path.abspath(root_path or os.getcwd())
    old_argv = sys.argv
    sys.argv = [f'msrn_plugin/{kind}.py'] + argv
    try:
        if kind == 'train':
            from basicsr.train import train_pipeline
            train_pipeline(root_path)
        else:
            from basicsr.test import test_pipeline
            test_pipeline(root_path)
    finally:
        sys.argv = old_argv
