"""SRModel with a correct geometric self-ensemble (MSRN+) for validation and testing."""
import logging
import torch
from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import MODEL_REGISTRY

from msrn_plugin.inference.ensemble import self_ensemble

logger = logging.getLogger('basicsr')


@MODEL_REGISTRY.register()
class MSRNModel(SRModel):
    """BasicSR's :class:`basicsr.models.sr_model.SRModel`, whose ``test`` can average the 8 flips/rotations.

    Set ``val.self_ensemble: true`` to evaluate MSRN+ (the paper's "+" rows): every validation/test image is run
    through the 8 dihedral transforms and the back-transformed outputs are averaged
    (:func:`msrn_plugin.inference.ensemble.self_ensemble`), with ``net_g_ema`` when EMA is on and ``net_g`` otherwise.
    BasicSR 1.4.2's own ``SRModel.test_selfensemble`` is not used: validation never calls it, and without EMA it
    calls the missing ``net_g_ema``. Training is unchanged.

    Args:
        opt (dict): Options of ``SRModel``; ``val.self_ensemble`` (bool) switches the self-ensemble on.
            Default: false.
    """

    def __init__(self, opt: dict):
        flag = (opt.get('val') or {}).get('self_ensemble', False)
        if not isinstance(flag, bool):
            raise ValueError(f'val.self_ensemble must be true or false, got {flag!r}.')
        self.use_self_ensemble = flag
        super().__init__(opt)
        if flag:
            logger.info('Validation/test output: x8 geometric self-ensemble (MSRN+).')

    def test(self) -> None:
        """Run the network on ``self.lq`` (optionally self-ensembled) into ``self.output``, without gradients."""
        if not self.use_self_ensemble:
            super().test()
            return
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        was_training = net.training
        net.eval()
        with torch.no_grad():
            self.output = self_ensemble(net, self.lq)
        net.train(was_training)
