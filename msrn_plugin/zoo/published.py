"""Published PSNR / SSIM of the zoo entries, read from ``published_results.csv`` (not measured here)."""
import csv
import logging
import os
from typing import Dict, Optional, Tuple

from msrn_plugin.utils.misc import PathType

logger = logging.getLogger(__name__)

#: Method names in ``published_results.csv`` for the zoo entries (EDSR there is the paper's large model).
PUBLISHED_METHODS = {'EDSR-L': 'EDSR', 'RCAN': 'RCAN', 'MSRN': 'MSRN'}
PUBLISHED_DATASETS = ('Set5', 'Set14', 'B100', 'Urban100', 'Manga109')


def load_published(path: Optional[PathType], scale: int) -> Dict[str, Dict[str, Tuple[float, float, str]]]:
    """Published PSNR / SSIM per zoo entry and dataset, from ``published_results.csv``.

    Args:
        path (str | PathLike | None): The CSV (``shared/reference/published_results.csv``). A missing file gives an
            empty result and a warning.
        scale (int): Setting ``x{scale}`` rows are used.

    Returns:
        dict: ``{zoo name: {dataset: (psnr, ssim, source)}}``; only entries of :data:`PUBLISHED_METHODS`.
    """
    if path is None or not os.path.isfile(path):
        logger.warning(f'{path}: published results not found; the tables will have no published columns '
                       '(give --reference PATH/published_results.csv).')
        return {}
    wanted = {method: name for name, method in PUBLISHED_METHODS.items()}
    result: Dict[str, Dict[str, Tuple[float, float, str]]] = {}
    with open(path, newline='', encoding='utf-8') as f:
        for row in csv.DictReader(f):
            if row.get('task') != 'sr' or row.get('setting') != f'x{scale}' or row.get('method') not in wanted:
                continue
            ssim = float(row['ssim']) if row.get('ssim') else float('nan')
            result.setdefault(wanted[row['method']], {})[row['dataset']] = (float(row['psnr']), ssim, row['source'])
    return result
