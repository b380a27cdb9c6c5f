"""The quick-start demos: MSRN x4 on bundled photos (``sr_demo``), denoising and dehazing (``restoration_demo``)."""
