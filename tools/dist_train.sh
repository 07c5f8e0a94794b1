#!/usr/bin/env bash
# Usage: bash tools/dist_train.sh CONFIG GPUS [train.py args...]
# GPUS: processes on this node (an integer >= 1). Checked here, before
# torchrun starts GPUS processes that would each print the same error.
set -u
if [ $# -lt 2 ]; then
    echo "usage: bash $0 CONFIG GPUS [train.py args...]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
source "$(dirname "$0")/dist_checks.sh"
check_count GPUS "$GPUS"
check_count NNODES "$NNODES"
check_config "$CONFIG"
need_command torchrun "install PyTorch in this environment"

PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-} \
torchrun \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
