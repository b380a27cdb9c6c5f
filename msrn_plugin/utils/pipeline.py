"""The one place that runs BasicSR's train/test pipelines for ``msrn_plugin/train.py`` and ``msrn_plugin/test.py``."""
import argparse
import os
import sys
from typing import List, Optional

import msrn_plugin  # noqa: F401  (compatibility layer and registration)
from msrn_plugin import compat
from msrn_plugin.compat import plugin_fixes
from msrn_plugin.utils.checkpoint import CheckpointError
from msrn_plugin.utils.options import OptionFileError, apply_force_yml, load_options
from msrn_plugin.utils.validation import OptionValidationError, validate_options

#: Errors that mean "fix the input": the command lines print the message alone and exit with this status.
INPUT_ERRORS = (OptionFileError, OptionValidationError, CheckpointError)
INPUT_ERROR_EXIT_CODE = 2


def _parse_args(argv: List[str]) -> argparse.Namespace:
    """The flags of BasicSR's ``parse_options`` that matter before it runs (it parses ``sys.argv`` again)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt', type=str, default=None)
    parser.add_argument('--auto_resume', action='store_true')
    parser.add_argument('--force_yml', nargs='+', default=None)
    parser.add_argument('--launcher', default='none')
    return parser.parse_known_args(argv)[0]


def _has_states(root_path: str, opt: dict) -> bool:
    state_dir = os.path.join(root_path, 'experiments', str(opt.get('name')), 'training_states')
    return os.path.isdir(state_dir) and any(f.endswith('.state') for f in os.listdir(state_dir))


def prepare_run(kind: str, argv: List[str], root_path: str) -> Optional[dict]:
    """Read, override and check the options of a run, without running anything or writing a file.

    Args:
        kind (str): 'train' or 'test'.
        argv (list[str]): Arguments without the program name (after :func:`compat.normalize_argv`).
        root_path (str): Where ``experiments/`` goes (to tell whether ``--auto_resume`` will resume).

    Returns:
        dict | None: The checked options (``--force_yml`` applied), or None without ``-opt`` (BasicSR then
        reports the missing flag).

    Raises:
        OptionFileError: If the option file is unsafe, unreadable, a ``--force_yml`` entry is refused, or
            ``dist_params.backend`` is not a backend (checked with a ``--launcher``).
        OptionValidationError: If the options or the data cannot work (see :mod:`msrn_plugin.utils.validation`).
    """
    args = _parse_args(argv)
    if args.opt is None:
        return None
    opt = load_options(args.opt)
    if args.force_yml:
        opt = apply_force_yml(opt, args.force_yml, source=args.opt)
    if args.launcher != 'none' and isinstance(opt.get('dist_params'), dict):
        compat.check_dist_backend(opt['dist_params'].get('backend'), source=args.opt)
    resume = bool((opt.get('path') or {}).get('resume_state')) or (args.auto_resume and _has_states(root_path, opt))
    opt = validate_options(opt, is_train=kind == 'train', source=args.opt, resume=resume, root_path=root_path)
    return opt


def run_pipeline(kind: str, argv: Optional[List[str]] = None, root_path: Optional[str] = None) -> None:
    """Run BasicSR's ``train_pipeline`` or ``test_pipeline`` with the plugin in place.

    BasicSR's parsers read ``sys.argv`` themselves, so ``sys.argv`` is set for the call and restored afterwards.
    Before BasicSR sees anything, the option file is read with the safe loader, ``--force_yml`` entries are checked
    (BasicSR ``exec``-utes them), and the options and data are validated (:func:`prepare_run`): a malicious, broken
    or inconsistent setup is refused before any folder is created or any iteration runs (BasicSR's fixed
    ``parse_options`` then skips the same checks, which it runs for BasicSR's own scripts). ``dist_params.backend``
    (if any) selects the process-group backend.

    Args:
        kind (str): 'train' or 'test'.
        argv (list[str] | None): Arguments without the program name. Default: ``sys.argv[1:]``.
        root_path (str | None): Where ``experiments/``, ``tb_logger/`` and ``results/`` go. Default: the current
            working directory.

    Raises:
        OptionFileError, OptionValidationError, CheckpointError: On bad input (see :data:`INPUT_ERRORS`).
    """
    if kind not in ('train', 'test'):
        raise ValueError(f"kind must be 'train' or 'test', got {kind!r}")
    argv = compat.normalize_argv(list(sys.argv[1:] if argv is None else argv))
    root_path = os.path.abspath(root_path or os.getcwd())
    prepare_run(kind, argv, root_path)
    old_argv = sys.argv
    sys.argv = [f'msrn_plugin/{kind}.py'] + argv
    try:
        with plugin_fixes.prechecked(kind, argv):
            if kind == 'train':
                from basicsr.train import train_pipeline
                train_pipeline(root_path)
            else:
                from basicsr.test import test_pipeline
                test_pipeline(root_path)
    finally:
        sys.argv = old_argv


def cli_main(kind: str, argv: Optional[List[str]] = None) -> int:
    """Command-line wrapper of :func:`run_pipeline`: bad input prints its message (no traceback).

    Args:
        kind (str): 'train' or 'test'.
        argv (list[str] | None): Arguments without the program name. Default: ``sys.argv[1:]``.

    Returns:
        int: 0 on success, :data:`INPUT_ERROR_EXIT_CODE` (2) on bad input.
    """
    try:
        run_pipeline(kind, argv)
    except INPUT_ERRORS as err:
        sys.stderr.write(f'msrn_plugin/{kind}.py: error: {err}\n')
        return INPUT_ERROR_EXIT_CODE
    return 0
