"""Fixes of BasicSR 1.4.2 bugs, safe for every BasicSR project in the environment (table: docs/basicsr_fixes.md)."""
import argparse
import logging
import os
import re
import site
import sys
import sysconfig
import torch
import types
from typing import Callable, List, Optional, Sequence, Tuple

import msrn_basicsr_hook
from msrn_plugin.compat.fixes import STATUS, Fix, _warned, apply_fixes, original, warn_once
from msrn_plugin.utils.checkpoint import (CheckpointError, check_finite, safe_torch_load, strip_module_prefix,
                                          training_state_iters)
from msrn_plugin.utils.options import OptionFileError, SafeOrderedLoader, load_options, parse_override_value

logger = logging.getLogger('basicsr')  # BasicSR's logger; never call get_root_logger() before train_pipeline does

TORCHVISION_OLD = msrn_basicsr_hook.TORCHVISION_OLD
TORCHVISION_NEW = msrn_basicsr_hook.TORCHVISION_NEW
_DIST_BACKENDS = ('gloo', 'nccl', 'mpi', 'ucc', 'xccl')

_dist_backend: Optional[str] = None
_nccl_fallback_warned = False
#: Called by BasicSR's ``parse_options`` before it reads anything: ``check(kind, argv, root_path)``.
_startup_checks: List[Callable[[str, List[str], str], None]] = []

# ------------------------------------------------------------------------------------------ torchvision_alias


def install_torchvision_alias() -> bool:
    """Fix ``torchvision_alias``: make ``torchvision.transforms.functional_tensor`` importable (before basicsr is).

    torchvision 0.17 renamed that module ``_functional_tensor``; the old name is registered in ``sys.modules`` as an
    alias of the same module object (:func:`msrn_basicsr_hook.alias_torchvision`, which the start-up hook runs
    before basicsr's ``__init__``). Nothing is done when the old module still exists.

    Returns:
        bool: True when the old name imports (it exists, or the alias is in place).
    """
    skipped = msrn_basicsr_hook.alias_torchvision(msrn_basicsr_hook.basicsr_version_before_import())
    if skipped:
        if msrn_basicsr_hook.alias_warning_given:  # the start-up hook said it already
            _warned.add('torchvision_alias')
        warn_once(['torchvision_alias'], skipped)
        return False
    STATUS['torchvision_alias'] = ('applied' if sys.modules.get(TORCHVISION_OLD) is sys.modules.get(TORCHVISION_NEW)
                                   else 'not needed: the module exists')
    return True


# ------------------------------------------------------------------------------------------------- safe_yaml


def _safe_ordered_yaml():
    """BasicSR's ``ordered_yaml()`` with the safe loader (Python tags refused)."""
    from yaml import Dumper
    return SafeOrderedLoader, Dumper


# ------------------------------------------------------------------------------------------------ resume


