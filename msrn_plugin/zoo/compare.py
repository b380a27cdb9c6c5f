"""The comparison driver: :class:`CompareSettings` and :func:`compare_models` (``scripts/compare_models.py``)."""
import copy
import os
import torch
from dataclasses import dataclass, field
from torch import nn
from tqdm import tqdm
from typing import Dict, List, Optional, Tuple

from msrn_plugin.inference import load_msrn
from msrn_plugin.utils.checkpoint import CheckpointError, read_checkpoint
from msrn_plugin.utils.misc import PathType
from msrn_plugin.utils.photos import TRAIN_PHOTOS, load_photo
from msrn_plugin.zoo.budget import PatchSampler, train_same_budget
from msrn_plugin.zoo.configs import BUDGET_CONFIGS, ZOO_CONFIGS, build_model, describe_options, network_options
from msrn_plugin.zoo.evaluation import bicubic_upscale, evaluate, load_benchmark, make_upscaler
from msrn_plugin.zoo.profiling import count_macs, count_parameters, growth_exponent, profile_model
from msrn_plugin.zoo.published import load_published
from msrn_plugin.zoo.report import write_crop_grid, write_csv, write_markdown, write_plots


@dataclass
class CompareSettings:
    """Settings of :func:`compare_models` (the command line's options).

    Args:
        scale (int): Upscaling factor. Default: 4.
        models (list[str]): Zoo entries, in table order. Default: all of :data:`ZOO_CONFIGS`.
        sizes (list[int]): Square LR sizes for latency and memory. Default: [32, 64].
        repeats (int): Timed runs per size (median reported). Default: 5.
        flops_size (int): Square LR size of the MAC count. Default: 64.
        iters (int): Same-budget training iterations per model (0: skip training). Default: 1000.
        batch_size (int): Default: 8.
        lr_patch (int): LR patch size for training. Default: 24.
        learning_rate (float): Default: 4e-4.
        seed (int): Default: 0.
        hr_dir (str | None): Benchmark HR folder; None: bundled held-out photos. Default: None.
        lr_dir (str | None): Benchmark LR folder; None: bicubic from HR. Default: None.
        eval_crop (int): Centre crop of evaluation images (0: whole). Default: 0.
        checkpoints (dict[str, str]): ``{zoo name: checkpoint}`` of the papers' configurations to evaluate.
            Default: {}.
        reference (str | None): ``published_results.csv``. Default: None.
        threads (int): CPU threads (``torch.set_num_threads``). Default: all cores.
        device (str): 'cpu' or 'cuda'. Default: 'cpu'.
        configs (dict): Full configurations. Default: :data:`ZOO_CONFIGS`.
        budget_configs (dict): Same-budget configurations. Default: :data:`BUDGET_CONFIGS`.
        crop_image (str | None): Benchmark image of the crop grid; None: the first. Default: None.
        quick (bool): Recorded in the report (the preset is :meth:`quick_preset`). Default: False.
    """

    scale: int = 4
    models: List[str] = field(default_factory=lambda: list(ZOO_CONFIGS))
    sizes: List[int] = field(default_factory=lambda: [32, 64])
    repeats: int = 5
    flops_size: int = 64
    iters: int = 1000
    batch_size: int = 8
    lr_patch: int = 24
    learning_rate: float = 4e-4
    seed: int = 0
    hr_dir: Optional[str] = None
    lr_dir: Optional[str] = None
    eval_crop: int = 0
    checkpoints: Dict[str, str] = field(default_factory=dict)
    reference: Optional[str] = None
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    device: str = 'cpu'
    configs: Dict[str, dict] = field(default_factory=lambda: copy.deepcopy(ZOO_CONFIGS))
    budget_configs: Dict[str, dict] = field(default_factory=lambda: copy.deepcopy(BUDGET_CONFIGS))
    crop_image: Optional[str] = None
    quick: bool = False

    @classmethod
    def quick_preset(cls, **overrides) -> 'CompareSettings':
        """Minutes on a 2-core CPU: sizes 16 and 32, 3 repeats, MACs at 32x32, 100 iterations of batch 4 x 16x16 LR,
        128-px evaluation crops.

        Args:
            overrides: Any field of :class:`CompareSettings` (unknown names raise ``TypeError``).
        """
        values = dict(sizes=[16, 32], repeats=3, flops_size=32, iters=100, batch_size=4, lr_patch=16, eval_crop=128,
                      quick=True)
        values.update(overrides)
        return cls(**values)


def load_zoo_checkpoint(name: str, path: PathType, opt: dict) -> Tuple[nn.Module, dict]:
    """Build a zoo entry from its checkpoint: from the checkpoint's network record when it has one, else ``opt``.

    MSRN goes through :func:`msrn_plugin.inference.load_msrn` (record, or inference from the weights); the other
    architectures are built from the record, whose type and scale must be the entry's, or from ``opt``. Weights
    holding NaN/Inf are refused.

    Args:
        name (str): The zoo entry (for messages).
        path (str | PathLike): The checkpoint.
        opt (dict): The entry's network options at the run's scale (not modified).

    Returns:
        tuple[nn.Module, dict]: The network in eval mode and the options it was built with.

    Raises:
        CheckpointError: If the file is unreadable, holds NaN/Inf, or does not fit the entry.
    """
    path = os.fspath(path)
    if opt['type'] == 'MSRN':
        return load_msrn(path, scale=opt['upscale'])
    state, record = read_checkpoint(path)
    if record is not None:
        if record.get('type') != opt['type'] or record.get('upscale') != opt['upscale']:
            raise CheckpointError(f'{path}: records a {record.get("type")} x{record.get("upscale")} network, but '
                                  f'{name} at x{opt["upscale"]} was asked for; give a {opt["type"]} '
                                  f'x{opt["upscale"]} checkpoint.')
        opt = record
    net = build_model(opt)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f'{path}: does not fit {name} = {describe_options(opt)} at x{opt["upscale"]}: '
                              f'{str(err).splitlines()[0]}') from None
    return net.eval(), opt


