#!/usr/bin/env bash
# Stop what scripts/slurm-up.sh started (by pid file only).
for d in slurmd slurmctld slurmdbd mariadb; do
  f=/tmp/slurm/$d.daemon.pid; [ -f $f ] && kill "$(cat $f)" 2>/dev/null; rm -f $f
done
[ -f /run/munge/munged.pid ] && kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
