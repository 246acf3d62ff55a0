#!/usr/bin/env bash
# vitslim-launch without a cluster: local mode runs the job under mpiexec; sbatch scripts carry
# every directive, array and dependency; a value with spaces, quotes or $(...) reaches vitslim as
# one literal argument and runs nothing (the generated script is executed with a recording srun);
# bad descriptions are refused with the file and line.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
fail() { echo "FAIL: $*"; exit 1; }
LAUNCH="$(dirname "$BIN")/vitslim-launch"

# Local: 2 ranks of an eval job, run for real.
cat >local.ini <<INI
[launch]
job = eval
mode = local
tasks_per_node = 2
output_dir = $WORK/local
binary = $BIN
mpiexec = $MPIEXEC

[eval]
eval-images = 200
threads = 1
quiet =
INI
"$LAUNCH" --dry-run local.ini | grep -q -- "-np 2 .*'eval' '--eval-images=200'" || fail "local dry run"
"$LAUNCH" local.ini >/dev/null
"$PY" -c "import json; j = json.load(open('$WORK/local/eval.json')); assert j['world_size'] == 2 and j['images'] == 200, j"
echo "ok   local mode: mpiexec -np 2, eval.json written"

# sbatch: a hostile value must stay one literal argument.
cat >evil.ini <<INI
[launch]
job = train
mode = sbatch
name = evil
tasks_per_node = 2
time = 01:00:00
partition = gpu
output_dir = $WORK/evil
binary = $BIN

[train]
weights = a b'c"d\$(touch $WORK/PWNED)\`touch $WORK/PWNED2\`;touch $WORK/PWNED3
quiet =
INI
"$LAUNCH" --dry-run evil.ini >dry.txt
for want in "#SBATCH --partition=gpu" "#SBATCH --time=01:00:00" "#SBATCH --ntasks-per-node=2" "srun --mpi=pmix" \
            "#SBATCH --signal=B:USR1@120" "#SBATCH --requeue" "#SBATCH --open-mode=append"; do
  grep -qF -- "$want" dry.txt || fail "missing: $want"
done
test ! -e "$WORK/evil" || fail "--dry-run wrote files"
# Execute the generated script with a recording srun and scontrol: nothing may be created.
mkdir -p fake
printf '#!/usr/bin/env bash\nprintf "%%s\\n" "$@" >"$SRUN_LOG"\n' >fake/srun
printf '#!/bin/sh\nexit 0\n' >fake/scontrol
chmod +x fake/srun fake/scontrol
awk '/^# ---- /{p=1; next} /^# submit:/{p=0} p' dry.txt >job.sh
SRUN_LOG=$WORK/srun.args PATH="$WORK/fake:$PATH" SLURM_JOB_ID=7 bash job.sh >/dev/null
for f in PWNED PWNED2 PWNED3; do test ! -e "$WORK/$f" || fail "a value ran a command ($f)"; done
want="--weights=a b'c\"d\$(touch $WORK/PWNED)\`touch $WORK/PWNED2\`;touch $WORK/PWNED3"
grep -qxF -- "$want" srun.args || { cat srun.args; fail "value not passed literally"; }
echo "ok   hostile value passed as one literal argument, nothing executed"

# A chain over ratios: search, then a train array and a merge + eval array with dependencies.
cat >sweep.ini <<INI
[launch]
job = chain
mode = sbatch
name = sweep
gpus_per_node = 4
output_dir = $WORK/sweep
binary = $BIN

[train]
epochs = 2
device = cuda

