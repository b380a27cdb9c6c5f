"""Model-zoo comparison: MSRN against BasicSR's own EDSR (M and L) and RCAN, on this machine.

Every network is built through BasicSR's ``ARCH_REGISTRY`` from the documented options in :data:`ZOO_CONFIGS` (the
papers' configurations) or :data:`BUDGET_CONFIGS` (slim members of the same families that a CPU can train in
minutes). What is measured, and how:

* parameters: trainable parameters (MSRN's mean-shift buffers excluded, as in the paper's counts);
* MACs: ``mmengine.analysis.get_model_complexity_info`` at a stated LR input size. mmengine's "flops" are
  multiply-accumulates of the convolution / linear layers (element-wise additions, ReLUs, pixel shuffles are not
  counted); 1 MAC = 2 FLOPs;
* latency: median wall time of ``repeats`` forward passes (batch 1, fp32, ``torch.no_grad``) after one warm-up, with
  the stated number of CPU threads;
* peak memory: on the CPU, the peak of tensor memory allocated by PyTorch during one forward pass (from
  ``torch.profiler``'s memory events; oneDNN's internal scratch buffers are not included); on CUDA,
  ``torch.cuda.max_memory_allocated`` above what was allocated before;
* PSNR / SSIM: BasicSR's ``calculate_psnr`` / ``calculate_ssim`` on the Y channel with ``scale`` border pixels
  cropped, HR mod-cropped to the scale, LR made with MATLAB-style bicubic (``basicsr.utils.matlab_functions.imresize``);
* same-budget training: every budget model trains for the same iterations on the same batches (same seed, same
  crops), L1 loss, Adam, constant learning rate, on the bundled training photos
  (:data:`msrn_plugin.photos.TRAIN_PHOTOS`).

:func:`compare_models` runs all of it and writes ``model_zoo.md``, ``model_zoo.csv`` and the plots;
``scripts/compare_models.py`` is its command line. :func:`benchmark_inference` (``scripts/benchmark_inference.py``)
reuses the same measurements for MSRN alone.

Modules (every public name is re-exported here, so ``from msrn_plugin.zoo import compare_models`` works):

* :mod:`~msrn_plugin.zoo.configs`: :data:`ZOO_CONFIGS`, :data:`BUDGET_CONFIGS`, :func:`network_options`,
  :func:`build_model`, :func:`describe_options`;
* :mod:`~msrn_plugin.zoo.profiling`: :func:`count_parameters`, :func:`count_macs`, :func:`measure_latency`,
  :func:`measure_peak_memory`, :func:`profile_model`, :func:`growth_exponent`;
* :mod:`~msrn_plugin.zoo.evaluation`: :func:`bicubic_upscale`, :func:`make_pair`, :func:`load_benchmark`,
  :func:`psnr_ssim`, :func:`evaluate`, :func:`make_upscaler`;
* :mod:`~msrn_plugin.zoo.budget`: :class:`PatchSampler`, :func:`train_same_budget`;
* :mod:`~msrn_plugin.zoo.published`: :data:`PUBLISHED_METHODS`, :data:`PUBLISHED_DATASETS`, :func:`load_published`;
* :mod:`~msrn_plugin.zoo.report`: :func:`write_csv`, :func:`write_markdown`, :func:`write_plots`, :func:`pick_crop`,
  :func:`write_crop_grid`;
* :mod:`~msrn_plugin.zoo.compare`: :class:`CompareSettings`, :func:`compare_models`;
* :mod:`~msrn_plugin.zoo.inference_bench`: :func:`conv_roofline`, :func:`benchmark_inference`,
  :func:`benchmark_tiling`.

Dependencies run one way (``configs``, ``profiling``, ``evaluation``, ``published`` need no sibling; ``budget`` uses
``evaluation``, ``report`` uses ``published``, ``inference_bench`` uses ``profiling``, ``compare`` uses all but
``inference_bench``), so there are no import cycles.
"""
from msrn_plugin.zoo.budget import PatchSampler, train_same_budget
from msrn_plugin.zoo.compare import CompareSettings, compare_models
from msrn_plugin.zoo.configs import BUDGET_CONFIGS, ZOO_CONFIGS, build_model, describe_options, network_options
from msrn_plugin.zoo.evaluation import bicubic_upscale, evaluate, load_benchmark, make_pair, make_upscaler, psnr_ssim
from msrn_plugin.zoo.inference_bench import benchmark_inference, benchmark_tiling, conv_roofline
from msrn_plugin.zoo.profiling import (count_macs, count_parameters, growth_exponent, measure_latency,
                                       measure_peak_memory, profile_model)
from msrn_plugin.zoo.published import PUBLISHED_DATASETS, PUBLISHED_METHODS, load_published
from msrn_plugin.zoo.report import pick_crop, write_crop_grid, write_csv, write_markdown, write_plots

__all__ = [
    'ZOO_CONFIGS', 'BUDGET_CONFIGS', 'network_options', 'build_model', 'describe_options', 'count_parameters',
    'count_macs', 'measure_latency', 'measure_peak_memory', 'profile_model', 'growth_exponent', 'bicubic_upscale',
    'make_pair', 'load_benchmark', 'psnr_ssim', 'evaluate', 'make_upscaler', 'PatchSampler', 'train_same_budget',
    'PUBLISHED_METHODS', 'PUBLISHED_DATASETS', 'load_published', 'write_csv', 'write_markdown', 'write_plots',
    'pick_crop', 'write_crop_grid', 'CompareSettings', 'compare_models', 'conv_roofline', 'benchmark_inference',
    'benchmark_tiling'
]
