#!/bin/sh
# fail.sh STATE_FILE CODE: always exits CODE, recording each run.
echo run >> "$1"
exit "$2"
