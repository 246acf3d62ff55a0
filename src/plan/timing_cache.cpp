// Implements the plan's timing cache (see timing_cache.h).
#include "plan/timing_cache.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/text_file.h"

namespace vitslim::plan {

namespace {
constexpr const char* kKind = "vitslim plan timings";
}

TimingCache::TimingCache(std::string path) : path_(std::move(path)) {
  if (!std::filesystem::exists(path_)) return;
  const nlohmann::json j = parse_json_text(read_text_file(path_, "timing cache"), path_);
  if (!j.is_object() || j.value("kind", "") != kKind || !j.contains("entries") || !j.at("entries").is_object()) {
    throw Error(cat(path_, ": not a plan timing cache (remove it to time again)"));
  }
  for (const auto& [context, candidates] : j.at("entries").items()) {
    for (const auto& [key, t] : candidates.items()) {
      const double ms = t.at("ms").get<double>(), unpruned = t.at("unpruned_ms").get<double>();
      if (!(std::isfinite(ms) && ms > 0 && std::isfinite(unpruned) && unpruned > 0)) {
        throw Error(cat(path_, ": entry ", key, " has no positive timing (remove the file to time again)"));
      }
      entries_[context][key] = {ms, unpruned};
    }
  }
}

std::string TimingCache::context(const std::string& runtime, const std::string& device, int threads, int64_t batch,
                                 const std::string& shape) {
  return cat(runtime, "|", device, "|", threads, " threads|batch ", batch, "|", shape);
}

std::optional<Timing> TimingCache::find(const std::string& context, const std::string& candidate) const {
  const auto c = entries_.find(context);
  if (c == entries_.end()) return std::nullopt;
  const auto t = c->second.find(candidate);
  if (t == c->second.end()) return std::nullopt;
  return t->second;
}

void TimingCache::put(const std::string& context, const std::string& candidate, const Timing& timing) {
  entries_[context][candidate] = timing;
}

void TimingCache::save() const {
  nlohmann::json entries = nlohmann::json::object();
  for (const auto& [context, candidates] : entries_) {
    for (const auto& [key, t] : candidates) entries[context][key] = {{"ms", t.ms}, {"unpruned_ms", t.unpruned_ms}};
  }
  const nlohmann::json j = {{"program", "vitslim"}, {"kind", kKind}, {"entries", entries}};
  write_file_atomic(path_, json_text(j, 1) + "\n");
}

}  // namespace vitslim::plan
