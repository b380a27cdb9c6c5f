"""The plugin's own changes to BasicSR's flow: start-up checks in BasicSR's parser and atomic checkpoint saves."""
import contextlib
import logging
import os
import sys
import time
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

from msrn_plugin.compat import basicsr_fixes
from msrn_plugin.compat.fixes import Fix, apply_fixes
from msrn_plugin.utils.checkpoint import (RECORD_KEY, CheckpointError, atomic_torch_save, network_record,
                                          strip_module_prefix)

logger = logging.getLogger('basicsr')

#: Upstream's ``save_network``/``save_training_state`` try 3 times, 1 s apart.
SAVE_ATTEMPTS = 3
SAVE_RETRY_DELAY = 1.0

_prechecked: Optional[Tuple[str, Tuple[str, ...]]] = None

# ------------------------------------------------------------------------------------------ startup_checks


@contextlib.contextmanager
def prechecked(kind: str, argv: Sequence[str]) -> Iterator[None]:
    """Within the block, BasicSR's ``parse_options`` skips the start-up checks for these arguments (already run).

    Args:
        kind (str): 'train' or 'test'.
        argv (Sequence[str]): The arguments that :func:`msrn_plugin.utils.pipeline.prepare_run` checked.
    """
    global _prechecked
    old, _prechecked = _prechecked, (kind, tuple(argv))
    try:
        yield
    finally:
        _prechecked = old


def startup_check(kind: str, argv: List[str], root_path: str) -> None:
    """Fix ``startup_checks``: the plugin's start-up checks when BasicSR's own scripts parse their options.

    ``python basicsr/train.py``, ``python -m basicsr.train`` and their ``test`` twins run
    :func:`msrn_plugin.utils.pipeline.prepare_run` (safe option loading, ``--force_yml`` checks, option and data
    validation) before BasicSR reads anything; bad input prints its message and exits with status 2, as BasicSR's
    argument parser does for a bad flag.

    Args:
        kind (str): 'train' or 'test'.
        argv (list[str]): Arguments without the program name.
        root_path (str): Where ``experiments/`` goes.

    Raises:
        SystemExit: With status 2 on bad input.
    """
    if _prechecked == (kind, tuple(argv)):
        return
    from msrn_plugin.utils.pipeline import INPUT_ERROR_EXIT_CODE, INPUT_ERRORS, prepare_run
    try:
        prepare_run(kind, argv, root_path)
    except INPUT_ERRORS as err:
        sys.stderr.write(f'{os.path.basename(sys.argv[0] if sys.argv else kind)}: error: {err}\n')
        raise SystemExit(INPUT_ERROR_EXIT_CODE) from err


# -------------------------------------------------------------------------------------------- atomic_saves


def _world() -> Tuple[int, int]:
    from basicsr.utils.dist_util import get_dist_info
    return get_dist_info()


def save_on_rank0(build: Callable[[], Any], path: str) -> None:
    """Save ``build()`` to ``path`` atomically on rank 0, retried as upstream; call it on every rank.

    Rank 0 tries :data:`SAVE_ATTEMPTS` times, :data:`SAVE_RETRY_DELAY` s apart, logging each failure as upstream
    does. Under DDP rank 0 then broadcasts the outcome, so every rank raises the same error together instead of
    waiting in the next collective for a rank 0 that gave up. The file is written atomically (temporary file,
    fsync, rename): a kill leaves the previous checkpoints intact.

    Args:
        build (callable): Returns the object to save (only rank 0 calls it).
        path (str): The checkpoint file.

    Raises:
        CheckpointError: On every rank, when the last attempt failed.
    """
    rank, world_size = _world()
    error = None
    if rank == 0:
        obj = build()
        for attempt in range(1, SAVE_ATTEMPTS + 1):
            try:
                atomic_torch_save(obj, path)
                error = None
                break
            except Exception as err:  # upstream retries on any error
                error = f'{type(err).__name__}: {err}'
                if attempt < SAVE_ATTEMPTS:
                    logger.warning(f'Save model error: {error}, remaining retry times: {SAVE_ATTEMPTS - attempt}')
                    time.sleep(SAVE_RETRY_DELAY)
    if world_size > 1:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            outcome = [error]
            dist.broadcast_object_list(outcome, src=0)
            error = outcome[0]
    if error is not None:
        raise CheckpointError(f'Cannot save {path} after {SAVE_ATTEMPTS} attempts ({error}). The earlier checkpoints '
                              'are intact: free disk space or fix the folder, then restart with --auto_resume.')


