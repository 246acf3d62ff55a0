// Error type of vitslim: every failure the library detects is thrown as vitslim::Error with a
// message that names the input (file, flag, rank) and what was wrong. Only executables catch.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace vitslim {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// An error that every MPI rank detected together (a collective decision, e.g. a non-finite loss
// on some rank): executables report it once and exit without aborting the job.
class CollectiveError : public Error {
 public:
  explicit CollectiveError(const std::string& what) : Error(what) {}
};

// Builds a message from streamable parts: throw Error(cat("file ", path, ": bad magic ", m)).
template <typename... Parts>
std::string cat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}

// The first line of a message (LibTorch errors carry backtraces and call sites after it).
inline std::string first_line(const std::string& what) { return what.substr(0, what.find('\n')); }

// A number with a fixed count of significant digits for messages: fmt(0.8562593, 3) = "0.856".
inline std::string fmt(double value, int digits = 4) {
  std::ostringstream out;
  out.precision(digits);
  out << value;
  return out.str();
}

}  // namespace vitslim
