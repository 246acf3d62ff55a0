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
sleep 1
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

