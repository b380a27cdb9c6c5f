"""Benchmarks behind ``scripts/benchmark_*.py``: data loader, distributed training, inference."""