def _save_network(self, net, net_label: str, current_iter: int, param_key='params') -> None:
    """Fix ``atomic_saves``: ``BaseModel.save_network`` with an atomic write and upstream's retry (rank 0 writes).

    Called on every rank (as BasicSR's trainer does); see :func:`save_on_rank0`.
    """
    if current_iter == -1:
        current_iter = 'latest'
    save_path = os.path.join(self.opt['path']['models'], f'{net_label}_{current_iter}.pth')
    nets = net if isinstance(net, list) else [net]
    param_keys = param_key if isinstance(param_key, list) else [param_key]
    if len(nets) != len(param_keys):
        raise ValueError('save_network: the lengths of net and param_key should be the same.')

    def build() -> dict:
        save_dict = {}
        for net_, key_ in zip(nets, param_keys):
            state_dict = strip_module_prefix(self.get_bare_model(net_).state_dict())
            save_dict[key_] = {k: v.cpu() for k, v in state_dict.items()}
        record = network_record(self.opt, net_label)  # the network options, for readers (docs/inference.md)
        if record is not None:
            save_dict[RECORD_KEY] = record
        return save_dict

    save_on_rank0(build, save_path)


def write_training_state(model, epoch: int, current_iter: int, extra: Optional[Callable[[], dict]] = None) -> None:
    """Save ``<iter>.state`` as ``BaseModel.save_training_state`` does, through :func:`save_on_rank0`.

    Args:
        model (BaseModel): The model (its ``optimizers``, ``schedulers`` and ``opt['path']['training_states']``).
        epoch (int): Current epoch.
        current_iter (int): Current iteration (-1: nothing is saved, as upstream).
        extra (callable | None): Returns more entries for the state (e.g. a gradient scaler's). Default: None.
    """
    if current_iter == -1:
        return

    def build() -> dict:
        state = {
            'epoch': epoch,
            'iter': current_iter,
            'optimizers': [o.state_dict() for o in model.optimizers],
            'schedulers': [s.state_dict() for s in model.schedulers]
        }
        if extra is not None:
            state.update(extra())
        return state

    save_on_rank0(build, os.path.join(model.opt['path']['training_states'], f'{current_iter}.state'))


def _save_training_state(self, epoch: int, current_iter: int) -> None:
    """Fix ``atomic_saves``: ``BaseModel.save_training_state`` with an atomic write and upstream's retry."""
    write_training_state(self, epoch, current_iter)


# ------------------------------------------------------------------------------------------------- apply

_BASE_MODEL = 'basicsr.models.base_model:BaseModel'

#: The plugin's own fixes; ``startup_checks`` needs the ``parse_options`` fix of :mod:`basicsr_fixes`.
FIXES: Tuple[Fix, ...] = (
    Fix('atomic_saves', ((_BASE_MODEL, 'save_network', _save_network),
                         (_BASE_MODEL, 'save_training_state', _save_training_state))),
    Fix('startup_checks', on_apply=lambda: basicsr_fixes.add_startup_check(startup_check),
        requires=('parse_options', )),
)


def apply() -> None:
    """Apply the plugin's own fixes (after :func:`msrn_plugin.compat.basicsr_fixes.apply`)."""
    apply_fixes(FIXES)
