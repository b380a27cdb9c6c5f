"""Report writing of the comparison: ``model_zoo.csv``, ``model_zoo.md``, the plots and the crop grid."""
import csv
import cv2
import io
import logging
import math
import numpy as np
import os
from basicsr.metrics import calculate_psnr
from typing import List, Mapping, Sequence, Tuple

from msrn_plugin.utils.atomic import atomic_write
from msrn_plugin.utils.image_io import write_image
from msrn_plugin.zoo.published import PUBLISHED_DATASETS

logger = logging.getLogger(__name__)


def _atomic_text(path: str, text: str) -> str:
    with atomic_write(path, 'w', encoding='utf-8', newline='') as f:
        f.write(text)
    return path


def write_csv(path: str, rows: Sequence[Mapping]) -> str:
    """All measured columns (union over rows, first-seen order); lists are joined with ';'."""
    columns: List[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator='\n')
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f'{v:.6g}' if isinstance(v, float) else v) for k, v in row.items()})
    return _atomic_text(path, buf.getvalue())


def _fmt(value, spec: str = '.2f') -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    return format(value, spec)


def write_markdown(path: str, result: Mapping) -> str:
    """The human-readable report: what was measured, how, on what, and the published figures beside it."""
    st, rows = result['settings'], result['rows']
    s = st.scale
    lines = [f'# Model zoo x{s}: MSRN vs EDSR / RCAN (BasicSR registry)', '']
    if st.quick:
        lines += ['> **Quick run** (`--quick`): small sizes and a short training budget; a smoke test of the '
                  'pipeline, not figures to quote.', '']
    lines += ['## Configurations (papers\' models)', '', '| model | network options | parameters | '
              f'MACs at 1x3x{st.flops_size}x{st.flops_size} (G) |', '|---|---|---:|---:|']
    for r in rows:
        lines.append(f"| {r['model']} | `{r['config']}` | {r['params']:,} | {r['macs'] / 1e9:.2f} |")
    lines += ['', 'MACs: multiply-accumulates of convolution/linear layers counted by `mmengine.analysis` '
              '(1 MAC = 2 FLOPs; element-wise ops not counted), for one LR input of the size shown.', '']
    sizes = st.sizes
    lines += [f'## Speed and memory (this machine: {result["device"]}, {result["threads"]} thread(s), fp32, batch 1)',
              '', '| model | ' + ' | '.join(f'latency {z}x{z} (ms)' for z in sizes) + ' | '
              + ' | '.join(f'peak mem {z}x{z} (MiB)' for z in sizes) + ' | latency ~ pixels^k | memory ~ pixels^k |',
              '|---|' + '---:|' * (2 * len(sizes) + 2)]
    for r in rows:
        lines.append(f"| {r['model']} | " + ' | '.join(_fmt(r.get(f'latency_ms@{z}'), '.1f') for z in sizes) + ' | '
                     + ' | '.join(_fmt(r.get(f'peak_mem_mib@{z}'), '.1f') for z in sizes)
                     + f" | {_fmt(r.get('latency_growth'))} | {_fmt(r.get('memory_growth'))} |")
    lines += ['', f'Latency: median of {st.repeats} forward passes after one warm-up (sizes are LR inputs). Peak '
              'memory: PyTorch tensor memory allocated during one forward pass (profiler events; oneDNN scratch '
              'excluded). k: slope of log(value) over log(pixels); 1 = proportional to the pixel count.', '']
    bic = result['bicubic']
    bench = f"{result['benchmark']} ({result['num_images']} images" + (f', {st.eval_crop}px centre crops)'
                                                                         if st.eval_crop else ')')
    if any('budget_psnr' in r for r in rows):
        lines += ['## Same-budget training (measured here)', '',
                  f'Each slim model trained {st.iters} iterations, batch {st.batch_size} of {st.lr_patch}x'
                  f'{st.lr_patch} LR patches, L1, Adam lr {st.learning_rate:g}, seed {st.seed}, identical batches, '
                  f'on the bundled training photos; evaluated on {bench}: Y-channel PSNR/SSIM, {s}-pixel border '
                  'cropped, LR by MATLAB bicubic.', '',
                  '| model | slim network options | parameters | train time (s) | L1 first -> last 10% | PSNR | SSIM |',
                  '|---|---|---:|---:|---|---:|---:|',
                  f"| Bicubic | - | - | - | - | {bic['psnr']:.2f} | {bic['ssim']:.4f} |"]
        for r in rows:
            if 'budget_psnr' in r:
                lines.append(f"| {r['model']} | `{r['budget_config']}` | {r['budget_params']:,} | "
                             f"{r['budget_train_s']:.0f} | {r['budget_first_loss']:.4f} -> {r['budget_last_loss']:.4f}"
                             f" | {r['budget_psnr']:.2f} | {r['budget_ssim']:.4f} |")
        lines.append('')
    if any('ckpt_psnr' in r for r in rows):
        lines += [f'## Given checkpoints on {bench} (measured here)', '', '| model | checkpoint | PSNR | SSIM |',
                  '|---|---|---:|---:|', f"| Bicubic | - | {bic['psnr']:.2f} | {bic['ssim']:.4f} |"]
        for r in rows:
            if 'ckpt_psnr' in r:
                lines.append(f"| {r['model']} | `{st.checkpoints[r['model']]}` | {r['ckpt_psnr']:.2f} | "
                             f"{r['ckpt_ssim']:.4f} |")
        lines.append('')
    published = result['published']
    if published:
        lines += [f'## Published results x{s} (not measured here)', '',
                  'PSNR / SSIM as **published** by the papers (Y channel, DIV2K-trained full models), from '
                  '`published_results.csv`; the source of each row is named. EDSR-M has no published row there.', '',
                  '| model (published) | ' + ' | '.join(PUBLISHED_DATASETS) + ' | source |',
                  '|---|' + '---|' * (len(PUBLISHED_DATASETS) + 1)]
        for r in rows:
            if r['model'] in published:
                pub = published[r['model']]
                cells = [f'{pub[d][0]:.2f} / {pub[d][1]:.4f}' if d in pub else '-' for d in PUBLISHED_DATASETS]
                source = next(iter(pub.values()))[2]
                lines.append(f"| {r['model']} (published) | " + ' | '.join(cells) + f' | {source} |')
        lines.append('')
    images = [os.path.basename(f) for f in result['files'] if f.endswith('.png')]
    lines += ['## Figures', ''] + [f'![{name}]({name})' for name in images]
    lines += ['', f"Crop grid image: `{result.get('crop_image')}` (HR, bicubic, then each model: given checkpoint if "
              'any, else its same-budget slim model).', '']
    return _atomic_text(path, '\n'.join(lines))


