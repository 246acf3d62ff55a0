// Implements the plan job (see planner.h): the removal order, the candidates, their timing in
// groups with the unpruned model as each group's reference, the probes of the front, the choice.
#include "plan/planner.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.h"
#include "core/dir_lock.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/text_file.h"
#include "deploy/onnx_export.h"
#include "dist/gpu_select.h"
#include "model/checkpoint.h"
#include "model/flops.h"
#include "model/tome.h"
#include "plan/probe.h"
#include "plan/report.h"
#include "plan/timing.h"
#include "plan/timing_cache.h"
#include "search/coordinator.h"
#include "search/nose.h"

namespace vitslim::plan {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int64_t kGroupSize = 8;                   // candidates per timing group (plus the reference)
constexpr double kGroupBytes = 2.0 * (1ull << 30);  // ONNX files written at once, at most

// One removal count's pick: the blocks and their transfer entropy.
struct Pick {
  search::LayerSet blocks;
  double te = 0;
};
using Order = std::map<int64_t, Pick>;  // by count

std::string criterion_file(const std::string& out_dir, const std::string& criterion, const std::string& ext) {
  return (fs::path(out_dir) / (criterion == "nose" ? "search" + ext : "search-" + criterion + ext)).string();
}

class Planner {
 public:
  Planner(const PlanInputs& in, const dist::MpiSession& mpi) : in_(in), p_(in.plan), mpi_(mpi) {}
  PlanResult run();

 private:
  std::string path(const std::string& name) const { return (fs::path(p_.out_dir) / name).string(); }
  void prepare();
  void check_inputs(bool write) const;
  Order order_for(const std::string& criterion);
  Order read_order(const std::string& file, const std::string& criterion, const std::string& flag) const;
  void search_here(Criterion criterion, const std::string& json_file);
  void make_candidates();
  void add_candidate(const std::string& criterion, const Pick& pick, int64_t r);
  model::TokenMerging merging(int64_t r) const;
  void time_runtime(const PlanRuntimeInfo& info);
  std::vector<double> time_group(const PlanRuntimeInfo& info, const std::vector<size_t>& group);
  std::vector<std::vector<size_t>> groups(const std::vector<size_t>& todo, bool onnx) const;
  std::string context(const PlanRuntimeInfo& info) const;
  void load_timings(const PlanRuntimeInfo& info);
  void probe();
  void write_outputs() const;

