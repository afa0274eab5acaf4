#!/usr/bin/env bash
# Stop the sshd that scripts/sshd-up.sh started (by its pid file only).
f=/tmp/torc-sshd/sshd.pid
[ -f $f ] && kill "$(cat $f)" 2>/dev/null
rm -f $f
exit 0
