#!/bin/sh
# trap_int.sh STATE_FILE: records the run; on SIGINT writes "INT" and exits 5.
trap 'echo INT >> "$1"; exit 5' INT
echo run >> "$1"
i=0
while [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
