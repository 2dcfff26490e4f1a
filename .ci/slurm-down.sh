#!/usr/bin/env bash
# Stop what .ci/slurm-up.sh started (jobs, slurmd, slurmctld, slurmdbd, MariaDB, munged).
# Tolerant of things already stopped. Leaves config and /tmp/backprop-slurm in place.
set -uo pipefail

BASE=/tmp/backprop-slurm

stop_pidfile() { # name pidfile
  local pid
  [[ -s $2 ]] || return 0
  pid=$(cat "$2")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    echo "slurm-down: stopped $1 ($pid)"
  fi
  rm -f "$2"
}

# Cancel whatever is still queued or running so no slurmstepd/job processes linger.
if [[ -s $BASE/run/slurmctld.pid ]] && kill -0 "$(cat "$BASE/run/slurmctld.pid")" 2>/dev/null; then
  jobs=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ')
  if [[ -n ${jobs// /} ]]; then
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null
    for _ in $(seq 50); do [[ -z $(squeue -h -o %A 2>/dev/null) ]] && break; sleep 0.2; done
  fi
fi

stop_pidfile slurmd "$BASE/run/slurmd.pid"
stop_pidfile slurmctld "$BASE/run/slurmctld.pid"
stop_pidfile slurmdbd "$BASE/run/slurmdbd.pid"
stop_pidfile mariadbd "$BASE/run/mysqld.pid"
stop_pidfile munged /run/munge/munged.pid
exit 0
