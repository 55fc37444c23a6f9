#!/bin/sh
# ignore_term.sh STATE_FILE: ignores SIGTERM and hangs; only SIGKILL ends it (bounded at 60 s).
trap '' TERM
echo run >> "$1"
i=0
while [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
