# Sourced by the Slurm tests (after ../common.sh): starts a real single-node Slurm in $WORK/slurm
# (munged with its own key and socket, slurmctld -D and slurmd -D with a slurm.conf there, free
# ports, no systemd), exports SLURM_CONF, and stops every daemon it started, by PID, on exit.
fail() {
  echo "FAIL: $*"
  for f in "$WORK"/slurm/*.log "$WORK"/out/*.out; do [[ -f "$f" ]] && { echo "== $f"; tail -n 25 "$f"; }; done
  exit 1
}
for tool in munged slurmctld slurmd sbatch scontrol squeue; do
  command -v "$tool" >/dev/null || fail "$tool not installed (scripts/setup.sh installs slurm-wlm and munge)"
done
LAUNCH="$(dirname "$BIN")/vitslim-launch"
S="$WORK/slurm"
mkdir -p "$S/state" "$S/spool"
HOST=$(hostname -s)
PIDS=()
cleanup() {
  # shellcheck disable=SC2086
  [[ -z "${HELD:-}" ]] || kill -9 $HELD 2>/dev/null || true  # tasks a failed test left stopped
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# munge with its own key and socket, so nothing of the machine's setup is touched.
dd if=/dev/urandom of="$S/munge.key" bs=1024 count=1 status=none
chmod 400 "$S/munge.key"
munged --foreground --force --key-file="$S/munge.key" --socket="$S/munge.sock" --pid-file="$S/munged.pid" \
  --log-file="$S/munged.log" --seed-file="$S/munge.seed" &
PIDS+=($!)

# The PIDs of this test's vitslim tasks: processes of $BIN whose arguments name $1 (the run's output
# directory), so that runs of tests beside this one are never touched.
task_pids() {
  python3 - "$BIN" "$1" <<'PYEOF'
import os, sys
binary, out = os.path.realpath(sys.argv[1]), sys.argv[2].encode()
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        if os.path.realpath(f"/proc/{pid}/exe") == binary and out in open(f"/proc/{pid}/cmdline", "rb").read():
            print(pid)
    except OSError:
        pass
PYEOF
}
# Holds the run's training at a step the test chooses, whatever the machine's speed: waits until
# the run in $1 (Slurm job $2) has written its first checkpoint, or until the job has left
# PENDING/RUNNING (then the test fails), then stops its tasks with SIGSTOP and sets HELD to their
# PIDs. Signals sent to them meanwhile stay pending.
HELD=""
freeze_at_first_checkpoint() {
  local out="$1" job="$2" state
  until compgen -G "$out/checkpoints/step-*.safetensors" >/dev/null; do
    state=$(scontrol show job "$job" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2 || true)
    [[ "$state" == PENDING || "$state" == RUNNING || "$state" == CONFIGURING ]] ||
      fail "job $job is ${state:-gone} and wrote no checkpoint"
    sleep 0.1
  done
  HELD=$(task_pids "$out" | tr '\n' ' ')
  [[ -n "$HELD" ]] || fail "the run in $out has no running task to hold"
  # shellcheck disable=SC2086
  kill -STOP $HELD 2>/dev/null || true
}
# True when signal number $2 is pending on process $1 (sent while it is stopped), or the process is
# gone (it took the signal before it was stopped, and ended).
signal_pending_or_gone() {
  local mask
  mask=$(awk '/^ShdPnd:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 0
  [[ -z "$mask" ]] || (((16#$mask >> ($2 - 1)) & 1))
}
# Lets the held tasks go on once signal $1 is pending on each of them (up to 100 polls each).
release_when_pending() {
  local pid
  for pid in $HELD; do
    for _ in $(seq 1 100); do signal_pending_or_gone "$pid" "$1" && break; sleep 0.05; done
  done
  # shellcheck disable=SC2086
  kill -CONT $HELD 2>/dev/null || true
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cat >"$S/slurm.conf" <<EOF
ClusterName=vitslimtest
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$S/munge.sock
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/slurmctld.log
SlurmdLogFile=$S/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=30
NodeName=$HOST CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
export SLURM_CONF="$S/slurm.conf"
for _ in $(seq 1 600); do  # until munged listens (polls: a hang guard)
  [[ -S "$S/munge.sock" ]] && break
  kill -0 "${PIDS[0]}" 2>/dev/null || fail "munged ended"
  sleep 0.05
done
slurmctld -D -f "$SLURM_CONF" >/dev/null 2>&1 &
PIDS+=($!)
slurmd -D -f "$SLURM_CONF" >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 1 60); do
  sinfo -h -o %t 2>/dev/null | grep -q idle && break
  sleep 0.5
done
sinfo -h -o %t | grep -q idle || fail "the Slurm node did not become idle"
echo "ok   Slurm up: $(sinfo -h -o '%P %t %c CPUs')"

