#!/usr/bin/env bash
# Distributed training with BasicSR's trainer and PyTorch's launcher (torchrun): DDP on GPUs (nccl) or CPUs (gloo).
#
# Usage: scripts/dist_train.sh NPROC OPT [train.py flags, e.g. --auto_resume]
#   NPROC  processes on this node (one per GPU; on a CPU-only node, e.g. one per socket or a few cores each)
#   OPT    option file, e.g. options/train_MSRN_x4.yml
# Environment (all optional):
#   PORT=4321              rendezvous port on the master node
#   NNODES=1 NODE_RANK=0   multi-node: run this script once per node with NODE_RANK=0..NNODES-1
#   MASTER_ADDR=127.0.0.1  address of the node with NODE_RANK=0 (multi-node: set it on every node)
#   PYTHON=python          interpreter that has msrn_plugin installed
# experiments/ and tb_logger/ are written under the current directory (on rank 0 only).
set -euo pipefail

if [ "$#" -lt 2 ]; then
    echo "Usage: $0 NPROC OPT [train.py flags]" >&2
    exit 2
fi
NPROC=$1
OPT=$2
shift 2

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TRAIN_PY="$SCRIPT_DIR/../msrn_plugin/train.py"

exec "${PYTHON:-python}" -m torch.distributed.run \
    --nproc_per_node="$NPROC" \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-4321}" \
    "$TRAIN_PY" -opt "$OPT" --launcher pytorch "$@"
