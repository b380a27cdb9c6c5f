"""Print MSRN inference speed on this machine against the practical roofline of a single large 5x5 convolution.

Example::

    python scripts/benchmark_inference.py                      # paper MSRN x4, random weights, CPU
    python scripts/benchmark_inference.py --sizes 32 64 128 --tile_image 192 --tile 96 --threads 2
    python scripts/benchmark_inference.py --device cuda        # adds bf16 and channels_last on a GPU

Prints forward latency (median and fastest of --repeats runs) and achieved GFLOP/s (2 x mmengine MACs / time) at
several LR sizes, the GFLOP/s of one 64->64 5x5 convolution (MSRN's dominant operation; "% roofline" compares the
fastest runs, the better estimate on a shared machine), and whole-image vs exactly tiled inference (time, peak
memory, largest output difference). Speed does not depend on the weights, so a checkpoint is optional.

On a machine shared with other jobs, use ``--threads 1``: with more threads than free cores, every parallel region
waits for descheduled threads and the timings measure the contention, not the network.
"""
import argparse
import platform
import sys
import torch

from msrn_plugin.bench.inference_bench import benchmark_inference, benchmark_tiling, conv_roofline
from msrn_plugin.inference import add_network_arguments, load_msrn
from msrn_plugin.utils.checkpoint import CheckpointError
from msrn_plugin.zoo import build_model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model_path', default=None, help='MSRN checkpoint (default: random paper MSRN)')
    add_network_arguments(parser)
    parser.add_argument('--scale', type=int, default=4, choices=(2, 3, 4, 8), help='without --model_path (default 4)')
    parser.add_argument('--num_feat', type=int, default=64, help='without --model_path (default 64)')
    parser.add_argument('--num_block', type=int, default=8, help='without --model_path (default 8)')
    parser.add_argument('--sizes', type=int, nargs='+', default=[32, 48, 64], help='LR sizes (default 32 48 64)')
    parser.add_argument('--repeats', type=int, default=5, help='timed runs per size (default 5)')
    parser.add_argument('--threads', type=int, default=None, help='CPU threads (default: torch\'s default)')
    parser.add_argument('--roofline_size', type=int, default=128, help='side of the 5x5 conv roofline input')
    parser.add_argument('--tile_image', type=int, default=96, help='LR side of the tiling comparison (default 96)')
    parser.add_argument('--tile', type=int, default=48, help='tile size of the tiling comparison (default 48)')
    parser.add_argument('--tile_repeats', type=int, default=1, help='timed runs per tiling mode (default 1)')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default=None, help='default: cuda when available')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    if device.type == 'cuda' and not torch.cuda.is_available():
        print('error: --device cuda, but no CUDA device is available.', file=sys.stderr)
        return 1
    try:
        if args.model_path:
            net, opt = load_msrn(args.model_path, img_range=args.img_range, global_residual=args.global_residual)
        else:
            opt = {'type': 'MSRN', 'num_feat': args.num_feat, 'num_block': args.num_block, 'upscale': args.scale}
            net = build_model(opt)
    except CheckpointError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    where = torch.cuda.get_device_name(device) if device.type == 'cuda' else \
        f'{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} thread(s)'
    print(f'MSRN x{opt["upscale"]} (num_feat {opt["num_feat"]}, num_block {opt["num_block"]}) on {where}; '
          f'torch {torch.__version__}; batch 1; median of {args.repeats} runs')
    variants = [(torch.float32, False)]
    if device.type == 'cuda':
        variants += [(torch.float32, True), (torch.bfloat16, False), (torch.bfloat16, True)]
    for dtype, channels_last in variants:
        tag = f'{str(dtype).replace("torch.", "")}{", channels_last" if channels_last else ""}'
        roof = conv_roofline(opt['num_feat'], args.roofline_size, 5, args.repeats, device, dtype, channels_last)
        print(f'\n[{tag}] roofline: one {opt["num_feat"]}->{opt["num_feat"]} 5x5 conv on '
              f'{args.roofline_size}x{args.roofline_size}: {roof["latency_ms"]:.1f} ms, {roof["gflops_per_s"]:.1f} '
              f'GFLOP/s (fastest run {roof["best_gflops_per_s"]:.1f})')
        print(f'{"LR size":>9} {"GMACs":>8} {"median ms":>10} {"min ms":>8} {"GFLOP/s":>8} {"best":>6} '
              f'{"% roofline":>10} {"peak MiB":>9}')
        for row in benchmark_inference(net, args.sizes, args.repeats, device, dtype, channels_last):
            print(f'{row["size"]:>4}x{row["size"]:<4} {row["gmacs"]:>8.2f} {row["latency_ms"]:>10.1f} '
                  f'{row["min_latency_ms"]:>8.1f} {row["gflops_per_s"]:>8.1f} {row["best_gflops_per_s"]:>6.1f} '
                  f'{100 * row["best_gflops_per_s"] / roof["best_gflops_per_s"]:>9.0f}% {row["peak_mem_mib"]:>9.1f}')
    net = net.float()
    print(f'\nwhole image vs exact tiles, {args.tile_image}x{args.tile_image} LR, fp32:')
    print(f'{"mode":>14} {"latency ms":>11} {"peak MiB":>9} {"max |diff|":>11}')
    for row in benchmark_tiling(net, args.tile_image, args.tile, args.tile_repeats, device):
        print(f'{row["mode"]:>14} {row["latency_ms"]:>11.1f} {row["peak_mem_mib"]:>9.1f} {row["max_abs_diff"]:>11.2e}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
