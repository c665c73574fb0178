#!/usr/bin/env bash
# A real single-node SLURM (slurmctld + slurmd + munged) on localhost, for the cluster tests.
#   tests/cluster/slurm-localhost.sh setup      # install (apt), configure, start, wait for idle
#   tests/cluster/slurm-localhost.sh teardown   # stop every daemon by the PID recorded at start
#   tests/cluster/slurm-localhost.sh env        # print the export line for SLURM_CONF
# Runs as root, without systemd and without cgroups. State lives in $MILR_SLURM_DIR
# (default /tmp/milr-slurm, made with mode 0700 and refused if anyone else could write to it). The config goes where every SLURM client looks for it,
# /etc/slurm/slurm.conf: the executor plugin drops SLURM_* variables (SLURM_CONF too) inside
# jobs, so srun in a job finds only the default path. A config already there is moved aside
# and put back by teardown.
set -euo pipefail

DIR=${MILR_SLURM_DIR:-/tmp/milr-slurm}
CONF=/etc/slurm/slurm.conf
BACKUP=$DIR/slurm.conf.before
PIDS=$DIR/pids

log() { printf 'slurm-localhost: %s\n' "$*" >&2; }

# The state folder has a predictable name under a shared temp dir and this script runs as root:
# use it only if it is a real folder of ours that no one else can write to (another user could
# otherwise plant symlinks there and have root overwrite any file), and make it with mode 0700.
private_dir() {
  if [ -L "$DIR" ] || { [ -e "$DIR" ] && [ ! -d "$DIR" ]; }; then
    log "$DIR is a symlink or not a folder; remove it or set MILR_SLURM_DIR"; exit 1
  fi
  mkdir -p -m 700 "$DIR"
  local owner mode
  owner=$(stat -c %u "$DIR"); mode=$(stat -c %a "$DIR")
  if [ "$owner" != "$(id -u)" ] || [ $(( 8#$mode & 8#022 )) -ne 0 ]; then
    log "$DIR is owned by uid $owner with mode $mode: not private; remove it or set MILR_SLURM_DIR"
    exit 1
  fi
}

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    return
  fi
  log "installing slurm-wlm and munge from apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_conf() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  # slurmd -C reports what the node has; register a little less so the node is never drained.
  mem=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  mem=$(( ${mem:-4096} * 9 / 10 ))
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/munge" "$(dirname "$CONF")"
  if [ -f "$CONF" ] && ! grep -q '^ClusterName=milr-localhost' "$CONF"; then
    mv "$CONF" "$BACKUP"
  fi
  cat >"$CONF" <<CONF
ClusterName=milr-localhost
SlurmctldHost=$host
SlurmctldPort=${MILR_SLURMCTLD_PORT:-16817}
SlurmdPort=${MILR_SLURMD_PORT:-16818}
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CryptoType=crypto/munge
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
MinJobAge=300
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
  : >"$PIDS"
  munged --force --foreground --socket="$DIR/munge/munge.socket" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" \
    --seed-file="$DIR/munge/seed" >>"$DIR/log/munged.out" 2>&1 &
  echo "munged $!" >>"$PIDS"
  for _ in $(seq 50); do [ -S "$DIR/munge/munge.socket" ] && break; sleep 0.1; done
  slurmctld -D -i -f "$CONF" >>"$DIR/log/slurmctld.out" 2>&1 &
  echo "slurmctld $!" >>"$PIDS"
  slurmd -D -f "$CONF" >>"$DIR/log/slurmd.out" 2>&1 &
  echo "slurmd $!" >>"$PIDS"
}

wait_idle() {
  export SLURM_CONF=$CONF
  for _ in $(seq 120); do
    if [ "$(sinfo -h -o %T 2>/dev/null | head -n1)" = "idle" ]; then
      log "node idle after start"
      return 0
    fi
    sleep 0.5
  done
  log "node did not become idle; logs in $DIR/log"
  tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
  return 1
}

teardown() {
  if [ -f "$PIDS" ]; then
    # Reverse start order: slurmd, slurmctld, munged. Only the PIDs this script started.
    tac "$PIDS" | while read -r name pid; do
      if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        log "stopped $name ($pid)"
      fi
    done
    rm -f "$PIDS"
  fi
  rm -rf "$DIR/state" "$DIR/spool"
  if [ -f "$CONF" ] && grep -q '^ClusterName=milr-localhost' "$CONF"; then
    rm -f "$CONF"
  fi
  if [ -f "$BACKUP" ]; then
    mv "$BACKUP" "$CONF"
  fi
}

case "${1:-}" in
  setup)
    private_dir
    teardown
    install_packages
    write_conf
    start
    wait_idle || { teardown; exit 1; }
    echo "export SLURM_CONF=$CONF"
    ;;
  teardown) private_dir; teardown ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 setup|teardown|env" >&2; exit 2 ;;
esac
