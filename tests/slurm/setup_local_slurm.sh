#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests/slurm/test_slurm_profile.py.
#
#   sudo bash tests/slurm/setup_local_slurm.sh          # install, configure, start
#   sudo bash tests/slurm/setup_local_slurm.sh --stop   # stop slurmd and slurmctld (munged stays)
#
# Idempotent: packages are installed only when missing, slurm.conf is rewritten only when its
# content changes (the daemons are restarted then), running daemons are left alone otherwise.
# Debian/Ubuntu only (apt). No systemd needed: munged, slurmctld and slurmd are started
# directly, so it also works in containers. Deliberately minimal, not a template for a real
# cluster:
#   - one node "localhost" with this machine's CPUs and memory, one partition "debug";
#   - no accounting (no slurmdbd): `sacct` has nothing to report, so Snakemake's slurm
#     executor must poll job states with `squeue` (--slurm-status-command squeue); MinJobAge
#     keeps finished jobs visible to squeue for 10 minutes, far longer than the plugin's
#     polling interval (at most 180 s), which is what makes squeue polling reliable;
#   - no cgroups (TaskPlugin=task/none, proctrack/linuxproc): nothing is enforced, jobs just run;
#   - no GRES/GPUs: a job asking for --gpus or --gres=gpu is rejected by sbatch here.
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
STATE=/var/lib/slurm
LOGS=/var/log/slurm
RUN=/run/slurm
NODE=localhost

log() { echo "setup_local_slurm: $*" >&2; }

[ "$(id -u)" -eq 0 ] || { log "run as root (it installs packages and starts daemons)"; exit 1; }

stop_daemons() {
  local name pidfile pid
  for name in slurmd slurmctld; do
    pidfile=$RUN/$name.pid
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      log "stopping $name (pid $pid)"
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
    rm -f "$pidfile"
  done
}

if [ "${1:-}" = "--stop" ]; then
  stop_daemons
  exit 0
fi

# --- packages -------------------------------------------------------------------------------
need=()
for pkg in slurmctld slurmd slurm-client munge; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- munge (authentication between the SLURM commands and daemons) --------------------------
if [ ! -s /etc/munge/munge.key ]; then
  log "creating /etc/munge/munge.key"
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge /etc/munge/munge.key
chmod 700 /etc/munge
chmod 400 /etc/munge/munge.key
install -d -o munge -g munge -m 755 /run/munge
install -d -o munge -g munge -m 700 /var/lib/munge /var/log/munge
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi
munge -n </dev/null | unmunge >/dev/null || { log "munge does not work"; exit 1; }

# --- slurm.conf --------------------------------------------------------------------------------
# The node's real size, as slurmd measures it (CPUs=... RealMemory=...); a node that claims more
# than it has is drained by slurmctld.
hw=$(slurmd -C | head -1)
cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
mem=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
[ -n "$cpus" ] && [ -n "$mem" ] || { log "could not parse 'slurmd -C': $hw"; exit 1; }
mem=$((mem * 95 / 100))  # leave a little headroom; RealMemory may not exceed what slurmd sees

install -d -m 755 "$CONF_DIR"
install -d -o slurm -g slurm -m 755 "$STATE" "$STATE/slurmctld" "$STATE/slurmd" "$LOGS" "$RUN"

new_conf=$(mktemp)
trap 'rm -f "$new_conf"' EXIT
cat >"$new_conf" <<EOF
# Written by tests/slurm/setup_local_slurm.sh: a one-node test cluster, no accounting, no cgroups.
ClusterName=localcluster
SlurmctldHost=$NODE
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
# No cgroups: processes are tracked by parent pid, tasks are not bound or confined.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# No accounting: sacct has no database; job states come from slurmctld via squeue.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Finished jobs stay in slurmctld's memory (visible to 'squeue --states=all') for 10 minutes.
MinJobAge=600
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
InactiveLimit=0
KillWait=10
Waittime=0
SlurmctldTimeout=60
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

running() { [ -s "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

if ! cmp -s "$new_conf" "$CONF"; then
  log "writing $CONF (node $NODE: CPUs=$cpus RealMemory=$mem)"
  install -m 644 "$new_conf" "$CONF"
  stop_daemons  # a changed node definition needs fresh daemons, not just 'scontrol reconfigure'
fi

if ! running slurmctld; then
  log "starting slurmctld"
  /usr/sbin/slurmctld -i  # -i: ignore state files that no longer match the config
fi
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q "UP" && break; sleep 0.2; done
if ! running slurmd; then
  log "starting slurmd"
  /usr/sbin/slurmd -N "$NODE"
fi

# Wait until the node takes jobs; a node left DOWN/DRAINED by an earlier run is resumed.
state=""
for i in $(seq 150); do
  state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1 || true)
  case "$state" in
    idle | mixed | allocated | completing) break ;;
    down* | drain* | drained*)
      [ $((i % 10)) -eq 1 ] && scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
  esac
  sleep 0.2
done
case "$state" in
  idle | mixed | allocated | completing) ;;
  *)
    log "node $NODE is '$state' (see $LOGS/slurmctld.log, $LOGS/slurmd.log)"
    sinfo -N -l || true
    exit 1 ;;
esac

sinfo
squeue
log "ready: partition 'debug', node $NODE ($cpus CPUs, $mem MB)"
