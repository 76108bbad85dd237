#!/usr/bin/env bash
# A one-node SLURM cluster with one (fake) GPU on this machine, for tests/slurm/test_slurm_profile.py.
#
#   sudo bash tests/slurm/setup_local_slurm.sh [--pid-dir DIR]          # install, configure, start
#   sudo bash tests/slurm/setup_local_slurm.sh --stop [--pid-dir DIR]   # stop what start started
#                                                                       # and remove its config
#
# Start installs the Debian packages when missing (munge slurmctld slurmd slurm-client), writes
# /etc/slurm/slurm.conf and gres.conf, and starts munged (only if munge does not work yet),
# slurmctld and slurmd, each time with an empty state directory. The pid of every daemon it
# starts is written to DIR/<daemon>.pid (default /run/slurm-local); --stop kills exactly those
# pids and nothing else. A start first stops the daemons of an earlier start (same DIR) and
# refuses to run next to a slurmctld/slurmd it did not start, or over a slurm.conf it did not
# write. When a daemon does not come up it prints the daemons' logs, stops what it started,
# and exits non-zero. Debian/Ubuntu only (apt); no systemd needed, so it works in containers.
#
# Deliberately minimal, not a template for a real cluster:
#   - one node "localhost" (this machine's CPUs, 80 % of its memory), one partition "debug";
#   - one GPU generic resource backed by /dev/null (slurmd drops a GPU without a device file and
#     the node goes INVAL); a job asking for it (--gpus=1 or --gres=gpu:1) gets
#     CUDA_VISIBLE_DEVICES=0, but there is no GPU: the workflow must still run on the CPU;
#   - no accounting (no slurmdbd): sacct fails, so Snakemake's slurm executor polls with squeue
#     (slurm-status-command: squeue in profiles/slurm); MinJobAge=300 keeps finished jobs
#     visible to squeue and `scontrol show job` for 5 minutes;
#   - no cgroups (TaskPlugin=task/none, proctrack/linuxproc): nothing is enforced, jobs just run;
#   - JobRequeue=0: a job is requeueable only if submitted with --requeue.
# The config must live at the default location /etc/slurm/slurm.conf: the plugin's in-job helper
# clears SLURM_CONF before its nested srun.
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
GRES_CONF=$CONF_DIR/gres.conf
MARK="# Written by tests/slurm/setup_local_slurm.sh"
STATE=/var/lib/slurm
LOGS=/var/log/slurm
RUN=/run/slurm # the daemons' own pid files
NODE=localhost
PIDS=/run/slurm-local # the pids of the daemons this script started

mode=start
while [ $# -gt 0 ]; do
  case "$1" in
    --stop) mode=stop ;;
    --pid-dir) PIDS=${2:?--pid-dir needs a directory}; shift ;;
    *) echo "usage: $0 [--stop] [--pid-dir DIR]" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "setup_local_slurm: $*" >&2; }

[ "$(id -u)" -eq 0 ] || { log "run as root (it installs packages and starts daemons)"; exit 1; }

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Stop the daemons recorded in $PIDS (slurmd first), by pid. A recorded pid whose process now
# has another name (pid reused after a reboot) is not touched.
stop_started() {
  local name pid comm
  for name in slurmd slurmctld munged; do
    [ -f "$PIDS/$name.pid" ] || continue
    pid=$(cat "$PIDS/$name.pid")
    comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
    if alive "$pid" && [ "$comm" = "$name" ]; then
      log "stopping $name (pid $pid)"
      kill "$pid"
      for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
      if alive "$pid"; then
        log "$name (pid $pid) ignores SIGTERM, killing it"
        kill -9 "$pid"
        for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
      fi
    fi
    rm -f "$PIDS/$name.pid"
  done
}

# Remove the slurm.conf and gres.conf this script wrote (never anyone else's). Left behind
# without a controller, slurm.conf makes every scontrol call wait ~10 s for an answer, and
# snakemake-executor-plugin-slurm runs `scontrol show config` whenever Snakemake starts.
remove_written_conf() {
  local f
  for f in "$CONF" "$GRES_CONF"; do
    if [ -f "$f" ] && head -1 "$f" | grep -qF "$MARK"; then
      log "removing $f"
      rm -f "$f"
    fi
  done
}

if [ "$mode" = stop ]; then
  stop_started
  remove_written_conf
  exit 0
fi

t0=$(date +%s%N)
stop_started # a start is always a fresh cluster

show_logs() {
  local f
  local files=("$LOGS/slurmctld.log" "$LOGS/slurmd.log")
  [ -f "$PIDS/munged.pid" ] && files+=(/var/log/munge/munged.log) # only when started here
  for f in "${files[@]}"; do
    [ -s "$f" ] || continue
    echo "----- $f (last 60 lines) -----" >&2
    tail -n 60 "$f" >&2
  done
}

fail() {
  log "$*"
  show_logs
  timeout 5 sinfo -N -l >&2 2>&1 || true
  stop_started
  remove_written_conf
  exit 1
}

# Wait until the daemon wrote its pid file (it forks into the background) and record that pid.
record() {
  local name=$1 pidfile=$2 pid=""
  for _ in $(seq 100); do
    pid=$(cat "$pidfile" 2>/dev/null || true)
    alive "$pid" && break
    sleep 0.1
  done
  alive "$pid" || fail "$name did not start (no live pid in $pidfile)"
  echo "$pid" >"$PIDS/$name.pid"
}

