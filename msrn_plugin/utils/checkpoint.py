"""Crash-safe checkpoint writing and code-free checkpoint reading.

Every checkpoint the plugin writes goes through :func:`atomic_torch_save` (temporary file in the same folder, fsync,
rename), so a kill at any moment leaves either the previous file or the complete new one under the final name, never
a truncated one. Every checkpoint the plugin reads goes through :func:`safe_torch_load` (``weights_only=True``), which
refuses pickled code.
"""
import os
import pickle
import re
import torch
from os import PathLike
from typing import Any, Union

from msrn_plugin.utils.atomic import atomic_write

PathType = Union[str, PathLike]


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used; the message names the file and what to do."""


def atomic_torch_save(obj: Any, path: PathType) -> None:
    """``torch.save`` that never leaves a partial file under ``path``.

    Args:
        obj (Any): What to save.
        path (str | PathLike): Final file name; its folder must exist.
    """
    with atomic_write(path) as f:
        torch.save(obj, f)


def safe_torch_load(path: PathType, map_location: Any = 'cpu') -> Any:
    """Load a checkpoint with ``weights_only=True``.

    Args:
        path (str | PathLike): The checkpoint.
        map_location (Any): Passed to ``torch.load``. Default: 'cpu'.

    Returns:
        The loaded object (tensors, containers and plain Python values only).

    Raises:
        CheckpointError: If the file is missing, truncated or corrupt, or holds pickled code.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: checkpoint not found; check the path.')
    if os.path.getsize(path) == 0:
        raise CheckpointError(f'{path}: checkpoint is empty (0 bytes), probably from an interrupted copy; '
                              'use another checkpoint.')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # torch reports both "pickled code" and "not a pickle at all" as weights-only failures; only the first
        # names a GLOBAL (a class or function the file asks to import and call)
        refused = re.search(r'GLOBAL ([\w.]+)', str(err))
        if refused is None:
            detail = re.search(r'WeightsUnpickler error:\s*(\S[^\n]*)', str(err))
            raise CheckpointError(f'{path}: cannot read checkpoint (UnpicklingError: '
                                  f'{detail.group(1)[:120] if detail else "no PyTorch data found"}); the file is '
                                  'truncated or not a PyTorch checkpoint.') from None
        raise CheckpointError(f'{path}: refused to load: the file holds pickled Python objects, not only weights '
                              f'(it would import and call {refused.group(1)}). Only plain state dicts are loaded; '
                              're-save the weights with `torch.save(model.state_dict(), path)` from a trusted '
                              'environment.') from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f'{path}: cannot read checkpoint ({type(err).__name__}: {err}); the file is truncated '
                              'or not a PyTorch checkpoint.') from None
