#!/usr/bin/env bash
# Stop what .ci/slurm-up.sh started. Tolerant of things already stopped.
set -uo pipefail

BASE=/tmp/backprop-slurm

stop_pidfile() { # name pidfile
  local pid
  [[ -s $2 ]] || return 0
  pid=$(cat "$2")
  kill -0 "$pid" 2>/dev/null || { rm -f "$2"; return 0; }
  kill "$pid" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  rm -f "$2"
  echo "slurm-down: stopped $1 ($pid)"
}

stop_pidfile slurmd "$BASE/run/slurmd.pid"
stop_pidfile slurmctld "$BASE/run/slurmctld.pid"
stop_pidfile munged /run/munge/munged.pid
exit 0
