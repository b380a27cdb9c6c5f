"""BasicSR 1.4.2 compatibility layer: fixes safe for every BasicSR project and the plugin's own (docs/basicsr_fixes.md).

- :mod:`msrn_plugin.compat.basicsr_fixes`: bug fixes (torchvision alias, safe YAML, resume on CPU, gloo DDP, ...).
- :mod:`msrn_plugin.compat.plugin_fixes`: start-up checks in BasicSR's parser, atomic checkpoint saves.
- :mod:`msrn_plugin.compat.fixes`: how a fix checks BasicSR's version and its targets before replacing anything.
"""
from typing import Dict

from msrn_plugin.compat import basicsr_fixes, plugin_fixes
from msrn_plugin.compat.basicsr_fixes import (_check_same_start, _init_dist_pytorch, _init_dist_slurm, _load_network,
                                              _model_to_device, _remove_stale_temporaries, _validation,
                                              check_dist_backend, dist_device_index, install_torchvision_alias,
                                              load_resume_state, normalize_argv, output_root, resolve_dist_backend,
                                              set_dist_backend)
from msrn_plugin.compat.fixes import BASICSR_VERSION, STATUS, CompatWarning, apply_fixes
from msrn_plugin.compat.plugin_fixes import _save_network, _save_training_state, save_on_rank0


def apply() -> Dict[str, str]:
    """Apply every fix once (idempotent): BasicSR's bug fixes, then the plugin's own. Called by ``import msrn_plugin``.

    Returns:
        dict: Fix name -> 'applied' or 'skipped: <reason>' (:data:`msrn_plugin.compat.fixes.STATUS`).
    """
    basicsr_fixes.install_torchvision_alias()
    apply_fixes(basicsr_fixes.FIXES + plugin_fixes.FIXES)  # one warning for all if basicsr is another version
    return dict(STATUS)


__all__ = [
    'BASICSR_VERSION', 'STATUS', 'CompatWarning', 'apply', 'check_dist_backend', 'dist_device_index',
    'install_torchvision_alias', 'load_resume_state', 'normalize_argv', 'output_root', 'resolve_dist_backend',
    'save_on_rank0', 'set_dist_backend', '_check_same_start', '_init_dist_pytorch', '_init_dist_slurm', '_load_network',
    '_model_to_device', '_remove_stale_temporaries', '_save_network', '_save_training_state', '_validation'
]
