#!/usr/bin/env bash
# Usage: GPUS=8 bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [args...]
set -u
if [ $# -lt 3 ]; then
    echo "usage: GPUS=8 bash $0 PARTITION JOB_NAME CONFIG [train.py args...]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
GPUS=${GPUS:-4}
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PY_ARGS=("${@:4}")
source "$(dirname "$0")/dist_checks.sh"
check_count GPUS "$GPUS"
check_count GPUS_PER_NODE "$GPUS_PER_NODE"
check_count CPUS_PER_TASK "$CPUS_PER_TASK"
check_config "$CONFIG"
need_command srun "not a Slurm machine? use tools/dist_train.sh"

set -x
# SRUN_ARGS is split into words on purpose (several srun options)
PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-} \
srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    --gres=gpu:"${GPUS_PER_NODE}" \
    --ntasks="${GPUS}" \
    --ntasks-per-node="${GPUS_PER_NODE}" \
    --cpus-per-task="${CPUS_PER_TASK}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    python -u "$(dirname "$0")/train.py" "${CONFIG}" --launcher="slurm" "${PY_ARGS[@]}"
