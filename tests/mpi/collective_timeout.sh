#!/usr/bin/env bash
# A rank that hangs (not dies) stops a 2-rank job within the collective timeout, in the gradient
# all-reduce and in an MPI collective: one error line naming the waiting rank and the step or call,
# and a non-zero exit. The stuck rank blocks until it is killed, so a job that ends on its own (not
# by `timeout`, the hang guard) did not wait for it; no elapsed time is measured or compared.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

expect_stopped() {  # what (the check's mode, or "" for the all-reduce), the error line's pattern, the finished line
  local mode=$1 want=$2 went_on=$3 rc=0
  timeout 300 "$MPIEXEC" -np 2 "$VITSLIM_TIMEOUT_CHECK" $mode >out.txt 2>err.txt || rc=$?
  cat out.txt err.txt
  [[ $rc -ne 0 && $rc -ne 124 ]] || { echo "FAIL: exit $rc (124: the job hung)"; exit 1; }
  grep -q "$want" err.txt || { echo "FAIL: no error line '$want'"; exit 1; }
  grep -q "$went_on" out.txt && { echo "FAIL: a rank went on"; exit 1; }
  echo "ok   hung peer${mode:+ in an MPI $mode}: rank 0 stopped the job after the 1 s timeout (exit $rc)"
}
expect_stopped "" "vitslim: error (rank 0): MPI communicator: an all-reduce did not complete within --collective-timeout 1 s on rank 0 at global step 7: another rank is stuck or gone" \
  "the all-reduce completed"
# The trainer's MPI collectives (sync points, evaluation sums) under its CollectiveDeadline.
expect_stopped barrier "vitslim: error (rank 0): MPI_Barrier did not complete within --collective-timeout 1 s on rank 0 (.*): another rank is stuck or gone" \
  "the barrier completed"