def _remove_stale_temporaries(folder: str) -> None:
    """Delete ``.<name>.<random>.tmp`` files that an atomic save leaves when killed mid-write."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if re.fullmatch(r'\.(net_\w+_(\d+|latest)\.pth|\d+\.state)\..+\.tmp', name):
            logger.warning(f'Removing {os.path.join(folder, name)}: left by a save that was interrupted.')
            try:
                os.remove(os.path.join(folder, name))
            except FileNotFoundError:  # another rank removed it first
                pass


def load_resume_state(opt: dict) -> Optional[dict]:
    """Fix ``resume``: BasicSR's ``load_resume_state`` for CPU and GPU, with a fallback for unreadable states.

    With ``--auto_resume`` the newest ``<iter>.state`` under ``opt['path']['training_states']`` (under the
    ``root_path``, not the current directory) whose state and network checkpoint are both readable is used;
    unreadable ones are reported and skipped. States are loaded on the CPU with ``weights_only=True``
    (``Optimizer.load_state_dict`` moves them to the parameters' device). ``opt['root_path']`` is corrected as in
    :func:`output_root` (``train_pipeline`` sets it from its argument just before this call).

    Args:
        opt (dict): Parsed options; ``opt['path']['resume_state']`` is set to the state used (as BasicSR does).

    Returns:
        dict | None: The training state, or None to start from scratch.

    Raises:
        CheckpointError: If an explicit ``resume_state`` is unreadable, or no auto-resume state is.
    """
    from basicsr.utils import check_resume

    if opt.get('root_path'):
        opt['root_path'] = output_root(opt['root_path'])
    for key in ('training_states', 'models'):
        if opt['path'].get(key):
            _remove_stale_temporaries(opt['path'][key])
    if opt.get('auto_resume'):
        state_dir = opt['path']['training_states']
        if not os.path.isdir(state_dir):
            return None
        iters = training_state_iters(os.listdir(state_dir))
        errors = []
        for it in iters:
            state_path = os.path.join(state_dir, f'{it}.state')
            try:
                state = safe_torch_load(state_path)
                for net_key in (key for key in opt if key.startswith('network_')):
                    net_path = os.path.join(opt['path']['models'], f"net_{net_key[len('network_'):]}_{it}.pth")
                    safe_torch_load(net_path)
            except CheckpointError as err:
                errors.append(str(err))
                logger.warning(f'Cannot resume from iteration {it}: {err} Falling back to the previous state.')
                continue
            opt['path']['resume_state'] = state_path
            check_resume(opt, state['iter'])
            return state
        if errors:
            raise CheckpointError(f'--auto_resume found training states in {state_dir} but none is usable:\n  ' +
                                  '\n  '.join(errors) + '\nRemove that folder to start over.')
        return None
    resume_path = opt['path'].get('resume_state')
    if not resume_path:
        return None
    state = safe_torch_load(resume_path)
    check_resume(opt, state['iter'])
    return state


def _fix_script_copies(namespace: dict) -> None:
    """Fix ``resume`` for ``python basicsr/train.py`` (and ``-m basicsr.train``), which run the file as ``__main__``.

    That copy of the script holds its own ``load_resume_state``, which replacing ``basicsr.train``'s cannot reach;
    ``train_pipeline`` looks it up in its module's namespace when it calls it, right after ``parse_options``.
    """
    current = namespace.get('load_resume_state')
    if current is None or current is load_resume_state or not isinstance(current, types.FunctionType):
        return
    filename = current.__code__.co_filename
    if os.path.basename(filename) == 'train.py' and os.path.basename(os.path.dirname(filename)) == 'basicsr':
        namespace['load_resume_state'] = load_resume_state


# ------------------------------------------------------------------------------------------- parse_options


def normalize_argv(argv: Sequence[str]) -> List[str]:
    """Accept torch 2.x's ``--local-rank`` spelling (BasicSR's parser knows ``--local_rank``).

    Args:
        argv (Sequence[str]): Command-line arguments (without the program name).

    Returns:
        list[str]: A new list with ``--local-rank`` rewritten.
    """
    out = []
    for arg in argv:
        if arg == '--local-rank':
            arg = '--local_rank'
        elif arg.startswith('--local-rank='):
            arg = '--local_rank=' + arg.split('=', 1)[1]
        out.append(arg)
    return out


def _site_dirs() -> List[str]:
    dirs = list(getattr(site, 'getsitepackages', lambda: [])()) + [site.getusersitepackages()]
    paths = sysconfig.get_paths()
    dirs += [paths.get('purelib', ''), paths.get('platlib', '')]
    return [os.path.normcase(os.path.abspath(d)) for d in dirs if d]


def output_root(root_path: str) -> str:
    """Where BasicSR writes ``experiments/``, ``tb_logger/`` and ``results/``.

    BasicSR's scripts pass the folder above their own file. For a source tree that is the tree (BasicSR's
    convention, kept); for an installed basicsr (``python -m basicsr.train``) it is site-packages, so the current
    working directory is used instead.

    Args:
        root_path (str): What BasicSR's script computed.

    Returns:
        str: ``root_path``, or the current directory when ``root_path`` is a site-packages folder.
    """
    path = os.path.normcase(os.path.abspath(root_path))
    if os.path.basename(path) in ('site-packages', 'dist-packages') or path in _site_dirs():
        return os.getcwd()
    return root_path


def add_startup_check(check: Callable[[str, List[str], str], None]) -> None:
    """Run ``check(kind, argv, root_path)`` at the start of BasicSR's ``parse_options``, before anything else.

    Args:
        check (callable): Receives 'train' or 'test', the arguments (``--local-rank`` normalised) and the output
            root; raises or exits to stop the run. Added once (a second call with the same function does nothing).
    """
    if check not in _startup_checks:
        _startup_checks.append(check)


def _args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt', type=str, default=None)
    parser.add_argument('--launcher', default='none')
    return parser.parse_known_args(list(argv))[0]


def _backend_from_options(argv: Sequence[str]) -> None:
    """``dist_params.backend`` of the option file, for the ``--launcher pytorch`` path (upstream drops it)."""
    args = _args(argv)
    if args.launcher == 'none' or not args.opt:
        return
    try:
        opt = load_options(args.opt)
    except (OSError, OptionFileError):
        return  # upstream's parser reports it
    dist_params = opt.get('dist_params') if isinstance(opt, dict) else None
    set_dist_backend(dist_params.get('backend') if isinstance(dist_params, dict) else None)


def parse_options(root_path: str, is_train: bool = True):
    """Fix ``parse_options``: BasicSR's ``parse_options``, with what must happen before and after it.

    Before: ``--local-rank`` is accepted, ``root_path`` goes through :func:`output_root`, the start-up checks
    registered with :func:`add_startup_check` run, and ``dist_params.backend`` reaches the torchrun launcher. After:
    a ``__main__`` copy of ``basicsr/train.py`` gets the fixed ``load_resume_state`` (:func:`_fix_script_copies`).

    Args:
        root_path (str): Root given by BasicSR's script.
        is_train (bool): Training or testing. Default: True.

    Returns:
        tuple: ``(opt, args)`` as upstream.
    """
    upstream = original('basicsr.utils.options', 'parse_options')
    root_path = output_root(root_path)
    old_argv = sys.argv
    argv = normalize_argv(old_argv[1:])
    sys.argv = [old_argv[0] if old_argv else 'basicsr'] + argv
    try:
        for check in list(_startup_checks):
            check('train' if is_train else 'test', argv, root_path)
        _backend_from_options(argv)
        result = upstream(root_path, is_train)
    finally:
        sys.argv = old_argv
    _fix_script_copies(sys._getframe(1).f_globals)
    return result


# ---------------------------------------------------------------------------------------------- dist_init


def set_dist_backend(backend: Optional[str]) -> None:
    """Choose the process-group backend for ``--launcher pytorch``/``slurm`` (``dist_params.backend`` in options).

    Args:
        backend (str | None): 'gloo', 'nccl', 'mpi', 'ucc' or 'xccl'; None: nccl with GPUs, gloo without.

    Raises:
        OptionFileError: If ``backend`` is not a backend name (a ``ValueError``).
    """
    global _dist_backend
    check_dist_backend(backend)
    _dist_backend = backend


def check_dist_backend(backend: Optional[str], source: str = '') -> None:
    """Refuse a ``dist_params.backend`` that is not a process-group backend.

    Args:
        backend (str | None): The value (None: choose from the hardware).
        source (str): The option file, for the message. Default: ''.

    Raises:
        OptionFileError: If ``backend`` is not 'gloo', 'nccl', 'mpi', 'ucc', 'xccl' or None (a ``ValueError``).
    """
    if backend is not None and backend not in _DIST_BACKENDS:
        raise OptionFileError(f"{source + ': ' if source else ''}dist_params.backend: unknown backend {backend!r}; "
                              'use gloo (CPU or GPU), nccl (GPU) or remove the key to choose from the hardware.')


def resolve_dist_backend() -> str:
    """The backend the launchers use: nccl with GPUs, gloo without; ``dist_params.backend`` overrides it.

    ``nccl`` requested without a CUDA GPU (stock BasicSR option files all say ``backend: nccl``) becomes gloo, with
    one warning line (from global rank 0).
    """
    global _nccl_fallback_warned
    cuda = torch.cuda.is_available()
    if _dist_backend == 'nccl' and not cuda:
        if not _nccl_fallback_warned and os.environ.get('RANK', '0') == '0':
            logger.warning("dist_params.backend is 'nccl' but no CUDA GPU is visible: using gloo.")
        _nccl_fallback_warned = True
        return 'gloo'
    if _dist_backend:
        return _dist_backend
    return 'nccl' if cuda else 'gloo'


def dist_device_index(backend: str, local_rank: int, num_gpus: int) -> Optional[int]:
    """The CUDA device a process of the process group uses, or None on a machine without GPUs.

    Every backend gets the process's own GPU (``LOCAL_RANK``), gloo included (upstream sets a device for the global
    rank modulo the GPU count, wrong on several nodes). gloo may share GPUs (``local_rank`` modulo the count); nccl
    may not.

    Args:
        backend (str): The process-group backend.
        local_rank (int): Rank of the process on its node.
        num_gpus (int): CUDA devices visible.

    Returns:
        int | None: The device index, or None for none.

    Raises:
        RuntimeError: For nccl with no GPU, or with more processes per node than GPUs.
    """
    if backend == 'nccl':
        if num_gpus == 0:
            raise RuntimeError("dist_params.backend is 'nccl' but no CUDA GPU is visible; set it to gloo (or remove "
                               'it to choose from the hardware).')
        if local_rank >= num_gpus:
            raise RuntimeError(f'local rank {local_rank} has no GPU: {num_gpus} visible on this node; start at most '
                               f'{num_gpus} processes per node (torchrun --nproc_per_node).')
    if num_gpus == 0:
        return None
    return local_rank % num_gpus


def _require_env(keys: Sequence[str], launcher: str, how: str) -> None:
    missing = [key for key in keys if key not in os.environ]
    if missing:
        raise RuntimeError(f"--launcher {launcher} needs the environment variables {', '.join(missing)}, which "
                           f'{how} sets; start the job that way, or drop --launcher for a single process.')


def _init_process_group(local_rank: int, **kwargs) -> None:
    """Select the process's GPU (if any) and join the process group."""
    import torch.distributed as dist
    backend = resolve_dist_backend()
    device = dist_device_index(backend, local_rank, torch.cuda.device_count())
    if device is not None:
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, **kwargs)


