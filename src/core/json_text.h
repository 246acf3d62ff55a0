// JSON text for vitslim's result files, lossless for file names that are not UTF-8. A string (or
// key) byte that is not part of well-formed UTF-8 is written as the escape \udcXX, as Python's
// surrogateescape does: json.load() then os.fsencode() in Python gives the bytes back, and
// parse_json_text() does here. For UTF-8 text the output is exactly nlohmann's dump().
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

namespace vitslim {

// indent < 0: compact (one line), else pretty-printed with `indent` spaces.
std::string json_text(const nlohmann::json& value, int indent = 2);
// Parses JSON text, turning \udcXX escapes back into their bytes; Error naming `what` when malformed.
nlohmann::json parse_json_text(const std::string& text, const std::string& what);
// A result file a job wrote (its "job" key names `job`): read and parsed. Error naming `what` and
// the path when it cannot be read, is not JSON, or another job wrote it.
nlohmann::json read_job_json(const std::string& path, const std::string& job, const std::string& what);

}  // namespace vitslim
