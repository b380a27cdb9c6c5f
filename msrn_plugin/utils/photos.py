"""The photographs scikit-image ships in ``skimage/data/``: offline material for the demos and the tests."""
import cv2
import numpy as np
import os
from typing import Dict, Tuple

#: Colour photographs used for training in the demo (and as a miniature DIV2K in tests).
TRAIN_PHOTOS: Tuple[str, ...] = ('astronaut.png', 'coffee.png', 'motorcycle_left.png', 'motorcycle_right.png',
                                 'ihc.png', 'brick.png', 'gravel.png', 'grass.png')
#: Photographs the demo never trains on; PSNR against bicubic is measured on these.
HELD_OUT_PHOTOS: Tuple[str, ...] = ('camera.png', 'chelsea.png', 'coins.png', 'moon.png', 'rocket.jpg')


def photo_dir() -> str:
    """Folder of scikit-image's bundled images."""
    import skimage
    return os.path.join(os.path.dirname(skimage.__file__), 'data')


def load_photo(name: str, color: bool = True) -> np.ndarray:
    """Load one bundled photograph.

    Args:
        name (str): File name in ``skimage/data/``, e.g. ``'astronaut.png'``.
        color (bool): True: 3-channel BGR (gray photos are replicated). False: one channel (HxW). Default: True.

    Returns:
        np.ndarray: uint8 image, OpenCV layout.
    """
    path = os.path.join(photo_dir(), name)
    img = cv2.imread(path, cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise FileNotFoundError(f'{path}: bundled photo not found; is scikit-image installed?')
    return img


def load_photos(names: Tuple[str, ...], color: bool = True) -> Dict[str, np.ndarray]:
    """Load several bundled photographs, keyed by file stem."""
    return {os.path.splitext(n)[0]: load_photo(n, color) for n in names}
