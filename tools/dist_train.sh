#!/usr/bin/env bash
# Usage: bash tools/dist_train.sh CONFIG GPUS [train.py args...]
# GPUS: processes on this node (an integer >= 1). Checked here, before
# torchrun starts GPUS processes that would each print the same error.
set -u
if [ $# -lt 2 ]; then
    echo "usage: bash $0 CONFIG GPUS [train.py args...]" >&2
    exit 2
fi
source "$(dirname "$0")/dist_common.sh"
check_config "$1"
launch_torchrun "$2" train.py "$1" --launcher pytorch "${@:3}"
