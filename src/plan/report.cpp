// Implements the plan's outputs (see report.h).
#include "plan/report.h"

#include <cctype>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/options.h"
#include "core/version.h"

namespace vitslim::plan {

bool PlanResult::met() const {
  for (const auto& name : runtimes) {
    const auto it = choices.find(name);
    if (it == choices.end() || !it->second.chosen) return false;
  }
  return !runtimes.empty();
}

std::string PlanResult::unmet_reason() const {
  for (const auto& name : runtimes) {
    const auto it = choices.find(name);
    if (it != choices.end() && !it->second.chosen) return it->second.reason;
  }
  return "";
}

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json optional_json(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

json candidate_json(const Candidate& c) {
  json timings = json::object();
  for (const auto& [runtime, t] : c.timings) {
    timings[runtime] = {{"ms", t.ms}, {"unpruned_ms", t.unpruned_ms}, {"speedup", t.speedup()}};
  }
  return {{"key", c.key()},           {"label", c.label()},
          {"criterion", c.criterion}, {"removed", c.blocks},
          {"tome_r", c.tome_r},       {"te", c.te},
          {"params", c.params},       {"macs", c.macs},
          {"timings", timings},       {"probe_top1", optional_json(c.probe_top1)},
          {"on_front", c.on_front}};
}

json choice_json(const Choice& c) {
  const auto index = [](const std::optional<size_t>& i) { return i ? json(*i) : json(nullptr); };
  return {{"chosen", index(c.chosen)}, {"closest", index(c.closest)}, {"reason", c.reason}};
}

std::string target_line(const Target& t) {
  std::string text;
  if (t.speedup) text = cat("speed-up >= ", fmt(*t.speedup, 3), "x");
  if (t.latency_ms) text = cat("latency <= ", fmt(*t.latency_ms, 4), " ms per batch");
  if (t.max_drop) text += cat(text.empty() ? "" : ", ", "probe top-1 drop <= ", fmt(*t.max_drop, 3), " points");
  return text;
}

std::string plan_json(const ReportContext& ctx, const PlanResult& r) {
  json candidates = json::array();
  for (const Candidate& c : r.candidates) candidates.push_back(candidate_json(c));
  json fronts = json::object(), choices = json::object();
  for (const auto& name : r.runtimes) {
    fronts[name] = r.fronts.at(name);
    choices[name] = choice_json(r.choices.at(name));
  }
  const json target = {{"speedup", optional_json(ctx.target.speedup)},
                       {"latency_ms", optional_json(ctx.target.latency_ms)},
                       {"max_drop", optional_json(ctx.target.max_drop)}};
  const json j = {{"program", "vitslim"},
                  {"version", kVersion},
                  {"job", "plan"},
                  {"model", ctx.shape},
                  {"weights", ctx.weights},
                  {"batch", ctx.batch},
                  {"threads", ctx.threads},
                  {"device", ctx.device},
                  {"runtimes", r.runtimes},
                  {"target", target},
                  {"met", r.met()},
                  {"unpruned_probe_top1", optional_json(r.unpruned_top1)},
                  {"fixed_half", r.fixed_half ? json(*r.fixed_half) : json(nullptr)},
                  {"candidates", candidates},
                  {"fronts", fronts},
                  {"choices", choices},
                  {"skipped", r.skipped},
                  {"settings", ctx.config_ini}};
  return json_text(j) + "\n";
}

std::string probe_text(const Candidate& c, const PlanResult& r) {
  if (!c.probe_top1) return "-";
  std::string text = fmt(*c.probe_top1, 4);
  if (r.unpruned_top1 && !c.blocks.empty()) text += cat(" (", fmt(*c.probe_top1 - *r.unpruned_top1, 3), ")");
  return text;
}

void front_table(std::ostringstream& md, const PlanResult& r, const std::string& runtime) {
  const Choice& choice = r.choices.at(runtime);
  md << "| candidate | speed-up | ms per batch | params (M) | MACs/img (G) | TE | probe top-1 (vs unpruned) |\n"
     << "|---|---|---|---|---|---|---|\n";
  for (size_t i : r.fronts.at(runtime)) {
    const Candidate& c = r.candidates[i];
    const Timing& t = c.timings.at(runtime);
    const bool chosen = choice.chosen && *choice.chosen == i;
    md << "| " << (chosen ? "**" + c.label() + "** (chosen)" : c.label()) << " | " << fmt(t.speedup(), 3) << "x | "
       << fmt(t.ms, 4) << " | " << fmt(static_cast<double>(c.params) / 1e6, 4) << " | "
       << fmt(static_cast<double>(c.macs) / 1e9, 4) << " | " << fmt(c.te, 4) << " | " << probe_text(c, r) << " |\n";
  }
}

void compare_fixed_half(std::ostringstream& md, const PlanResult& r, const std::string& runtime) {
  const Choice& choice = r.choices.at(runtime);
  if (!r.fixed_half || !choice.chosen) return;
  const Candidate& half = r.candidates[*r.fixed_half];
  const Candidate& chosen = r.candidates[*choice.chosen];
  md << "\nAgainst NOSE at a fixed 50% (the paper's way), " << half.label() << ": "
     << fmt(half.timings.at(runtime).speedup(), 3) << "x, probe top-1 " << probe_text(half, r)
     << "; the plan: " << fmt(chosen.timings.at(runtime).speedup(), 3) << "x, probe top-1 " << probe_text(chosen, r)
     << ".\n";
}

std::string report_md(const ReportContext& ctx, const PlanResult& r) {
  std::ostringstream md;
  md << "# vitslim plan\n\nModel " << ctx.shape << (ctx.weights.empty() ? "" : ", weights `" + ctx.weights + "`")
     << "; target: " << target_line(ctx.target) << "; batch " << ctx.batch << ", " << ctx.threads
     << " threads, libtorch on " << ctx.device << "; median of " << ctx.rounds
     << " alternating rounds, the unpruned model timed in every group.\n\n"
     << (ctx.probe_steps > 0
             ? cat("Probes: ", ctx.probe_steps,
                   " dilution fine-tuning steps per block set on the "
                   "front, top-1 on the first ",
                   ctx.probe_images ? std::to_string(ctx.probe_images) : std::string("(all)"), " test images.")
             : std::string("No probes (--probe-steps 0): accuracy is ranked by |TE| alone."))
     << "\n\nResult: " << (r.met() ? "the target is met" : "**the target is not met**") << ".\n";
  for (const auto& runtime : r.runtimes) {
    std::string reason = r.choices.at(runtime).reason;
    if (!reason.empty()) reason[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(reason[0])));
    md << "\n## " << runtime << "\n\n" << reason << ".\n\nThe front (speed-up against |TE|, ToMe r):\n\n";
    front_table(md, r, runtime);
    compare_fixed_half(md, r, runtime);
  }
  if (!ctx.train_ini.empty()) {
    const Candidate& c = r.candidates[*r.choices.at(r.runtimes.front()).chosen];
    md << "\n## Next\n\nThe full fine-tune of the choice on " << r.runtimes.front() << ": `vitslim train --config "
       << (fs::path(ctx.out_dir) / "plan-train.ini").string() << "` (edit epochs and output there)"
       << (c.tome_r > 0 ? cat("; then deploy with `--tome-r ", c.tome_r, "` (eval, predict, export)") : "") << ".\n";
  }
  if (!r.skipped.empty()) {
    md << "\nLeft out:\n\n";
    for (const auto& s : r.skipped) md << "- " << s << "\n";
  }
  md << "\nFigure: `scripts/plot_plan.py " << ctx.out_dir << "` draws probe top-1 against measured speed-up, one "
     << "curve per runtime, into plots/plan.png.\n";
  return md.str();
}

}  // namespace