[sweep]
ratios = 0.25,0.5
INI
"$LAUNCH" --dry-run sweep.ini >chain.txt
[[ $(grep -c '^#SBATCH --array=0-1' chain.txt) -eq 2 ]] || fail "train and merge-eval arrays"
grep -qF -- "--dependency=afterok:<search job id>" chain.txt || fail "train depends on search"
grep -qF -- "--dependency=afterok:<train job id>" chain.txt || fail "merge-eval depends on train"
grep -qF -- "--remove-layers='$WORK/sweep/search/search.json'@\"\$RATIO\"" chain.txt || fail "remove-layers per ratio"
grep -qF -- " eval '--device=cuda' --weights=" chain.txt || fail "the eval step runs on [train]'s device"
[[ $(grep -c '^#SBATCH --cpus-per-task=8$' chain.txt) -eq 3 ]] || fail "a GPU rank gets 8 CPUs by default"
grep -qxF "#SBATCH --cpus-per-task=1" dry.txt || fail "a CPU rank gets 1 CPU by default"
echo "ok   chain: search -> train array -> merge + eval array (on [train]'s device, 8 CPUs per GPU rank)"

# Issue 33 item 12: the launcher owns every output a job declares (not a fixed list), a key given
# twice is refused, and export's file is named by its --format.
launch_error() {  # section, body, expected message
  printf '[launch]\njob = %s\nmode = local\noutput_dir = %s\nbinary = %s\n\n[%s]\n%b\n' "$1" "$WORK/o12" "$BIN" "$1" "$2" >k.ini
  local rc=0
  "$LAUNCH" --dry-run k.ini >k.out 2>&1 || rc=$?
  [[ $rc -ne 0 ]] && grep -qF -- "$3" k.out || { cat k.out; fail "[$1] $2: expected '$3'"; }
}
launch_error tome-sweep "csv = sweep.csv" "k.ini:8: csv: output paths are set by the launcher"
launch_error export "sample = s.safetensors" "k.ini:8: sample: output paths are set by the launcher"
launch_error predict "save-logits = l.safetensors" "k.ini:8: save-logits: output paths are set by the launcher"
launch_error eval "eval-images = 10\neval-images = 20" "k.ini:9: eval-images: given twice"
printf '[launch]\njob = export\nmode = local\noutput_dir = %s\nbinary = %s\n\n[export]\nformat = safetensors\n' "$WORK/o12" "$BIN" >fmt.ini
"$LAUNCH" --dry-run fmt.ini | grep -qF -- "/model.safetensors" || fail "export --format safetensors is not named model.safetensors"
echo "ok   launcher: declared outputs owned, keys given twice refused, export named by its format"

# Bad descriptions: one line with file:line, exit 2.
bad() {
  local want="$1" text="$2" rc=0
  printf '%s\n' "$text" >bad.ini
  "$LAUNCH" --dry-run bad.ini 2>err.txt >/dev/null || rc=$?
  [[ $rc -eq 2 ]] && grep -qF -- "$want" err.txt && [[ $(grep -c . err.txt) -eq 1 ]] || { cat err.txt; fail "$want"; }
}
bad "bad.ini:2: partition: 'gpu; rm -rf /' has characters" $'[launch]\npartition = gpu; rm -rf /'
bad "unknown section [sbatch]" $'[sbatch]\nx = 1'
bad "bad.ini:3: nodes: 'two' is not a positive integer" $'[launch]\nmode = sbatch\nnodes = two'
bad "output paths are set by the launcher" $'[train]\nout-dir = x'
bad "job 'fly' is not one of" $'[launch]\njob = fly'
bad "[sweep] ratios need search" $'[launch]\nmode = sbatch\n[sweep]\nratios = 0.5'
bad "a [sweep] is a Slurm job array (mode = sbatch)" $'[launch]\nmode = local\n[sweep]\nratios = 0.5\nsearch = s.json'
bad "name '../../x' must be letters" $'[launch]\nname = ../../x'
bad "output_dir '-rf' starts with '-'" $'[launch]\noutput_dir = -rf'
bad "tasks_per_node: 9223372036854775807 is more than 1024" $'[launch]\ntasks_per_node = 9223372036854775807'
bad "bad.ini:2: control character 0x1" $'[launch]\nname = a\x01b'
printf '[launch]\nname = a\0b\n' >nul.ini
rc=0; "$LAUNCH" --dry-run nul.ini 2>err.txt >/dev/null || rc=$?
[[ $rc -eq 2 ]] && grep -qF "nul.ini:2: control character 0x0" err.txt || { cat err.txt; fail "NUL byte"; }

echo "launch e2e: ok"