def _init_dist_pytorch(backend: str = 'nccl', **kwargs) -> None:
    """Fix ``dist_init``: BasicSR's ``_init_dist_pytorch`` (torchrun) on GPUs and CPUs, one node or many.

    Args:
        backend (str): Ignored (BasicSR always passes 'nccl'): :func:`resolve_dist_backend` decides. Default: 'nccl'.
        **kwargs: Passed to ``torch.distributed.init_process_group``.
    """
    _require_env(('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'), 'pytorch',
                 'torchrun (python -m torch.distributed.run, or scripts/dist_train.sh)')
    local_rank = int(os.environ.get('LOCAL_RANK', int(os.environ['RANK']) % max(torch.cuda.device_count(), 1)))
    _init_process_group(local_rank, **kwargs)


def _init_dist_slurm(backend: str = 'nccl', port: Optional[int] = None) -> None:
    """Fix ``dist_init`` (slurm): BasicSR's ``_init_dist_slurm`` (``srun``) on GPUs and CPUs.

    Sets the same variables as upstream (``MASTER_ADDR`` from ``scontrol show hostname``, ``MASTER_PORT`` from
    ``port``, else the environment, else 29500, ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``); the local rank is
    ``SLURM_LOCALID`` (upstream: global rank modulo the GPU count, wrong when nodes run fewer tasks than GPUs).

    Args:
        backend (str): Upstream passes ``dist_params.backend`` (default 'nccl'); it is used as
            :func:`set_dist_backend` would (nccl without GPUs becomes gloo). Default: 'nccl'.
        port (int | None): Master port (``dist_params.port``). Default: None.
    """
    import subprocess
    _require_env(('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'), 'slurm', 'srun')
    proc_id = int(os.environ['SLURM_PROCID'])
    local_rank = int(os.environ.get('SLURM_LOCALID', proc_id % max(torch.cuda.device_count(), 1)))
    addr = subprocess.getoutput(f"scontrol show hostname {os.environ['SLURM_NODELIST']} | head -n1")
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    elif 'MASTER_PORT' not in os.environ:
        os.environ['MASTER_PORT'] = '29500'
    os.environ['MASTER_ADDR'] = addr
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = str(local_rank)
    os.environ['RANK'] = str(proc_id)
    _init_process_group(local_rank)


