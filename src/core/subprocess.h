// Running another program and waiting for it, with a deadline: the plan job's ONNX timer. The
// child's standard output and error go to a file the caller names (read back for error messages).
#pragma once

#include <string>
#include <vector>

namespace vitslim {

struct ProgramResult {
  int exit_code = -1;      // the program's exit status; -1 when a signal ended it
  bool timed_out = false;  // killed (SIGKILL to its process group) at the deadline
};

// Runs argv[0] (looked up on PATH when it has no '/') with the rest as arguments, output appended
// to `log_path`. Throws Error naming the program when it cannot be started.
ProgramResult run_program(const std::vector<std::string>& argv, const std::string& log_path, double timeout_s);

// The last non-empty line of a text file ("" when none): a failed program's message.
std::string last_line(const std::string& path);

}  // namespace vitslim
