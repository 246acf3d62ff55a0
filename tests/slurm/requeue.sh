#!/usr/bin/env bash
# vitslim-launch on a real Slurm: starts munged, slurmctld -D and slurmd -D (Debian's slurm-wlm,
# a slurm.conf in a temporary directory, no systemd), submits a 2-task Fashion-MNIST training job
# through vitslim-launch (srun --mpi=pmix), requeues it mid-run with `scontrol requeue` (the test
# holds the training at its first checkpoint, so the requeue never races a fast machine), and checks
# that it resumed from its checkpoint and finished with the weights of an uninterrupted 2-rank run.
# Every daemon it started is stopped by PID on exit.
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../common.sh"
source "$HERE/cluster.sh"

TRAIN="epochs = 2
steps-per-epoch = 40
decay-epochs = 1
warmup-epochs = 0.5
remove-layers = 1,3
batch-size = 16
checkpoint-steps = 4
eval-images = 200
entropy-images = 0
threads = 1"
cat >run.ini <<EOF
[launch]
job = train
mode = sbatch
name = requeue-test
nodes = 1
tasks_per_node = 2
cpus_per_task = 1
output_dir = $WORK/out
binary = $BIN

[train]
$TRAIN
EOF
"$LAUNCH" run.ini >submit.txt || fail "vitslim-launch: $(cat submit.txt)"
JOB=$(awk '/submitted/ {print $4}' submit.txt)
echo "ok   submitted job $JOB"
# Requeued while the training is held at its first checkpoint (SIGSTOP): Slurm's SIGTERM then stops
# it at its next step, so the requeue always lands mid-run, whatever the machine's speed.
freeze_at_first_checkpoint "$WORK/out" "$JOB"
scontrol requeue "$JOB" || fail "scontrol requeue"
release_when_pending 15  # SIGTERM
echo "ok   requeued job $JOB after $(ls "$WORK/out/checkpoints")"
# A requeued job waits for a begin time in the future; make it eligible now.
for _ in $(seq 1 100); do
  scontrol show job "$JOB" | grep -q 'JobState=PENDING' && break
  sleep 0.2
done
sleep 1  # slurmd refuses a credential issued in the second its predecessor was revoked
scontrol update JobId="$JOB" StartTime=now+2 || true
state=""
for _ in $(seq 1 1500); do
  state=$(sacct -n -X -j "$JOB" -o State 2>/dev/null | head -n 1 | tr -d ' ' || true)
  [[ -z "$state" ]] && state=$(scontrol show job "$JOB" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)
  [[ "$state" == COMPLETED || "$state" == FAILED || "$state" == CANCELLED* ]] && break
  sleep 0.2
done
[[ "$state" == COMPLETED ]] || fail "job ended $state"
LOG=$(ls "$WORK"/out/*.out)
grep -q "restart 1" "$LOG" || fail "the job did not restart"
grep -q "resumed from" "$LOG" || { cat "$LOG"; fail "the restarted job did not resume from a checkpoint"; }
echo "ok   job restarted and resumed: $(grep -m1 'resumed from' "$LOG")"

# The same training uninterrupted, 2 ranks under mpiexec: identical weights.
# shellcheck disable=SC2046
"$MPIEXEC" -np 2 "$BIN" train $(sed -e 's/ = */=/' -e 's/^/--/' -e 's/=$//' <<<"$TRAIN") --out-dir ref
"$PY" "$VITSLIM_SCRIPTS/compare_weights.py" ref/final.safetensors "$WORK/out/final.safetensors"
echo "slurm requeue: ok"