  const PlanInputs& in_;
  const PlanConfig& p_;
  const dist::MpiSession& mpi_;
  std::unique_ptr<DirLock> lock_;
  model::VisionTransformer model_{nullptr};
  ModelShape shape_;
  int64_t max_count_ = 0;
  std::vector<PlanRuntime> runtimes_;
  std::unique_ptr<TimingCache> cache_;
  std::set<std::string> warmed_;  // in-process runtimes whose first group ran
  PlanResult result_;
};

void Planner::prepare() {
  runtimes_ = p_.runtime_list();
  if (!p_.timer.empty() && (!fs::is_regular_file(p_.timer) || ::access(p_.timer.c_str(), X_OK) != 0)) {
    throw Error(cat("--timer ", p_.timer, ": not an executable file"));
  }
  for (PlanRuntime r : runtimes_) result_.runtimes.push_back(plan_runtime_info(r).name);
  if (mpi_.rank() == 0) lock_ = std::make_unique<DirLock>(p_.out_dir, "--out-dir");
  const c10::Device device = dist::open_device(in_.compute, mpi_);
  model_ = model::build_model(in_.model, in_.runtime.seed);
  if (!model_->removed_blocks().empty()) {
    throw Error(cat("plan: ", in_.model.weights, " already has attention removed in blocks {",
                    join_list(model_->removed_blocks()), "}; plan from the model with all its attention"));
  }
  shape_ = model_->shape();
  max_count_ = static_cast<int64_t>(std::floor(p_.max_ratio * static_cast<double>(shape_.depth) + 1e-9));
  if (max_count_ < 1) {
    throw Error(cat("--max-ratio ", p_.max_ratio, " of ", shape_.depth, " blocks allows no layer to be removed"));
  }
  if (p_.tome_start >= shape_.depth) {
    throw Error(cat("--tome-start ", p_.tome_start, ": the model has ", shape_.depth, " blocks"));
  }
  model_->to(device);
  if (mpi_.rank() == 0) {
    for (PlanRuntime r : runtimes_) {
      const PlanRuntimeInfo& info = plan_runtime_info(r);
      if (*info.engine) {
        check_external({timer_command(p_.timer), info.engine, info.precision, at::get_num_threads()}, info.name,
                       p_.out_dir);
      }
    }
    check_inputs(false);
    cache_ = std::make_unique<TimingCache>(path("timings.json"));
  }
}

// What the search and the probes kept in --out-dir depend on (the target does not; the timings are
// keyed in their own file). A rerun with other inputs is refused rather than mixed with old results.
// Compared before anything runs; written once the candidates stand (a failed first try binds nothing).
void Planner::check_inputs(bool write) const {
  const DataConfig& d = in_.data;
  const json inputs = {
      {"weights", in_.model.weights},
      {"model", shape_.describe()},
      {"data", {data::kind_name(d.dataset), d.path, d.split, d.calib_images, d.batch_size, d.mean, d.std}},
      {"seed", in_.runtime.seed},
      {"search", {p_.search, p_.beam}},
      {"tome",
       {p_.tome_start, enum_name(model::kTomeScheduleNames, in_.model.tome.schedule), in_.model.tome.prop_attn,
        in_.model.tome.mlp_blocks}},
      {"probe", {p_.probe_lr, p_.probe_images, p_.probe_steps}}};
  const std::string file = path("plan-inputs.json");
  const std::string text = json_text(inputs) + "\n";
  if (!fs::exists(file)) {
    if (write) write_file_atomic(file, text);
    return;
  }
  if (read_text_file(file, "--out-dir") != text) {
    throw Error(cat("--out-dir ", p_.out_dir, " holds a plan of other weights, data, search, ToMe or probe settings (",
                    file, "); use another --out-dir, or the same settings (the target may change)"));
  }
}

Order Planner::read_order(const std::string& file, const std::string& criterion, const std::string& flag) const {
  const search::SearchOrder recorded = search::read_search_order(file, flag);
  const auto fail = [&](const std::string& why) { return Error(cat(flag, " ", file, ": ", why)); };
  const std::vector<std::pair<const char*, int64_t>> fields = {
      {"img_size", shape_.img_size},      {"patch_size", shape_.patch_size}, {"in_chans", shape_.in_chans},
      {"embed_dim", shape_.embed_dim},    {"depth", shape_.depth},           {"num_heads", shape_.num_heads},
      {"num_classes", shape_.num_classes}};
  for (const auto& [name, mine] : fields) {
    const auto it = recorded.model.find(name);
    if (it == recorded.model.end() || it->second != mine) {
      throw fail(cat("a search of another model (", name, " ", it == recorded.model.end() ? "null" : cat(it->second),
                     "; this model: ", mine, ")"));
    }
  }
  if (recorded.criterion != criterion) {
    throw fail(
        cat("a search by criterion ", recorded.criterion.empty() ? "?" : recorded.criterion, ", not ", criterion));
  }
  Order order;
  for (const search::SearchStep& step : recorded.steps) {
    for (int64_t b : step.layers) {
      if (b < 0 || b >= shape_.depth) throw fail(cat("block ", b, " does not exist"));
    }
    order[static_cast<int64_t>(step.layers.size())] = Pick{step.layers, step.te};
  }
  if (order.empty()) throw fail("it selects no layers");
  return order;
}

// Counts 1 .. max_count, each with its own ratio, so that every count is selected and recorded.
void Planner::search_here(Criterion criterion, const std::string& json_file) {
  SearchConfig config;
  config.criterion = criterion;
  config.ratios.clear();
  for (int64_t k = 1; k <= max_count_; ++k) {
    config.ratios.push_back(static_cast<double>(k) / static_cast<double>(shape_.depth));
  }
  config.beam = criterion == Criterion::Nose ? p_.beam : 1;
  config.out = criterion_file(p_.out_dir, to_string(criterion), ".h5");
  config.json = json_file;
  config.validate();
  search::run_search({in_.model, in_.data, config, in_.compute, in_.runtime, in_.config_ini}, mpi_);
  mpi_.barrier();
}

Order Planner::order_for(const std::string& criterion) {
  if (criterion == "nose" && !p_.search.empty()) return read_order(p_.search, criterion, "--search");
  const std::string file = criterion_file(p_.out_dir, criterion, ".json");
  if (!fs::exists(file)) {
    log_info(cat("plan: searching (", criterion, ") for 1 to ", max_count_, " removed layers into ", file));
    search_here(parse_enum(kCriterionNames, criterion, "--criteria"), file);
  } else {
    log_info(cat("plan: reusing ", file));
  }
  return read_order(file, criterion, "--out-dir");
}

model::TokenMerging Planner::merging(int64_t r) const {
  if (r == 0) return {};
  model::TomeRequest request = in_.model.tome;
  request.r = {r};
  request.start = p_.tome_start;
  return model::resolve_tome(request, shape_.depth);
}

void Planner::add_candidate(const std::string& criterion, const Pick& pick, int64_t r) {
  Candidate c;
  c.criterion = pick.blocks.empty() ? "none" : criterion;
  c.blocks = pick.blocks;
  c.tome_r = r;
  c.te = pick.te;
  for (const Candidate& other : result_.candidates) {
    if (other.blocks == c.blocks && other.tome_r == r) return;  // another criterion's same pick
  }
  const model::TokenMerging tm = merging(r);
  std::vector<bool> attention(static_cast<size_t>(shape_.depth), true);
  for (int64_t b : c.blocks) attention[static_cast<size_t>(b)] = false;
  try {
    model::token_schedule(shape_.num_tokens(), shape_.num_prefix_tokens(), attention, tm);
  } catch (const Error& e) {
    result_.skipped.push_back(cat(c.label(), ": ", e.what()));
    return;
  }
  const model::Cost cost = model::analytic_cost(shape_, c.blocks, tm);
  c.params = cost.params;
  c.macs = cost.macs;
  result_.candidates.push_back(c);
}

void Planner::make_candidates() {
  std::vector<std::string> criteria = {"nose"};
  for (Criterion c : parse_criteria_list(p_.criteria, "--criteria")) criteria.push_back(to_string(c));
  std::vector<int64_t> rs = p_.tome_r;
  if (std::find(rs.begin(), rs.end(), 0) == rs.end()) rs.insert(rs.begin(), 0);
  for (int64_t r : rs) add_candidate("none", Pick{}, r);
  for (const std::string& criterion : criteria) {
    const Order order = order_for(criterion);
    for (int64_t k = 1; k <= max_count_; ++k) {
      const auto it = order.find(k);
      if (it == order.end()) {
        throw Error(cat(criterion == "nose" && !p_.search.empty() ? "--search " + p_.search : criterion,
                        ": no selection of ", k, " layers; --max-ratio ", p_.max_ratio, " needs 1 to ", max_count_,
                        " (search with --ratios up to ", fmt(p_.max_ratio, 3), ")"));
      }
      for (int64_t r : rs) add_candidate(criterion, it->second, r);
    }
  }
  const int64_t half = search::layers_for_ratio(0.5, shape_.depth);
  for (size_t i = 0; i < result_.candidates.size(); ++i) {
    const Candidate& c = result_.candidates[i];
    if (c.criterion == "nose" && c.tome_r == 0 && static_cast<int64_t>(c.blocks.size()) == half) result_.fixed_half = i;
  }
  log_info(
      cat("plan: ", result_.candidates.size(), " candidates (", result_.skipped.size(), " left out: r too large)"));
}

std::vector<std::vector<size_t>> Planner::groups(const std::vector<size_t>& todo, bool onnx) const {
  int64_t size = kGroupSize;
  if (onnx) {
    const double bytes = 4.0 * static_cast<double>(result_.candidates.front().params);
    size = std::clamp<int64_t>(static_cast<int64_t>(kGroupBytes / bytes) - 1, 1, kGroupSize);
  }
  std::vector<std::vector<size_t>> out;
  for (size_t i = 0; i < todo.size(); i += static_cast<size_t>(size)) {
    out.emplace_back(todo.begin() + static_cast<std::ptrdiff_t>(i),
                     todo.begin() + static_cast<std::ptrdiff_t>(std::min(todo.size(), i + static_cast<size_t>(size))));
  }
  return out;
}

// The reference (the unpruned model, ToMe off) first, then the group's candidates: ms per batch each.
std::vector<double> Planner::time_group(const PlanRuntimeInfo& info, const std::vector<size_t>& group) {
  std::vector<Variant> variants = {Variant{}};
  for (size_t i : group) {
    const Candidate& c = result_.candidates[i];
    variants.push_back({c.blocks, merging(c.tome_r)});
  }
  TimingSettings s{in_.data.batch_size, p_.warmup, p_.rounds};
  if (!*info.engine) {
    if (!warmed_.insert(info.name).second) s.warmup = 0;  // the same model, already warm
    return time_in_process(model_, variants, s, info.runtime == PlanRuntime::LibtorchBf16);
  }
  const std::string dir = path("onnx");
  fs::create_directories(dir);
  std::vector<std::string> files;
  for (size_t v = 0; v < variants.size(); ++v) {
    ModelRequest request = in_.model;
    request.removed_layers = variants[v].blocks;
    request.tome = {};
    auto m = model::build_model(request, in_.runtime.seed);
    m->set_token_merging(variants[v].merging);
    m->eval();
    files.push_back((fs::path(dir) / cat("model-", v, ".onnx")).string());
    deploy::write_onnx(m, model::model_metadata(m), files.back());
  }
  const ExternalTimer timer{timer_command(p_.timer), info.engine, info.precision, at::get_num_threads()};
  auto ms = time_external(timer, files, {shape_.in_chans, shape_.img_size, shape_.img_size}, s, dir);
  fs::remove_all(dir);
  return ms;
}

void Planner::time_runtime(const PlanRuntimeInfo& info) {
  const bool onnx = *info.engine != '\0';
  const std::string ctx = context(info);
  std::vector<size_t> todo;
  for (size_t i = 1; i < result_.candidates.size(); ++i) {
    if (!cache_->find(ctx, result_.candidates[i].key())) todo.push_back(i);
  }
  const auto batches = groups(todo, onnx);
  log_info(cat("plan: timing on ", info.name, ": ", todo.size(), " candidate(s) to time in ", batches.size(),
               " group(s), ", result_.candidates.size() - 1 - todo.size(), " cached"));
  for (size_t g = 0; g < batches.size(); ++g) {
    const std::vector<double> ms = time_group(info, batches[g]);
    for (size_t k = 0; k < batches[g].size(); ++k) {
      cache_->put(ctx, result_.candidates[batches[g][k]].key(), {ms[k + 1], ms[0]});
    }
    if (!cache_->find(ctx, result_.candidates[0].key())) cache_->put(ctx, result_.candidates[0].key(), {ms[0], ms[0]});
    cache_->save();
    log_info(
        cat("plan: ", info.name, " group ", g + 1, "/", batches.size(), ": unpruned ", fmt(ms[0], 4), " ms per batch"));
  }
  if (!cache_->find(ctx, result_.candidates[0].key())) {  // every candidate was cached, the reference not
    const std::vector<double> ms = time_group(info, {});
    cache_->put(ctx, result_.candidates[0].key(), {ms[0], ms[0]});
    cache_->save();
  }
}

std::string Planner::context(const PlanRuntimeInfo& info) const {
  const std::string device = *info.engine ? "cpu" : c10::DeviceTypeName(model_->device().type(), true);
  return TimingCache::context(info.name, device, at::get_num_threads(), in_.data.batch_size, shape_.describe());
}

void Planner::load_timings(const PlanRuntimeInfo& info) {
  const std::string ctx = context(info);
  for (Candidate& c : result_.candidates) {
    const auto t = cache_->find(ctx, c.key());
    if (!t) throw Error(cat(cache_->path(), ": no timing of ", c.label(), " on ", info.name));
    c.timings[info.name] = *t;
  }
}

// Front members, the unpruned model and NOSE at a fixed 50%: one probe per block set, evaluated at
// each of their r.
void Planner::probe() {
  if (p_.probe_steps == 0) return;
  std::map<std::vector<int64_t>, std::vector<int64_t>> sets;  // blocks -> r values
  std::vector<size_t> probed = {0};
  for (size_t i = 0; i < result_.candidates.size(); ++i) {
    if (result_.candidates[i].on_front) probed.push_back(i);
  }
  if (result_.fixed_half) probed.push_back(*result_.fixed_half);
  for (size_t i : probed) {
    auto& rs = sets[result_.candidates[i].blocks];
    if (std::find(rs.begin(), rs.end(), result_.candidates[i].tome_r) == rs.end())
      rs.push_back(result_.candidates[i].tome_r);
  }
  log_info(cat("plan: probing ", sets.size(), " block set(s), ", p_.probe_steps, " steps each"));
  for (auto& [blocks, rs] : sets) {
    std::sort(rs.begin(), rs.end());
    const std::vector<double> top1 = probe_block_set(in_, blocks, rs, mpi_);
    for (Candidate& c : result_.candidates) {
      const auto it = std::find(rs.begin(), rs.end(), c.tome_r);
      if (c.blocks == blocks && it != rs.end()) c.probe_top1 = top1[static_cast<size_t>(it - rs.begin())];
    }
  }
  result_.unpruned_top1 = result_.candidates.front().probe_top1;
}

PlanResult Planner::run() {
  prepare();
  make_candidates();
  if (mpi_.rank() == 0) check_inputs(true);
  if (mpi_.rank() == 0) {
    for (PlanRuntime r : runtimes_) time_runtime(plan_runtime_info(r));
  }
  mpi_.barrier();
  if (mpi_.rank() != 0) cache_ = std::make_unique<TimingCache>(path("timings.json"));
  for (PlanRuntime r : runtimes_) load_timings(plan_runtime_info(r));
  for (const std::string& name : result_.runtimes) {
    result_.fronts[name] = pareto_front(result_.candidates, name);
    for (size_t i : result_.fronts[name]) result_.candidates[i].on_front = true;
  }
  probe();
  const Target target{p_.target_speedup, p_.target_latency_ms, p_.max_drop};
  for (const std::string& name : result_.runtimes) {
    result_.choices[name] = choose(result_.candidates, result_.fronts[name], name, target, result_.unpruned_top1);
    log_info(cat("plan: ", name, ": ", result_.choices[name].reason));
  }
  if (mpi_.rank() == 0) write_outputs();
  mpi_.barrier();
  return result_;
}

void Planner::write_outputs() const {
  ReportContext ctx;
  ctx.out_dir = p_.out_dir;
  ctx.shape = shape_.describe();
  ctx.weights = in_.model.weights;
  ctx.batch = in_.data.batch_size;
  ctx.threads = at::get_num_threads();
  ctx.device = c10::DeviceTypeName(model_->device().type(), true);
  ctx.target = Target{p_.target_speedup, p_.target_latency_ms, p_.max_drop};
  ctx.probe_steps = p_.probe_steps;
  ctx.probe_images = p_.probe_images;
  ctx.rounds = p_.rounds;
  ctx.config_ini = in_.config_ini;
  const Choice& first = result_.choices.at(result_.runtimes.front());
  if (first.chosen) {
    const Candidate& c = result_.candidates[*first.chosen];
    TrainConfig t;
    t.dilute_layers = c.blocks;
    t.out_dir = (fs::path(p_.out_dir) / "train").string();
    DataConfig d = in_.data;
    d.split = "train";
    ctx.train_ini = in_.train_ini(in_.model, d, t);
  }
  write_plan_report(ctx, result_);
}

}  // namespace

PlanResult run_plan(const PlanInputs& inputs, const dist::MpiSession& mpi) { return Planner(inputs, mpi).run(); }

}  // namespace vitslim::plan
