#!/usr/bin/env bash
# Install and start a single-node Slurm on localhost for the tests (Debian 12, root, no systemd):
# slurmctld + slurmd + munge, and with --with-dbd MariaDB + slurmdbd so `sacct` works. Daemons run in
# the background; logs and state go to /tmp/slurm/. Recipe measured in shared/notes/env.md.
# Usage: scripts/slurm-up.sh [--with-dbd]        Stop: scripts/slurm-down.sh
set -euo pipefail
WITH_DBD=0; [ "${1:-}" = "--with-dbd" ] && WITH_DBD=1
export DEBIAN_FRONTEND=noninteractive
PKGS="slurmctld slurmd slurm-client munge"
[ $WITH_DBD = 1 ] && PKGS="$PKGS slurmdbd mariadb-server"
missing=0; for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing=1; done
if [ $missing = 1 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
fi
if sinfo -h -o %T 2>/dev/null | grep -q '^idle'; then echo "slurm ready (already running)"; exit 0; fi
S=/tmp/slurm
cd /  # the daemons (and every job's slurmstepd) must not keep a working directory that may be deleted
mkdir -p /etc/slurm $S/state $S/spool /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then mungekey --create; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; fi
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
munge -n | unmunge >/dev/null
ACCT="AccountingStorageType=accounting_storage/none"
if [ $WITH_DBD = 1 ]; then
  ACCT=$'AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=localhost'
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  if ! pgrep -x mariadbd >/dev/null; then
    /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 >$S/mariadb.out 2>&1 &
    echo $! > $S/mariadb.daemon.pid
    for i in $(seq 100); do mariadb -uroot -e 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
  fi
  mariadb -uroot -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db; CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  cat > /etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$S/slurmdbd.log
PidFile=$S/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StoragePort=3306
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
CONF
  chmod 600 /etc/slurm/slurmdbd.conf
  slurmdbd -D >$S/slurmdbd.out 2>&1 &
  echo $! > $S/slurmdbd.daemon.pid
  for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/6819) 2>/dev/null && break; sleep 0.2; done
fi
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=torcci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
ReturnToService=2
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/slurmctld.log
SlurmdLogFile=$S/slurmd.log
$ACCT
JobCompType=jobcomp/filetxt
JobCompLoc=$S/jobcomp.txt
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
MinJobAge=30
KillWait=5
OverTimeLimit=0
InactiveLimit=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 Sockets=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -D >$S/slurmctld.out 2>&1 &
echo $! > $S/slurmctld.daemon.pid
slurmd -D -N localhost >$S/slurmd.out 2>&1 &
echo $! > $S/slurmd.daemon.pid
for i in $(seq 100); do sinfo -h -o %T 2>/dev/null | grep -q '^idle' && { echo "slurm ready"; exit 0; }; sleep 0.2; done
echo "slurm failed to start" >&2; tail -n 30 $S/*.log >&2; exit 1
