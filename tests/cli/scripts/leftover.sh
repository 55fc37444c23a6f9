#!/bin/sh
# leftover.sh STATE_FILE: starts a background child that ignores SIGTERM,
# records its pid, and waits. Only SIGKILL to the process group ends the child.
( trap '' TERM; exec sleep 30 ) &
echo "$!" >> "$1"
wait