def write_plots(output_dir: str, result: Mapping) -> List[str]:
    """``psnr_vs_params.png``, ``psnr_vs_flops.png`` (paper style: PSNR over size, one labelled point per model) and
    ``latency_vs_pixels.png``. Needs matplotlib (an mmengine dependency); without it the plots are skipped."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        from matplotlib import ticker
    except ImportError:
        logger.warning('matplotlib is not installed (pip install matplotlib): plots skipped.')
        return []
    st, rows, published = result['settings'], result['rows'], result['published']
    files = []
    pub_set = 'Set5'
    for key, label, budget_key, fname in (('params', 'parameters (M)', 'budget_params', 'psnr_vs_params.png'),
                                          ('macs', f'GMACs at {st.flops_size}x{st.flops_size} LR input',
                                           'budget_macs', 'psnr_vs_flops.png')):
        panels = []
        if any(pub_set in published.get(r['model'], {}) for r in rows):
            panels.append(('published', f'published PSNR, {pub_set} x{st.scale} (papers)', key))
        if any('budget_psnr' in r for r in rows):
            panels.append(('budget', f'measured PSNR, same budget ({st.iters} it), {result["benchmark"]}',
                           budget_key))
        if not panels:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
        for ax, (kind, title, xkey) in zip(axes[0], panels):
            for r in rows:
                if kind == 'published':
                    if pub_set not in published.get(r['model'], {}):
                        continue
                    y = published[r['model']][pub_set][0]
                else:
                    if 'budget_psnr' not in r:
                        continue
                    y = r['budget_psnr']
                x = r[xkey] / (1e6 if 'params' in xkey else 1e9)
                mine = r['model'].startswith('MSRN')
                ax.scatter([x], [y], s=120 if mine else 60, marker='*' if mine else 'o',
                           color='red' if mine else 'tab:blue', zorder=3)
                ax.annotate(r['model'], (x, y), textcoords='offset points', xytext=(6, 4))
            if kind == 'budget':
                ax.axhline(result['bicubic']['psnr'], color='gray', ls='--', lw=1, label='bicubic')
                ax.legend(loc='best')
            ax.margins(x=0.2, y=0.15)
            ax.set_xlabel(label if kind == 'published' else f'{label}, slim models')
            ax.set_ylabel('PSNR (dB)')
            ax.set_title(title, fontsize=10)
            ax.grid(True, which='both', alpha=0.3)
        fig.tight_layout()
        files.append(os.path.join(output_dir, fname))
        fig.savefig(files[-1], dpi=120)
        plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in rows:
        pix = [z * z for z in st.sizes]
        axes[0].plot(pix, [r[f'latency_ms@{z}'] for z in st.sizes], 'o-', label=r['model'])
        axes[1].plot(pix, [r[f'peak_mem_mib@{z}'] for z in st.sizes], 'o-', label=r['model'])
    for ax, ylabel in zip(axes, ('latency (ms)', 'peak tensor memory (MiB)')):
        ax.set_xscale('log')
        ax.set_yscale('log')
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f'{v:g}'))
            axis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel('LR input pixels')
        ax.set_ylabel(ylabel)
        ax.grid(True, which='both', alpha=0.3)
        ax.legend()
    axes[0].set_title(f'{result["device"]} forward, {result["threads"]} thread(s), fp32', fontsize=10)
    fig.tight_layout()
    files.append(os.path.join(output_dir, 'latency_vs_pixels.png'))
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)
    return files


def pick_crop(hr: np.ndarray, size: int) -> Tuple[int, int]:
    """Top-left corner of the ``size`` x ``size`` window with the most gradient energy (a detailed region)."""
    gray = cv2.cvtColor(hr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    energy = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    h, w = gray.shape
    size = min(size, h, w)
    best, corner = -1.0, (0, 0)
    step = max(size // 4, 1)
    for top in range(0, h - size + 1, step):
        for left in range(0, w - size + 1, step):
            value = float(energy[top:top + size, left:left + size].sum())
            if value > best:
                best, corner = value, (top, left)
    return corner


def write_crop_grid(path: str, hr: np.ndarray, outputs: Mapping[str, np.ndarray], scale: int,
                    crop: int = 96, zoom: int = 2) -> str:
    """One row of crops: HR, then each output (bicubic first), each labelled with its name and crop PSNR."""
    top, left = pick_crop(hr, crop)
    crop = min(crop, *hr.shape[:2])
    tiles = []
    for name, img in [('HR', hr)] + list(outputs.items()):
        patch = img[top:top + crop, left:left + crop]
        if name != 'HR':
            name = f'{name} {calculate_psnr(patch, hr[top:top + crop, left:left + crop], 0, test_y_channel=True):.2f}dB'
        patch = cv2.resize(patch, (crop * zoom, crop * zoom), interpolation=cv2.INTER_NEAREST)
        bar = np.full((22, patch.shape[1], 3), 255, np.uint8)
        cv2.putText(bar, name, (3, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(np.vstack([bar, patch]))
        tiles.append(np.full((tiles[-1].shape[0], 4, 3), 255, np.uint8))
    write_image(path, np.hstack(tiles[:-1]))
    return path
