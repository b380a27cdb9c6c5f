"""Model-zoo comparison of MSRN with BasicSR's EDSR and RCAN (`scripts/compare_models.py`, docs/model_zoo.md)."""
from msrn_plugin.zoo.budget import PatchSampler, train_same_budget
from msrn_plugin.zoo.compare import CompareSettings, compare_models, load_zoo_checkpoint
from msrn_plugin.zoo.configs import BUDGET_CONFIGS, ZOO_CONFIGS, build_model, describe_options, network_options
from msrn_plugin.zoo.evaluation import bicubic_upscale, evaluate, load_benchmark, make_pair, make_upscaler, psnr_ssim
from msrn_plugin.zoo.profiling import (count_macs, count_parameters, growth_exponent, measure_latency,
                                       measure_peak_memory, profile_model)
from msrn_plugin.zoo.published import PUBLISHED_DATASETS, PUBLISHED_METHODS, load_published
from msrn_plugin.zoo.report import pick_crop, write_crop_grid, write_csv, write_markdown, write_plots

__all__ = [
    'ZOO_CONFIGS', 'BUDGET_CONFIGS', 'network_options', 'build_model', 'describe_options', 'count_parameters',
    'count_macs', 'measure_latency', 'measure_peak_memory', 'profile_model', 'growth_exponent', 'bicubic_upscale',
    'make_pair', 'load_benchmark', 'psnr_ssim', 'evaluate', 'make_upscaler', 'PatchSampler', 'train_same_budget',
    'PUBLISHED_METHODS', 'PUBLISHED_DATASETS', 'load_published', 'write_csv', 'write_markdown', 'write_plots',
    'pick_crop', 'write_crop_grid', 'CompareSettings', 'compare_models', 'load_zoo_checkpoint',
]