# ------------------------------------------------------------------------------------------------ ddp_wrap


def _check_same_start(opt: dict) -> None:
    """Every rank must resume from the same training state (or none), else fail instead of hanging."""
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        return
    state = opt['path'].get('resume_state')
    states = [None] * dist.get_world_size()
    dist.all_gather_object(states, os.path.basename(state) if state else None)
    if len(set(states)) > 1:
        seen = ', '.join(f'rank {r}: {s or "from scratch"}' for r, s in enumerate(states))
        raise RuntimeError(f'Ranks disagree on the training state to resume from ({seen}). Every node must see the '
                           f"same {opt['path'].get('training_states', 'experiments/<name>/training_states')} "
                           '(a shared filesystem) for --auto_resume or path.resume_state.')


def _model_to_device(self, net: torch.nn.Module) -> torch.nn.Module:
    """Fix ``ddp_wrap``: ``BaseModel.model_to_device`` that wraps CPU models in DDP too (gloo).

    Under DDP in training, the ranks first check that they resume from the same state (:func:`_check_same_start`).
    """
    from torch.nn.parallel import DataParallel, DistributedDataParallel
    net = net.to(self.device)
    if self.opt['dist']:
        import torch.distributed as dist
        if self.device.type == 'cpu' and dist.get_backend() == 'nccl':
            raise RuntimeError('num_gpu is 0 (training on the CPU) but the process group uses nccl, which needs '
                               'GPUs: set dist_params.backend: gloo in the option file.')
        if self.opt.get('is_train'):
            _check_same_start(self.opt)
        find_unused_parameters = self.opt.get('find_unused_parameters', False)
        device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
        net = DistributedDataParallel(net, device_ids=device_ids, find_unused_parameters=find_unused_parameters)
    elif self.opt['num_gpu'] > 1:
        net = DataParallel(net)
    return net


