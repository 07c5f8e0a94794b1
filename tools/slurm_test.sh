#!/usr/bin/env bash
# Usage: GPUS=8 bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [args...]
# (GPUS_PER_NODE, CPUS_PER_TASK and SRUN_ARGS from the environment too)
set -u
if [ $# -lt 4 ]; then
    echo "usage: GPUS=8 bash $0 PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args...]" >&2
    exit 2
fi
source "$(dirname "$0")/dist_common.sh"
check_config "$3"
check_file checkpoint "$4"
launch_srun "$1" "$2" test.py "$3" "$4" --launcher=slurm "${@:5}"
