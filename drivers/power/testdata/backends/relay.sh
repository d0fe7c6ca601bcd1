#!/bin/sh
# A scripted relay for power.Command: `relay.sh on|off|status|cycle` keeps its state in
# $RELAY_STATE/state and logs each action with $JSN_POWER_ACTION and $JSN_POWER_WAIT.
set -eu
dir=${RELAY_STATE:?RELAY_STATE not set}
echo "$1 action=${JSN_POWER_ACTION:-} wait=${JSN_POWER_WAIT:-}" >>"$dir/log"
case "$1" in
on|off) echo "$1" >"$dir/state" ;;
cycle) echo off >"$dir/state"; echo on >"$dir/state" ;;
status) echo "relay is $(cat "$dir/state" 2>/dev/null || echo off)" ;;
*) echo "relay.sh: unknown action $1" >&2; exit 2 ;;
esac
