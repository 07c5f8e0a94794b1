#!/usr/bin/env bash
# Shared by tools/dist_*.sh and tools/slurm_*.sh (sourced): the argument
# checks (a bad argument ends with one "error: ..." line and exit status 1
# before any process is launched, as the Python tools do) and the two
# launchers.
TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# check_count NAME VALUE: VALUE is an integer >= 1
check_count() {
    if ! [[ "$2" =~ ^[1-9][0-9]*$ ]]; then
        echo "error: $1 must be an integer >= 1, got '$2'" >&2
        exit 1
    fi
}

# check_file WHAT PATH: PATH is an existing, non-empty file
check_file() {
    if [ -d "$2" ]; then
        echo "error: $1: $2 is a folder; expected a file" >&2
        exit 1
    elif [ ! -f "$2" ]; then
        echo "error: $1 file not found: $2" >&2
        exit 1
    elif [ ! -s "$2" ]; then
        echo "error: $1: $2 is an empty file (0 bytes)" >&2
        exit 1
    fi
}

# check_config PATH: an existing config file
check_config() {
    check_file config "$1"
}

# need_command NAME HINT: NAME is on PATH
need_command() {
    if ! command -v "$1" > /dev/null 2>&1; then
        echo "error: $1 not found on PATH ($2)" >&2
        exit 1
    fi
}

# launch_torchrun GPUS SCRIPT ARGS...: SCRIPT (train.py / test.py) with
# ARGS in GPUS processes on this node (NNODES, NODE_RANK, PORT,
# MASTER_ADDR from the environment)
launch_torchrun() {
    local gpus=$1 script=$2
    shift 2
    local nnodes=${NNODES:-1}
    check_count GPUS "$gpus"
    check_count NNODES "$nnodes"
    need_command torchrun "install PyTorch in this environment"
    PYTHONPATH="$TOOLS_DIR/..":${PYTHONPATH:-} \
    torchrun \
        --nnodes="$nnodes" \
        --node_rank="${NODE_RANK:-0}" \
        --master_addr="${MASTER_ADDR:-127.0.0.1}" \
        --nproc_per_node="$gpus" \
        --master_port="${PORT:-29500}" \
        "$TOOLS_DIR/$script" "$@"
}

# launch_srun PARTITION JOB_NAME SCRIPT ARGS...: SCRIPT with ARGS under
# Slurm (GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS from the
# environment)
launch_srun() {
    local partition=$1 job_name=$2 script=$3
    shift 3
    local gpus=${GPUS:-4} per_node=${GPUS_PER_NODE:-4}
    local cpus=${CPUS_PER_TASK:-5}
    check_count GPUS "$gpus"
    check_count GPUS_PER_NODE "$per_node"
    check_count CPUS_PER_TASK "$cpus"
    need_command srun "not a Slurm machine? use tools/dist_*.sh"
    set -x
    # SRUN_ARGS is split into words on purpose (several srun options)
    PYTHONPATH="$TOOLS_DIR/..":${PYTHONPATH:-} \
    srun -p "$partition" \
        --job-name="$job_name" \
        --gres=gpu:"$per_node" \
        --ntasks="$gpus" \
        --ntasks-per-node="$per_node" \
        --cpus-per-task="$cpus" \
        --kill-on-bad-exit=1 \
        ${SRUN_ARGS:-} \
        python -u "$TOOLS_DIR/$script" "$@"
}