void write_plan_report(const ReportContext& ctx, const PlanResult& result) {
  OutputSet outputs;
  outputs.write((fs::path(ctx.out_dir) / "plan.json").string(), plan_json(ctx, result));
  outputs.write((fs::path(ctx.out_dir) / "report.md").string(), report_md(ctx, result));
  const std::string ini = (fs::path(ctx.out_dir) / "plan-train.ini").string();
  if (!ctx.train_ini.empty()) outputs.write(ini, ctx.train_ini);
  outputs.commit();
  if (ctx.train_ini.empty()) fs::remove(ini);  // an earlier plan's choice is not this one's
}

namespace {

std::optional<double> optional_double(const json& j) {
  return j.is_null() ? std::nullopt : std::optional<double>(j.get<double>());
}
std::optional<size_t> optional_index(const json& j) {
  return j.is_null() ? std::nullopt : std::optional<size_t>(j.get<size_t>());
}

Candidate candidate_from_json(const json& j) {
  Candidate c;
  c.criterion = j.at("criterion").get<std::string>();
  c.blocks = j.at("removed").get<std::vector<int64_t>>();
  c.tome_r = j.at("tome_r").get<int64_t>();
  c.te = j.at("te").get<double>();
  c.params = j.at("params").get<int64_t>();
  c.macs = j.at("macs").get<int64_t>();
  for (const auto& [runtime, t] : j.at("timings").items()) {
    c.timings[runtime] = {t.at("ms").get<double>(), t.at("unpruned_ms").get<double>()};
  }
  c.probe_top1 = optional_double(j.at("probe_top1"));
  c.on_front = j.at("on_front").get<bool>();
  return c;
}

}  // namespace

PlanResult read_plan_result(const std::string& path, const std::string& what) {
  const json j = read_job_json(path, "plan", what);
  PlanResult r;
  try {
    for (const json& c : j.at("candidates")) r.candidates.push_back(candidate_from_json(c));
    r.runtimes = j.at("runtimes").get<std::vector<std::string>>();
    for (const auto& name : r.runtimes) {
      r.fronts[name] = j.at("fronts").at(name).get<std::vector<size_t>>();
      const json& c = j.at("choices").at(name);
      r.choices[name] = {optional_index(c.at("chosen")), optional_index(c.at("closest")),
                         c.at("reason").get<std::string>()};
    }
    r.unpruned_top1 = optional_double(j.at("unpruned_probe_top1"));
    r.fixed_half = optional_index(j.at("fixed_half"));
    r.skipped = j.at("skipped").get<std::vector<std::string>>();
  } catch (const json::exception& e) {
    throw Error(cat(what, " ", path, ": malformed plan result (", e.what(), ")"));
  }
  for (const auto& [name, choice] : r.choices) {
    for (const auto& index : {choice.chosen, choice.closest}) {
      if (index && *index >= r.candidates.size())
        throw Error(
            cat(what, " ", path, ": runtime ", name, " chooses candidate ", *index, " of ", r.candidates.size()));
    }
  }
  if (r.candidates.empty()) throw Error(cat(what, " ", path, ": no candidates (the unpruned model is the first)"));
  return r;
}

}  // namespace vitslim::plan
