// Progress display of long loops on rank 0: on a terminal one line redrawn in place with a bar;
// in a log file (stderr not a terminal) a plain line every `every` updates, so logs stay
// readable. Nothing on other ranks or with --quiet.
#pragma once

#include <cstdint>
#include <string>

namespace vitslim {

class ProgressLine {
 public:
  ProgressLine(bool enabled, int64_t every);
  // `done` of `total` with a status text (loss, lr, ...). `force` prints a plain line regardless.
  void update(const std::string& label, int64_t done, int64_t total, const std::string& status, bool force = false);
  // Ends the in-place line (before other output).
  void finish();

 private:
  bool enabled_, terminal_;
  int64_t every_;
  int64_t updates_ = 0;
  bool open_ = false;
};

}  // namespace vitslim
