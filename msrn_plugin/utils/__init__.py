"""Shared helpers: crash-safe writes, checkpoints, image I/O, option loading and checks, the pipeline runner."""
