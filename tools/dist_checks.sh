#!/usr/bin/env bash
# Checks shared by tools/dist_*.sh and tools/slurm_*.sh (sourced): a bad
# argument ends with one "error: ..." line and exit status 1 before any
# process is launched, as the Python tools do.

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
