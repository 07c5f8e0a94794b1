#!/usr/bin/env bash
# Usage: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# GPUS: processes on this node (an integer >= 1). Checked here, before
# torchrun starts GPUS processes that would each print the same error.
set -u
if [ $# -lt 3 ]; then
    echo "usage: bash $0 CONFIG CHECKPOINT GPUS [test.py args...]" >&2
    exit 2
fi
source "$(dirname "$0")/dist_common.sh"
check_config "$1"
check_file checkpoint "$2"
launch_torchrun "$3" test.py "$1" "$2" --launcher pytorch "${@:4}"
