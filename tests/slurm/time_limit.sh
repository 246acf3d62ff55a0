#!/usr/bin/env bash
# The time-limit path on a real Slurm: a 2-task training job longer than its 2-minute limit gets
# SIGUSR1 from Slurm (--signal=B:USR1@90) in its batch script, which forwards it to the srun step;
# vitslim checkpoints at the next step and exits 0, the script requeues the job, and the restarted
# job resumes; this repeats until training finishes, and the job ends COMPLETED (never TIMEOUT).
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../common.sh"
source "$HERE/cluster.sh"

STEPS=1500  # per epoch; 2 epochs of 2 x 16 images take longer than one 2-minute allocation here
cat >run.ini <<EOF
[launch]
job = train
mode = sbatch
name = limit-test
tasks_per_node = 2
time = 00:02:00
signal_seconds = 90
output_dir = $WORK/out
binary = $BIN

[train]
epochs = 2
steps-per-epoch = $STEPS
warmup-epochs = 0.5
decay-epochs = 1
remove-layers = 1,3
batch-size = 16
checkpoint-steps = 500
eval-images = 200
entropy-images = 0
threads = 1
EOF
"$LAUNCH" run.ini >submit.txt || fail "vitslim-launch: $(cat submit.txt)"
JOB=$(awk '/submitted/ {print $4}' submit.txt)
echo "ok   submitted job $JOB (time limit 2 min, USR1 90 s before)"
state=""
released=0
# Wait by the clock, not by a count of polls: on a loaded machine the job trains slower and needs
# more allocations (each ends in a requeue, which is what this test checks), so the deadline is
# generous; ctest's TIMEOUT for this test (tests/CMakeLists.txt) is above it.
deadline=$((SECONDS + 1500))
while ((SECONDS < deadline)); do
  info=$(scontrol show job "$JOB" 2>/dev/null || true)
  state=$(grep -o 'JobState=[A-Z_]*' <<<"$info" | cut -d= -f2 || true)
  restarts=$(grep -o 'Restarts=[0-9]*' <<<"$info" | cut -d= -f2 || true)
  case "$state" in
    PENDING)
      # A requeued job gets a begin time minutes ahead; make it eligible in 2 s, once per requeue.
      # Not at once: slurmd refuses a credential issued in the second its predecessor was revoked.
      if [[ "${restarts:-0}" -gt "$released" ]]; then
        scontrol update JobId="$JOB" StartTime=now+2 2>/dev/null || true
        released=$restarts
      fi ;;
    COMPLETED | FAILED | TIMEOUT | CANCELLED* | NODE_FAIL | OUT_OF_MEMORY) break ;;
  esac
  sleep 0.5
done
[[ "$state" == COMPLETED ]] || fail "job ended ${state:-unknown} (after $SECONDS s; restarts: ${restarts:-0})"
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
