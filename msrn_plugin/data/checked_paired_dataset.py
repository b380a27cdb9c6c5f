"""BasicSR's PairedImageDataset with LMDB integrity checked when the dataset is built, not mid-training."""
import copy
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.utils.registry import DATASET_REGISTRY

from msrn_plugin.data.lmdb_check import check_paired_lmdb


@DATASET_REGISTRY.register()
class CheckedPairedImageDataset(PairedImageDataset):
    """:class:`basicsr.data.paired_image_dataset.PairedImageDataset`, plus a start-up check of LMDB pairs.

    With ``io_backend.type: lmdb``, both databases must be complete (every key of ``meta_info.txt`` stored), hold
    the same keys, and have LQ size x scale == GT size for every key
    (:func:`msrn_plugin.data.lmdb_check.check_paired_lmdb`); otherwise building the dataset raises
    :class:`msrn_plugin.data.lmdb_check.LmdbIntegrityError` naming the database and the fix. LMDB keys come from the
    package's meta-info parser, which keeps keys with dots whole (BasicSR's cuts them at the first dot). Other
    backends behave exactly as in BasicSR. The option dict passed in is not modified.

    Args:
        opt (dict): The options of ``PairedImageDataset`` (``dataroot_gt``, ``dataroot_lq``, ``io_backend``,
            ``filename_tmpl``, ``gt_size``, ``use_hflip``, ``use_rot``, ``scale``, ``phase``, ...).
    """

    def __init__(self, opt: dict):
        opt = copy.deepcopy(opt)
        keys = None
        if opt['io_backend']['type'] == 'lmdb':
            keys = check_paired_lmdb(opt['dataroot_lq'], opt['dataroot_gt'], int(opt['scale']))
        super().__init__(opt)
        if keys is not None:  # BasicSR's order (sorted keys), without its cut at the first dot
            self.paths = [{'lq_path': key, 'gt_path': key} for key in sorted(keys)]