# --- refuse to disturb a SLURM that is not ours --------------------------------------------------
for name in slurmctld slurmd; do
  other=$(pgrep -x "$name" | tr '\n' ' ' || true)
  [ -z "$other" ] || {
    log "$name (pid ${other% }) runs and was not started by this script (pid dir $PIDS); stop it first"
    exit 1
  }
done
if [ -f "$CONF" ] && ! head -1 "$CONF" | grep -qF "$MARK"; then
  log "$CONF exists and was not written by this script; not overwriting it"
  exit 1
fi

# --- packages ----------------------------------------------------------------------------------
need=()
for pkg in slurmctld slurmd slurm-client munge; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { log "apt-get not found; install ${need[*]} by hand"; exit 1; }
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
t_installed=$(date +%s%N)
install -d -m 755 "$PIDS"

# --- munge (authentication between the SLURM commands and daemons) -----------------------------
if [ ! -s /etc/munge/munge.key ]; then
  log "creating /etc/munge/munge.key"
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge /etc/munge/munge.key
chmod 700 /etc/munge
chmod 400 /etc/munge/munge.key
install -d -o munge -g munge -m 755 /run/munge
install -d -o munge -g munge -m 700 /var/lib/munge /var/log/munge
munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_ok; then
  log "starting munged"
  rm -f /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged || fail "munged did not start"
  record munged /run/munge/munged.pid
  for _ in $(seq 50); do munge_ok && break; sleep 0.1; done
  munge_ok || fail "munge does not work"
fi

# --- slurm.conf, gres.conf ---------------------------------------------------------------------
# The node's size as slurmd measures it; a node claiming more than that is drained.
hw=$(slurmd -C | head -1)
cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
mem=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
[ -n "$cpus" ] && [ -n "$mem" ] || { log "could not parse 'slurmd -C': $hw"; exit 1; }
mem=$((mem * 80 / 100))

install -d -m 755 "$CONF_DIR"
cat >"$CONF" <<EOF
$MARK: a one-node test cluster with one fake GPU, no accounting, no cgroups.
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
# Finished jobs stay visible to squeue and scontrol for 5 minutes.
MinJobAge=300
# Jobs are not requeueable unless sbatch says --requeue, as on many sites: the profile's
# slurm-requeue is then what lets tests/slurm requeue a training (as a preemption does).
JobRequeue=0
SchedulerType=sched/backfill
# Start a submitted job at once instead of batching submissions (about 3 s per job otherwise).
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# A job without --mem gets this per CPU instead of the whole node's memory.
DefMemPerCPU=1000
GresTypes=gpu
# Writes "gpu-check step <job>.<step> CUDA_VISIBLE_DEVICES=..." into each task's output (the
# job's log), so the test sees which steps were handed the GPU.
TaskProlog=$CONF_DIR/task_prolog.sh
InactiveLimit=0
KillWait=10
Waittime=0
SlurmctldTimeout=60
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
cat >"$GRES_CONF" <<EOF
$MARK: one GPU without hardware (slurmd needs a device file).
NodeName=$NODE Name=gpu File=/dev/null
EOF
cat >"$CONF_DIR/task_prolog.sh" <<'EOF'
#!/bin/sh
# Written by tests/slurm/setup_local_slurm.sh: a "print ..." line goes to the task's stdout.
echo "print gpu-check step ${SLURM_JOB_ID}.${SLURM_STEP_ID:-batch} CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-unset}"
EOF
chmod 644 "$CONF" "$GRES_CONF"
chmod 755 "$CONF_DIR/task_prolog.sh"

# Fresh state and logs: an old DRAIN reason or job would come back from the state directory.
rm -rf "$STATE/slurmctld" "$STATE/slurmd"
install -d -o slurm -g slurm -m 755 "$STATE" "$STATE/slurmctld" "$STATE/slurmd" "$LOGS" "$RUN"
rm -f "$LOGS/slurmctld.log" "$LOGS/slurmd.log" "$RUN/slurmctld.pid" "$RUN/slurmd.pid"

# --- daemons -------------------------------------------------------------------------------------
log "starting slurmctld"
/usr/sbin/slurmctld || fail "slurmctld did not start"
record slurmctld "$RUN/slurmctld.pid"
for _ in $(seq 100); do
  scontrol ping 2>/dev/null | grep -q "UP" && break
  alive "$(cat "$PIDS/slurmctld.pid")" || fail "slurmctld exited"
  sleep 0.1
done
scontrol ping 2>/dev/null | grep -q "UP" || fail "slurmctld does not answer"

log "starting slurmd"
/usr/sbin/slurmd -N "$NODE" || fail "slurmd did not start"
record slurmd "$RUN/slurmd.pid"

state=""
for _ in $(seq 150); do
  state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1 || true)
  [ "$state" = idle ] && break
  sleep 0.2
done
[ "$state" = idle ] || fail "node $NODE is '${state:-unknown}', not idle"
gres=$(sinfo -h -n "$NODE" -o %G | head -1)
[ "$gres" = "gpu:1" ] || fail "node $NODE has GRES '$gres', not gpu:1"

t1=$(date +%s%N)
sinfo -N -o "%N %T %c %m %G %P" >&2
secs() { local ms=$((($2 - $1) / 1000000)); echo "$((ms / 1000)).$((ms % 1000 / 100))"; }
log "ready in $(secs "$t0" "$t1") s (packages $(secs "$t0" "$t_installed") s): partition debug," \
  "node $NODE ($cpus CPUs, $mem MB, gpu:1); started pids in $PIDS"