# ------------------------------------------------------------------------------------------ ddp_validation


def _validation(self, dataloader, current_iter: int, tb_logger, save_img: bool = False) -> None:
    """Fix ``ddp_validation``: ``BaseModel.validation`` that runs the bare networks under DDP.

    Upstream validates on rank 0 only through the DDP wrapper, whose forward broadcasts module buffers (MSRN's mean
    shifts) to ranks that are not validating: the ranks' collectives go out of step, and the final validation fails
    with "Connection closed by peer" once the other ranks have exited.

    Args:
        dataloader (DataLoader): Validation dataloader.
        current_iter (int): Current iteration.
        tb_logger (SummaryWriter | None): Tensorboard logger.
        save_img (bool): Whether to save images. Default: False.
    """
    from torch.nn.parallel import DistributedDataParallel
    wrapped = {key: net for key, net in vars(self).items() if isinstance(net, DistributedDataParallel)}
    for key, net in wrapped.items():
        setattr(self, key, net.module)
    try:
        if self.opt['dist']:
            self.dist_validation(dataloader, current_iter, tb_logger, save_img)
        else:
            self.nondist_validation(dataloader, current_iter, tb_logger, save_img)
    finally:
        for key, net in wrapped.items():
            setattr(self, key, net)


# --------------------------------------------------------------------------------------- weights_only_load


def _load_network(self, net: torch.nn.Module, load_path: str, strict: bool = True, param_key='params') -> None:
    """Fix ``weights_only_load``: ``BaseModel.load_network`` that refuses pickled code."""
    net = self.get_bare_model(net)
    load_net = safe_torch_load(load_path)
    if not isinstance(load_net, dict):
        raise CheckpointError(f'{load_path}: holds a {type(load_net).__name__}, not a dict of weights; save '
                              "{'params': model.state_dict()} or convert it with scripts/convert_official_msrn.py.")
    if param_key is not None:
        if param_key not in load_net and 'params' in load_net:
            param_key = 'params'
            logger.info('Loading: params_ema does not exist, use params.')
        if param_key not in load_net:
            raise CheckpointError(f'{load_path}: no {param_key!r} entry (keys: {sorted(load_net)}); set '
                                  'path.param_key_g to one of them, or convert the file with '
                                  'scripts/convert_official_msrn.py.')
        load_net = load_net[param_key]
    logger.info(f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
    load_net = strip_module_prefix(load_net)
    check_finite(load_net, load_path)  # NaN/Inf weights would give black images, silently
    self._print_different_keys_loading(net, load_net, strict)
    net.load_state_dict(load_net, strict=strict)


# ------------------------------------------------------------------------------------------------- apply

_BASE_MODEL = 'basicsr.models.base_model:BaseModel'

#: The fixes, in the order they are applied (``torchvision_alias`` runs before basicsr is imported).
FIXES: Tuple[Fix, ...] = (
    Fix('safe_yaml', (('basicsr.utils.options', 'ordered_yaml', _safe_ordered_yaml),
                      ('basicsr.utils.options', '_postprocess_yml_value', parse_override_value))),
    Fix('resume', (('basicsr.train', 'load_resume_state', load_resume_state), )),
    Fix('parse_options', (('basicsr.utils.options', 'parse_options', parse_options),
                          ('basicsr.train', 'parse_options', parse_options),
                          ('basicsr.test', 'parse_options', parse_options))),
    Fix('dist_init', (('basicsr.utils.dist_util', '_init_dist_pytorch', _init_dist_pytorch),
                      ('basicsr.utils.dist_util', '_init_dist_slurm', _init_dist_slurm))),
    Fix('ddp_wrap', ((_BASE_MODEL, 'model_to_device', _model_to_device), )),
    Fix('ddp_validation', ((_BASE_MODEL, 'validation', _validation), )),
    Fix('weights_only_load', ((_BASE_MODEL, 'load_network', _load_network), )),
)


def apply() -> None:
    """Apply every fix of this module (idempotent); imports basicsr after the torchvision alias."""
    install_torchvision_alias()
    apply_fixes(FIXES)
