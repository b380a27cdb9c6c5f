"""Model-zoo network configurations (the papers' and the slim same-budget ones) and building them through BasicSR's
``ARCH_REGISTRY``."""
import copy
from basicsr.utils.registry import ARCH_REGISTRY
from collections import OrderedDict
from torch import nn
from typing import Mapping

#: The papers' configurations (``upscale`` is added per run). EDSR-M is BasicSR's ``EDSR_Mx4`` (the EDSR paper's
#: baseline), EDSR-L its ``EDSR_Lx4`` (the paper's EDSR), RCAN the RCAN paper's (10 groups of 20 blocks), MSRN the
#: MSRN paper's.
ZOO_CONFIGS: 'OrderedDict[str, dict]' = OrderedDict([
    ('EDSR-M', {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_block': 16, 'res_scale': 1}),
    ('EDSR-L', {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 256, 'num_block': 32,
                'res_scale': 0.1}),
    ('RCAN', {'type': 'RCAN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_group': 10, 'num_block': 20,
              'squeeze_factor': 16, 'res_scale': 1}),
    ('MSRN', {'type': 'MSRN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_block': 8}),
])
#: Slim members of the same families for the same-budget run on a CPU (not the papers' models): 32 features
#: (48 for the wide EDSR-L, which keeps its 0.1 residual scaling), depth cut so that each needs roughly 0.4-1 M
#: multiply-accumulates per LR pixel and one iteration takes well under a second on two cores.
BUDGET_CONFIGS: 'OrderedDict[str, dict]' = OrderedDict([
    ('EDSR-M', {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 32, 'num_block': 8, 'res_scale': 1}),
    ('EDSR-L', {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 48, 'num_block': 8,
                'res_scale': 0.1}),
    ('RCAN', {'type': 'RCAN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 32, 'num_group': 3, 'num_block': 4,
              'squeeze_factor': 8, 'res_scale': 1}),
    ('MSRN', {'type': 'MSRN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 32, 'num_block': 4}),
])


def network_options(name: str, scale: int, configs: Mapping[str, dict] = ZOO_CONFIGS) -> dict:
    """The network options of a zoo entry at a scale (a new dict; ``configs`` is not modified).

    Args:
        name (str): A key of ``configs``.
        scale (int): Upscaling factor.
        configs (Mapping[str, dict]): :data:`ZOO_CONFIGS`, :data:`BUDGET_CONFIGS` or another table of BasicSR
            network options. Default: :data:`ZOO_CONFIGS`.
    """
    if name not in configs:
        raise KeyError(f'unknown model {name!r}; choose from {list(configs)}')
    opt = copy.deepcopy(dict(configs[name]))
    opt['upscale'] = scale
    return opt


def build_model(opt: Mapping) -> nn.Module:
    """Create a network from BasicSR network options through ``ARCH_REGISTRY`` (``opt`` is not modified).

    This is BasicSR's ``build_network`` without its ``get_root_logger()`` call, which would initialise BasicSR's logger
    without a log file and so leave a later ``train_pipeline`` in the same process without its train log.

    Args:
        opt (Mapping): ``{'type': <registered name>, **arguments}``.
    """
    opt = dict(opt)
    return ARCH_REGISTRY.get(opt.pop('type'))(**opt)


def describe_options(opt: Mapping) -> str:
    """``'EDSR(num_feat=64, num_block=16, ...)'`` without the channel counts and scale."""
    args = ', '.join(f'{k}={v}' for k, v in opt.items() if k not in ('type', 'num_in_ch', 'num_out_ch', 'upscale'))
    return f"{opt['type']}({args})"
