#!/usr/bin/env bash
# The time-limit path on a real Slurm: a 2-task training job under the shortest limit Slurm allows
# (1 minute) gets SIGUSR1 from Slurm (--signal=B:USR1@50) in its batch script, which passes it to
# the srun step; vitslim checkpoints at its next step and exits 0, the script requeues the job, and
# the restarted job resumes from that checkpoint and finishes: the job ends COMPLETED, never TIMEOUT.
#
# It does not read the clock or depend on how fast the machine trains: the test holds the training
# (SIGSTOP) at its first checkpoint, so the warning always finds the step still running whatever
# the speed, and lets it go on (SIGCONT) once the script has passed the signal on. The restarted job
# gets a 10-minute limit (scontrol update while it is pending), so it finishes in one allocation
# however slow the machine. Polling loops count polls (hang guards), they decide nothing.
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../common.sh"
source "$HERE/cluster.sh"

STEPS=200  # per epoch: far more than the steps between the first checkpoint and the hold
cat >run.ini <<EOF
[launch]
job = train
mode = sbatch
name = limit-test
tasks_per_node = 2
time = 00:01:00
signal_seconds = 50
output_dir = $WORK/out
binary = $BIN

[train]
epochs = 2
steps-per-epoch = $STEPS
warmup-epochs = 0.5
decay-epochs = 1
remove-layers = 1,3
batch-size = 16
checkpoint-steps = 2
eval-images = 200
entropy-images = 0
threads = 1
EOF
"$LAUNCH" run.ini >submit.txt || fail "vitslim-launch: $(cat submit.txt)"
JOB=$(awk '/submitted/ {print $4}' submit.txt)
echo "ok   submitted job $JOB (time limit 1 min, USR1 50 s before)"

freeze_at_first_checkpoint "$WORK/out" "$JOB"
echo "ok   training held at $(ls "$WORK/out/checkpoints" | head -n 1) (tasks $HELD)"
# Slurm's warning reaches the batch script within the minute; the script passes it to the step.
for _ in $(seq 1 1200); do
  grep -qs "SIGUSR1 (time limit near) passed to the running step" "$WORK"/out/*.out && break
  sleep 0.1
done
grep -qs "SIGUSR1 (time limit near) passed to the running step" "$WORK"/out/*.out ||
  { kill -CONT $HELD 2>/dev/null; fail "Slurm's SIGUSR1 never reached the step"; }
release_when_pending 10  # SIGUSR1
echo "ok   SIGUSR1 passed on while the step was held; training let go"

state=""
released=0
for _ in $(seq 1 6000); do  # polls of 0.2 s: a hang guard, not a verdict
  info=$(scontrol show job "$JOB" 2>/dev/null || true)
  state=$(grep -o 'JobState=[A-Z_]*' <<<"$info" | cut -d= -f2 || true)
  restarts=$(grep -o 'Restarts=[0-9]*' <<<"$info" | cut -d= -f2 || true)
  case "$state" in
    PENDING)
      # A requeued job gets a begin time minutes ahead; make it eligible in 2 s (not at once: slurmd
      # refuses a credential issued in the second its predecessor was revoked), with a limit the
      # rest of the training fits in at any speed.
      if [[ "${restarts:-0}" -gt "$released" ]]; then
        scontrol update JobId="$JOB" StartTime=now+2 TimeLimit=10 2>/dev/null || true
        released=$restarts
      fi ;;
    COMPLETED | FAILED | TIMEOUT | CANCELLED* | NODE_FAIL | OUT_OF_MEMORY) break ;;
  esac
  sleep 0.2
done
[[ "$state" == COMPLETED ]] || fail "job ended ${state:-unknown} (restarts: ${restarts:-0})"
LOG=$(ls "$WORK"/out/*.out)
grep -q "time limit near, checkpoint written; requeueing" "$LOG" || fail "no requeue before the time limit"
grep -q "resumed from" "$LOG" || fail "the restarted job did not resume"
"$PY" - "$WORK/out/train.json" "$STEPS" <<'PYEOF' || fail "the job completed, but training did not finish"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["finished"] and j["global_step"] == 2 * int(sys.argv[2]) and j["removed_layers"] == [1, 3], j
PYEOF
echo "ok   $(grep -c 'requeueing' "$LOG") requeue(s) before the limit, $(grep -c 'resumed from' "$LOG") resume(s), finished"
echo "slurm time limit: ok"
