#!/bin/sh
# hang.sh STATE_FILE: records the run, then hangs (bounded at 60 s).
echo run >> "$1"
exec sleep 60
