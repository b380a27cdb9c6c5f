"""Data preparation (library code behind ``scripts/prepare_*.py``).

- :mod:`msrn_plugin.prep.bicubic`: mod-crop and MATLAB-compatible bicubic downscaling (BasicSR's ``imresize``).
- :mod:`msrn_plugin.prep.subimages`: BasicSR's overlapping sub-image grid, aligned for several scales.
- :mod:`msrn_plugin.prep.lmdb_writer`: atomic LMDB writing (temporary name, checked, then renamed).
- :mod:`msrn_plugin.prep.div2k`: the DIV2K tree as downloaded to ``DIV2K_*_sub.lmdb`` for every scale.
- :mod:`msrn_plugin.prep.benchmark`: Set5/Set14/B100/Urban100/Manga109 to ``GTmod{s}``/``LRbicx{s}``.
- :mod:`msrn_plugin.prep.haze`: synthetic hazy/clear pairs (atmospheric scattering model), RESIDE naming.
"""


class PrepError(ValueError):
    """Input or output that data preparation cannot use; the message names the file and the fix."""
