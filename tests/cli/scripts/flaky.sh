#!/bin/sh
# flaky.sh STATE_FILE FAILURES: fails (exit 1) FAILURES times, then succeeds.
# Each run appends a line to STATE_FILE, so the test can count attempts.
echo run >> "$1"
runs=$(wc -l < "$1")
[ "$runs" -gt "$2" ] && exit 0
exit 1
