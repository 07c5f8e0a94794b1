#!/usr/bin/env bash
# Usage: GPUS=8 bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [args...]
# (GPUS_PER_NODE, CPUS_PER_TASK and SRUN_ARGS from the environment too)
set -u
if [ $# -lt 3 ]; then
    echo "usage: GPUS=8 bash $0 PARTITION JOB_NAME CONFIG [train.py args...]" >&2
    exit 2
fi
source "$(dirname "$0")/dist_common.sh"
check_config "$3"
launch_srun "$1" "$2" train.py "$3" --launcher=slurm "${@:4}"