def compare_models(output_dir: PathType, settings: Optional[CompareSettings] = None) -> dict:
    """Run the model-zoo comparison and write ``model_zoo.md``, ``model_zoo.csv`` and the plots into ``output_dir``.

    Args:
        output_dir (str | PathLike): Created if needed.
        settings (CompareSettings | None): None: the defaults. Default: None.

    Returns:
        dict: ``{'rows': [...], 'bicubic': {...}, 'published': {...}, 'files': [...], 'settings': ...}``.
    """
    st = settings or CompareSettings()
    unknown = [m for m in st.models if m not in st.configs]
    if unknown:
        raise KeyError(f'unknown models {unknown}; choose from {list(st.configs)}')
    for name, path in st.checkpoints.items():
        if name not in st.configs:
            raise KeyError(f'checkpoint given for unknown model {name!r}; choose from {list(st.configs)}')
        if not os.path.isfile(path):  # fail before the long measurements
            raise CheckpointError(f'{path}: checkpoint not found; check the --checkpoint {name}=PATH argument.')
    output_dir = os.fspath(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(st.threads)
    try:
        return _run_comparison(output_dir, st)
    finally:
        torch.set_num_threads(threads)


def _run_comparison(output_dir: str, st: CompareSettings) -> dict:
    device = torch.device(st.device)
    published = load_published(st.reference, st.scale)
    pairs = load_benchmark(st.scale, st.hr_dir, st.lr_dir, st.eval_crop)
    bench_name = f'`{st.hr_dir}`' if st.hr_dir else 'bundled held-out photos'
    bicubic = evaluate(lambda lr: bicubic_upscale(lr, st.scale), pairs, st.scale, 'bicubic')
    sampler = PatchSampler([load_photo(n) for n in TRAIN_PHOTOS], st.scale) if st.iters else None
    rows, outputs = [], {'Bicubic': bicubic[2]}

    for name in tqdm(st.models, desc='models', unit='model'):
        opt = network_options(name, st.scale, st.configs)
        net = build_model(opt)
        row = {'model': name, 'config': describe_options(opt), 'params': count_parameters(net),
               'macs': count_macs(net, (st.flops_size, st.flops_size), opt.get('num_in_ch', 3))}
        prof = profile_model(net, st.sizes, st.repeats, device, opt.get('num_in_ch', 3))
        for p in prof:
            row[f'latency_ms@{p["size"]}'] = p['latency_ms']
            row[f'peak_mem_mib@{p["size"]}'] = p['peak_mem_mib']
        pix = [p['pixels'] for p in prof]
        row['latency_growth'] = growth_exponent(pix, [p['latency_ms'] for p in prof])
        row['memory_growth'] = growth_exponent(pix, [max(p['peak_mem_mib'], 1e-9) for p in prof])
        del net
        if name in st.checkpoints:
            net, _ = load_zoo_checkpoint(name, st.checkpoints[name], opt)
            psnr, ssim, outs = evaluate(make_upscaler(net, st.scale, device=device), pairs, st.scale, f'{name} ckpt')
            row.update(ckpt_psnr=psnr, ckpt_ssim=ssim)
            outputs[name] = outs
            del net
        if st.iters and name in st.budget_configs:
            bopt = network_options(name, st.scale, st.budget_configs)
            torch.manual_seed(st.seed)
            bnet = build_model(bopt)
            stats = train_same_budget(bnet, sampler, st.iters, st.batch_size, st.lr_patch, st.learning_rate, st.seed,
                                      device, desc=f'train {name}')
            psnr, ssim, outs = evaluate(make_upscaler(bnet, st.scale, device=device), pairs, st.scale, name)
            row.update(budget_config=describe_options(bopt), budget_params=count_parameters(bnet),
                       budget_macs=count_macs(bnet, (st.flops_size, st.flops_size), bopt.get('num_in_ch', 3)),
                       budget_psnr=psnr, budget_ssim=ssim, budget_train_s=stats['seconds'],
                       budget_first_loss=stats['first_loss'], budget_last_loss=stats['last_loss'])
            outputs.setdefault(name, outs)
        for dataset, (psnr, ssim, source) in published.get(name, {}).items():
            row[f'published_psnr_{dataset}'] = psnr
            row[f'published_ssim_{dataset}'] = ssim
            row['published_source'] = source
        rows.append(row)

    result = {'rows': rows, 'bicubic': {'psnr': bicubic[0], 'ssim': bicubic[1]}, 'published': published,
              'benchmark': bench_name, 'num_images': len(pairs), 'settings': st, 'threads': torch.get_num_threads(),
              'device': str(device), 'files': []}
    result['files'].append(write_csv(os.path.join(output_dir, 'model_zoo.csv'), rows))
    result['files'] += write_plots(output_dir, result)
    crop_name = st.crop_image or next(iter(pairs))
    if crop_name not in pairs:
        raise KeyError(f'crop image {crop_name!r} is not in the benchmark ({list(pairs)})')
    result['files'].append(write_crop_grid(os.path.join(output_dir, 'crop_grid.png'), pairs[crop_name][0],
                                           {k: v[crop_name] for k, v in outputs.items()}, st.scale))
    result['crop_image'] = crop_name
    result['files'].append(write_markdown(os.path.join(output_dir, 'model_zoo.md'), result))
    return result
