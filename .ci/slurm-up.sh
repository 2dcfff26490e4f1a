#!/usr/bin/env bash
# Start a real single-node Slurm cluster on this machine (Debian 12, root, no systemd)
# for backprop's Slurm-executor tests. Idempotent: a second run leaves a healthy
# cluster alone. Stop it with .ci/slurm-down.sh. See .ci/SLURM.md.
set -euo pipefail

BASE=/tmp/backprop-slurm
ETC=/etc/slurm
NODE=$(hostname -s)
START=$(date +%s)

log() { echo "slurm-up: $*" >&2; }

# ---- packages ---------------------------------------------------------------
need=()
for pair in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge \
            slurmdbd:slurmdbd mariadbd:mariadb-server; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if ((${#need[@]})); then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # postinst scripts try invoke-rc.d; without an init system that is denied, harmlessly.
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
    || apt-get install -y --no-install-recommends "${need[@]}"
fi

mkdir -p "$BASE"/{state,spool,log,run}
# slurmctld/slurmd must resolve the node name (SlurmctldHost=$NODE).
if ! getent hosts "$NODE" >/dev/null; then
  log "adding $NODE to /etc/hosts"
  echo "127.0.0.1 $NODE" >>/etc/hosts
fi
alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# ---- munge ------------------------------------------------------------------
if [[ ! -s /etc/munge/munge.key ]]; then
  log "creating munge key"
  mkdir -p /etc/munge
  mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
    || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown -R munge:munge /etc/munge
chmod 700 /etc/munge
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
chmod 755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "starting munged"
  rm -f /run/munge/munged.pid /run/munge/munge.socket.2*
  runuser -u munge -- /usr/sbin/munged --force
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.1
  done
  munge -n | unmunge >/dev/null
fi

# ---- MariaDB (private instance for slurmdbd) --------------------------------
# sacct needs slurmdbd: without it, it only says "Slurm accounting storage is disabled".
DB_PORT=3307
DB_SOCK=$BASE/run/mysqld.sock
DB_PASS=backprop-ci
db() { mariadb --no-defaults -uroot --socket="$DB_SOCK" "$@"; }
if [[ ! -d $BASE/mysql/mysql ]]; then
  log "initialising MariaDB in $BASE/mysql"
  rm -rf "$BASE/mysql"
  mariadb-install-db --no-defaults --user=root --datadir="$BASE/mysql" \
    --auth-root-authentication-method=socket --skip-test-db >"$BASE/log/mysql-install.log" 2>&1
fi
if ! alive "$BASE/run/mysqld.pid"; then
  log "starting MariaDB"
  setsid nohup mariadbd --no-defaults --user=root --datadir="$BASE/mysql" \
    --socket="$DB_SOCK" --port=$DB_PORT --bind-address=127.0.0.1 \
    --pid-file="$BASE/run/mysqld.pid" --log-error="$BASE/log/mysqld.log" \
    --innodb-buffer-pool-size=128M --innodb-log-file-size=64M --innodb-lock-wait-timeout=900 \
    --skip-name-resolve </dev/null >/dev/null 2>&1 &
fi
for _ in $(seq 300); do db -e 'select 1' >/dev/null 2>&1 && break; sleep 0.1; done
db -e 'select 1' >/dev/null
db -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
  CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"

# ---- fake GPU ---------------------------------------------------------------
# A character device with NVIDIA's major number; slurmd only needs it to exist.
GPU_DEV=$BASE/nvidia0
[[ -c $GPU_DEV ]] || { rm -f "$GPU_DEV"; mknod -m 666 "$GPU_DEV" c 195 0; }

# ---- config -----------------------------------------------------------------
# Node shape as slurmd itself sees it (CPUs, sockets, cores, threads, RealMemory).
read -r -a shape <<<"$(slurmd -C | head -1)"
node_line=""
for kv in "${shape[@]}"; do
  case $kv in
    NodeName=*) ;;
    RealMemory=*) mem=${kv#RealMemory=}; node_line+=" RealMemory=$((mem * 9 / 10))" ;;
    *) node_line+=" $kv" ;;
  esac
done
mkdir -p "$ETC"
conf=$(cat <<EOF
# Written by backprop's .ci/slurm-up.sh: a one-node test cluster.
ClusterName=backprop
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job may start again once its credential expires (120 s by default).
AuthInfo=cred_expire=10
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
ReturnToService=2
MinJobAge=10
MaxArraySize=10001
MaxJobCount=20000
KillWait=5
InactiveLimit=0
Waittime=0
SchedulerParameters=sched_interval=1,bf_interval=1
MpiDefault=none
MailProg=/bin/true
JobCompType=jobcomp/filetxt
JobCompLoc=$BASE/log/jobcomp.txt
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$NODE
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
GresTypes=gpu
NodeName=$NODE$node_line Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=short Nodes=$NODE Default=NO MaxTime=5 State=UP
EOF
)
gres="NodeName=$NODE Name=gpu File=$GPU_DEV"
dbdconf=$(cat <<EOF
# Written by backprop's .ci/slurm-up.sh.
AuthType=auth/munge
DbdHost=$NODE
DbdPort=6819
SlurmUser=root
PidFile=$BASE/run/slurmdbd.pid
LogFile=$BASE/log/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
)
changed=0
[[ -f $ETC/slurm.conf && "$(cat "$ETC/slurm.conf")" == "$conf" ]] || { printf '%s\n' "$conf" >"$ETC/slurm.conf"; changed=1; }
[[ -f $ETC/gres.conf && "$(cat "$ETC/gres.conf")" == "$gres" ]] || { printf '%s\n' "$gres" >"$ETC/gres.conf"; changed=1; }
[[ -f $ETC/slurmdbd.conf && "$(cat "$ETC/slurmdbd.conf")" == "$dbdconf" ]] || { printf '%s\n' "$dbdconf" >"$ETC/slurmdbd.conf"; changed=1; }
chmod 600 "$ETC/slurmdbd.conf"

# ---- daemons ----------------------------------------------------------------
stop() { # pidfile: TERM, wait up to 10 s, then KILL
  local pid
  alive "$1" || return 0
  pid=$(cat "$1")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}
if ((changed)); then
  log "config changed; (re)starting daemons"
  for d in slurmd slurmctld slurmdbd; do stop "$BASE/run/$d.pid"; done
fi
if ! alive "$BASE/run/slurmdbd.pid"; then
  log "starting slurmdbd"
  slurmdbd
fi
for _ in $(seq 150); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.2; done
if ! sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx backprop; then
  sacctmgr -i add cluster backprop >/dev/null
fi
if ! alive "$BASE/run/slurmctld.pid"; then
  log "starting slurmctld"
  slurmctld -i
fi
if ! alive "$BASE/run/slurmd.pid"; then
  log "starting slurmd"
  slurmd
fi

# ---- wait for the node ------------------------------------------------------
state=""
for _ in $(seq 120); do
  state=$(sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -1 || true)
  [[ $state == idle || $state == mixed || $state == allocated ]] && break
  case $state in down*|drain*|fail*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;; esac
  sleep 0.5
done
if [[ $state != idle && $state != mixed && $state != allocated ]]; then
  log "node $NODE not ready (state '${state:-none}'); last log lines:"
  tail -n 20 "$BASE/log/slurmctld.log" "$BASE/log/slurmd.log" >&2 || true
  exit 1
fi
echo "slurm up: node $NODE ($state)$node_line Gres=gpu:1 partition=debug in $(($(date +%s) - START))s; logs in $BASE/log"
