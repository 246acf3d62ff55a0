// Implements the search job (see search_job.h): plan, resume, rounds of distributed scoring,
// ranking, result files.
#include "search/search_job.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/version.h"
#include "data/batch.h"
#include "data/dataset.h"
#include "io/trace.h"
#include "io/trace_reader.h"
#include "model/checkpoint.h"
#include "search/nose.h"
#include "search/scorer.h"

namespace vitslim::search {
namespace {

namespace fs = std::filesystem;
using entropy::ChannelStats;

constexpr int kResultTag = 11;
constexpr const char* kSchema = "vitslim-search/1";
constexpr int64_t kExhaustiveLimit = 20000;
constexpr int64_t kMaxDepth = 52;  // layer masks are stored exactly in float64
constexpr int64_t kBytesPerMiB = int64_t{1} << 20;
constexpr size_t kMessageHeader = 2;  // [evaluation, shard, stats...]

using Clock = std::chrono::steady_clock;

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// What the scores depend on: weights, shape, calibration data and estimator (not the ratios or
// the search method, so a finished file serves another ratio or beam width too).
std::string fingerprint(model::VisionTransformer& model, const SearchInputs& c) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  auto mix = [&](const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  };
  for (const auto& p : model->named_parameters()) {
    auto t = p.value().detach().contiguous();
    mix(p.key().data(), p.key().size());
    mix(t.data_ptr(), static_cast<size_t>(t.numel() * t.element_size()));
  }
  std::ostringstream what;
  what << model->shape().describe() << "|" << c.data.dataset << "|" << c.data.path << "|" << c.data.split << "|"
       << c.data.calib_images << "|" << c.data.batch_size << "|" << c.runtime.seed << "|"
       << to_string(c.search.estimator);
  for (double v : c.data.mean) what << "|m" << v;
  for (double v : c.data.std) what << "|s" << v;
  const std::string text = what.str();
  mix(text.data(), text.size());
  return hex(h);
}

struct ItemKey {
  uint64_t mask;
  int64_t shard;
  bool operator<(const ItemKey& o) const { return mask != o.mask ? mask < o.mask : shard < o.shard; }
};

// Rank 0's view: everything scored so far, the output file, candidate bookkeeping.
class Ledger {
 public:
  Ledger(const SearchInputs& c, const std::string& print, int64_t depth, int64_t channels, int64_t shards,
         Clock::time_point start)
      : c_(c), fingerprint_(print), depth_(depth), channels_(channels), shards_(shards), start_(start) {}

  // Loads the items of an earlier run of the same search, then opens the new output.
  void open() {
    const std::string out = c_.search.out, partial = out + ".partial", resume = out + ".resume";
    std::string source;
    if (fs::exists(resume)) {
      source = resume;
    } else if (fs::exists(partial)) {
      source = partial;
    } else if (fs::exists(out)) {
      source = out;
    }
    if (!source.empty()) load(source);  // checked before anything is moved
    if (source == partial) {
      fs::rename(partial, resume);  // kept until the new file holds everything it had
      source = resume;
    }
    trace_ = std::make_unique<io::TraceFile>(out,
                                             std::map<std::string, std::string>{{"program", "vitslim"},
                                                                                {"version", kVersion},
                                                                                {"schema", kSchema},
                                                                                {"job", "search"},
                                                                                {"config", c_.config_ini},
                                                                                {"fingerprint", fingerprint_}},
                                             /*keep_partial_on_error=*/true);
    const int64_t width = ChannelStats::serialized_size(channels_);
    trace_->create_series("/search/item_keys", 2, "scored items: [layer mask, shard]");
    trace_->create_series("/search/item_stats", width, "per item: [count, mean[K], M2[K]] of the head output");
    trace_->create_series("/search/candidates", 6,
                          "finished candidates: [step, layer mask, size, entropy, TE, seconds since start]");
    trace_->create_array("/search/selection", {static_cast<int64_t>(c_.search.ratios.size()), 5},
                         "per requested ratio: [ratio, count, layer mask, entropy, TE]");
    trace_->create_array("/search/full_entropy", {1}, "H(G | full model)");
    trace_->create_array("/search/complete", {1}, "1 when the search finished");
    trace_->set_attribute("/search", "estimator", to_string(c_.search.estimator));
    trace_->set_attribute("/search", "depth", std::to_string(depth_));
    trace_->start_swmr();
    for (const auto& [key, stats] : items_) append_item(key, stats);
    trace_->flush();
    if (source == resume) fs::remove(resume);
    if (!items_.empty()) log_info(cat("resumed ", items_.size(), " scored items from ", source));
    resumed_ = static_cast<int64_t>(items_.size());
  }

  const std::vector<double>* find(const ItemKey& key) const {
    auto it = items_.find(key);
    return it == items_.end() ? nullptr : &it->second;
  }
  void add(const ItemKey& key, std::vector<double> stats) {
    append_item(key, stats);
    trace_->flush();  // a kill loses at most the item being scored
    items_[key] = std::move(stats);
  }
  void add_candidate(int64_t step, const Scored& s) {
    const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    trace_->append("/search/candidates", {static_cast<double>(step), static_cast<double>(mask_of(s.set)),
                                          static_cast<double>(s.set.size()), s.entropy, s.te, seconds});
    trace_->flush();
  }
  io::TraceFile& trace() { return *trace_; }
  int64_t resumed() const { return resumed_; }

 private:
  void load(const std::string& path) {
    io::TraceReader reader(path);
    const std::string schema = reader.attribute("/", "schema");
    if (schema != kSchema) {
      throw Error(cat("--out ", c_.search.out, ": existing file ", path, " is not a vitslim search result",
                      schema.empty() ? "" : cat(" (schema '", schema, "')"), "; move it away or choose another --out"));
    }
    if (reader.attribute("/", "fingerprint") != fingerprint_) {
      throw Error(
          cat("--out ", c_.search.out, ": existing file ", path,
              " comes from a search with other weights, data or estimator; move it away or choose another --out"));
    }
    std::vector<int64_t> kd, sd;
    auto keys = reader.read("/search/item_keys", &kd);
    auto stats = reader.read("/search/item_stats", &sd);
    const int64_t width = ChannelStats::serialized_size(channels_);
    if (kd.size() != 2 || sd.size() != 2 || kd[1] != 2 || sd[1] != width) {
      throw Error(cat(path, ": search items are malformed"));
    }
    // A kill can leave the two series at different lengths, or a row extended but not written
    // (fill value 0): only rows whose image count equals their shard's size are taken.
    const int64_t rows = std::min(kd[0], sd[0]);
    int64_t dropped = 0;
    for (int64_t i = 0; i < rows; ++i) {
      const double shard = keys[2 * i + 1], count = stats[static_cast<size_t>(i * width)];
      if (!(shard >= 0 && shard < static_cast<double>(shards_)) || count != shard_size(static_cast<int64_t>(shard))) {
        ++dropped;
        continue;
      }
      ItemKey key{static_cast<uint64_t>(keys[2 * i]), static_cast<int64_t>(shard)};
      items_[key] = std::vector<double>(stats.begin() + i * width, stats.begin() + (i + 1) * width);
    }
    if (dropped) log_warn(cat(path, ": ", dropped, " incomplete item rows ignored (they will be scored again)"));
  }
  void append_item(const ItemKey& key, const std::vector<double>& stats) {
    trace_->append("/search/item_keys", {static_cast<double>(key.mask), static_cast<double>(key.shard)});
    trace_->append("/search/item_stats", stats);
  }

  double shard_size(int64_t shard) const {
    const int64_t bs = c_.data.batch_size;
    return static_cast<double>(std::min(bs, c_.data.calib_images - shard * bs));
  }

  const SearchInputs& c_;
  std::string fingerprint_;
  int64_t depth_, channels_, shards_;
  Clock::time_point start_;
  std::map<ItemKey, std::vector<double>> items_;
  std::unique_ptr<io::TraceFile> trace_;
  int64_t resumed_ = 0;
};

class Search {
 public:
  Search(const SearchInputs& c, const dist::MpiSession& mpi) : c_(c), mpi_(mpi), start_(Clock::now()) {}

  int run();

 private:
  // Scores `evals` over every shard; on rank 0 returns them with entropy and TE, elsewhere empty.
  std::vector<Scored> round(int64_t step, const std::vector<Evaluation>& evals);
  void handle(int64_t step, const std::vector<Evaluation>& evals, const std::vector<double>& message);
  // Merges evaluation e's shards (all present) and records its score.
  void finish(int64_t step, const std::vector<Evaluation>& evals, size_t e);
  at::Tensor shard_images(int64_t shard);

  const SearchInputs& c_;
  const dist::MpiSession& mpi_;
  Clock::time_point start_;
  std::optional<model::VisionTransformer> model_;
  std::unique_ptr<PrefixScorer> scorer_;
  std::unique_ptr<data::Dataset> dataset_;
  std::vector<int64_t> calib_;
  std::vector<double> mean_, std_;
  int64_t shards_ = 0, depth_ = 0, channels_ = 0;
  std::unique_ptr<Ledger> ledger_;
  double full_entropy_ = 0;
  int64_t computed_items_ = 0;
  // Per round, rank 0: per evaluation, the shards' serialized statistics still missing.
  std::vector<std::vector<std::vector<double>>> partial_;
  std::vector<int64_t> missing_;
  std::vector<Scored> results_;
};

at::Tensor Search::shard_images(int64_t shard) {
  const int64_t bs = c_.data.batch_size;
  const int64_t lo = shard * bs, hi = std::min<int64_t>(lo + bs, static_cast<int64_t>(calib_.size()));
  std::vector<int64_t> chunk(calib_.begin() + lo, calib_.begin() + hi);
  return data::load_batch(*dataset_, chunk, mean_, std_, (*model_)->shape()).images;
}

void Search::handle(int64_t step, const std::vector<Evaluation>& evals, const std::vector<double>& message) {
  const auto e = static_cast<size_t>(message[0]);
  const auto s = static_cast<int64_t>(message[1]);
  std::vector<double> stats(message.begin() + kMessageHeader, message.end());
  ledger_->add({mask_of(evals[e].set), s}, stats);
  partial_[e][static_cast<size_t>(s)] = std::move(stats);
  if (--missing_[e] == 0) finish(step, evals, e);
}

void Search::finish(int64_t step, const std::vector<Evaluation>& evals, size_t e) {
  ChannelStats merged(channels_);  // shard order: the same numbers for any number of ranks
  for (const auto& part : partial_[e]) merged.merge(ChannelStats::deserialize(part.data(), channels_));
  Scored scored{evals[e].set, merged.entropy(), 0.0};
  if (evals[e].set.empty()) full_entropy_ = scored.entropy;
  scored.te = evals[e].set.empty() ? 0.0 : full_entropy_ - scored.entropy;
  results_[e] = scored;
  ledger_->add_candidate(step, scored);
}

std::vector<Scored> Search::round(int64_t step, const std::vector<Evaluation>& evals) {
  // Rank 0 lists the (evaluation, shard) items not scored yet; everyone gets the list.
  std::vector<int64_t> pending;
  if (mpi_.rank() == 0) {
    partial_.assign(evals.size(), std::vector<std::vector<double>>(static_cast<size_t>(shards_)));
    missing_.assign(evals.size(), shards_);
    results_.assign(evals.size(), Scored{});
    for (size_t e = 0; e < evals.size(); ++e) {
      for (int64_t s = 0; s < shards_; ++s) {
        if (const auto* stats = ledger_->find({mask_of(evals[e].set), s})) {
          partial_[e][static_cast<size_t>(s)] = *stats;  // found in the file: received now
          if (--missing_[e] == 0) finish(step, evals, e);
        } else {
          pending.push_back(static_cast<int64_t>(e) * shards_ + s);
        }
      }
    }
  }
  pending = mpi_.broadcast(pending);
  std::map<int64_t, std::vector<size_t>> work;  // shard -> evaluations, grouped by base
  for (int64_t item : pending) work[item % shards_].push_back(static_cast<size_t>(item / shards_));
  std::vector<int64_t> work_shards;
  for (auto& [shard, list] : work) {
    std::stable_sort(list.begin(), list.end(), [&](size_t a, size_t b) { return evals[a].base < evals[b].base; });
    work_shards.push_back(shard);
  }

  // A rank first takes the shards it held last round (their prefix caches are its own), then
  // helps with the others from the far end; every shard is scored by exactly one rank.
  const int64_t n = static_cast<int64_t>(work_shards.size());
  std::vector<int64_t> order;
  for (int64_t t = 0; t < n; ++t) {
    if (work_shards[static_cast<size_t>(t)] % mpi_.world_size() == mpi_.rank()) order.push_back(t);
  }
  for (int64_t t = n - 1; t >= 0; --t) {
    if (work_shards[static_cast<size_t>(t)] % mpi_.world_size() != mpi_.rank()) order.push_back(t);
  }
  dist::WorkClaims claims(mpi_, n);
  std::vector<double> message;
  for (int64_t t : order) {
    if (!claims.claim(t)) continue;
    const int64_t shard = work_shards[static_cast<size_t>(t)];
    at::Tensor images = shard_images(shard);
    for (size_t e : work[shard]) {
      ChannelStats stats = scorer_->evaluate(shard, images, evals[e].set, evals[e].base);
      message = {static_cast<double>(e), static_cast<double>(shard)};
      auto flat = stats.serialize();
      message.insert(message.end(), flat.begin(), flat.end());
      ++computed_items_;
      if (mpi_.rank() == 0) {
        handle(step, evals, message);
        while (mpi_.receive(message, kResultTag, false) >= 0) handle(step, evals, message);
      } else {
        mpi_.isend(message, 0, kResultTag);
      }
    }
  }
  if (mpi_.rank() != 0) {
    mpi_.wait_sends();
    return {};
  }
  int64_t outstanding = 0;
  for (int64_t m : missing_) outstanding += m;
  for (; outstanding > 0; --outstanding) {
    mpi_.receive(message, kResultTag, true);
    handle(step, evals, message);
  }
  return results_;
}

int Search::run() {
  SearchInputs c = c_;
  model::use_default_preset(c.model);
  model_ = model::build_model(c.model, c.runtime.seed);
  (*model_)->eval();
  const ModelShape& shape = (*model_)->shape();
  depth_ = shape.depth;
  if (depth_ > kMaxDepth) throw Error(cat("search supports models of up to ", kMaxDepth, " blocks"));
  const Estimator estimator = c.search.estimator;
  // Candidates: every block whose attention still exists (a compact model's removed blocks are
  // not candidates), or --layers.
  const auto removed = (*model_)->removed_blocks();
  LayerSet allowed = c.search.layers;
  if (allowed.empty()) {
    for (int64_t b = 0; b < depth_; ++b) {
      if (!std::binary_search(removed.begin(), removed.end(), b)) allowed.push_back(b);
    }
  }
  std::sort(allowed.begin(), allowed.end());
  for (int64_t b : allowed) {
    if (b >= depth_) throw Error(cat("--layers: block ", b, " does not exist (depth ", depth_, ")"));
  }
  for (int64_t b : removed) {
    if (std::binary_search(allowed.begin(), allowed.end(), b)) {
      throw Error(cat("--layers: block ", b, "'s attention is already removed in the weights; exclude it"));
    }
  }
  std::vector<int64_t> counts;
  for (double r : c.search.ratios) {
    const int64_t k = layers_for_ratio(r, depth_);
    if (k < 1) throw Error(cat("--ratios: ", r, " of ", depth_, " blocks rounds to 0 layers"));
    if (k > static_cast<int64_t>(allowed.size())) {
      throw Error(cat("--ratios: ", r, " of ", depth_, " blocks asks for ", k, " layers but only ", allowed.size(),
                      " are candidates"));
    }
    counts.push_back(k);
    log_info(cat("ratio ", r, " -> ", k, " of ", depth_, " attention layers (round(ratio x depth))"));
  }
  const int64_t max_count = *std::max_element(counts.begin(), counts.end());

  dataset_ = data::open_dataset(c.data, shape, c.runtime.seed);
  calib_ = data::calibration_indices(dataset_->size(), c.data.calib_images, c.runtime.seed);
  const data::Normalisation norm = data::normalisation(c.data, *dataset_);
  mean_ = norm.mean;
  std_ = norm.std;
  if (c.search.exhaustive) {
    for (int64_t k : counts) {
      if (binomial(static_cast<int64_t>(allowed.size()), k) > static_cast<uint64_t>(kExhaustiveLimit)) {
        throw Error(cat("--exhaustive: ", binomial(static_cast<int64_t>(allowed.size()), k), " sets of ", k, " out of ",
                        allowed.size(), " layers exceed the limit of ", kExhaustiveLimit,
                        "; use the greedy or beam search"));
      }
    }
  }
  shards_ = (static_cast<int64_t>(calib_.size()) + c.data.batch_size - 1) / c.data.batch_size;
  if (!c.search.json.empty()) check_writable_output(c.search.json, "--json");
  scorer_ = std::make_unique<PrefixScorer>(*model_, estimator, c.search.cache_mb * kBytesPerMiB);
  channels_ = scorer_->channels();
  const std::string method = c.search.exhaustive ? "exhaustive" : c.search.beam > 1 ? "beam" : "greedy";
  log_info(cat("search: ", method, (c.search.beam > 1 ? cat(" (width ", c.search.beam, ")") : std::string()),
               ", estimator ", to_string(c.search.estimator), ", ", allowed.size(), " candidate layers ",
               to_string(allowed), ", ", calib_.size(), " calibration images in ", shards_, " shards, ",
               mpi_.world_size(), " rank(s)"));
  if (mpi_.rank() == 0) {
    ledger_ = std::make_unique<Ledger>(c, fingerprint(*model_, c), depth_, channels_, shards_, start_);
    ledger_->open();
  }

  round(0, {Evaluation{{}, {}}});  // step 0: the full model
  if (mpi_.rank() == 0 && !std::isfinite(full_entropy_)) {
    throw Error(cat("H(G | full model) is not finite (", full_entropy_, "): the head output has channels that are ",
                    "constant over the calibration set; TE cannot rank candidates"));
  }
  nlohmann::json steps = nlohmann::json::array();
  std::map<int64_t, Scored> chosen;  // count -> best set
  std::vector<LayerSet> beams = {{}};
  auto record_step = [&](int64_t step, const std::vector<Scored>& scored, const std::vector<Scored>& kept) {
    nlohmann::json cands = nlohmann::json::array();
    for (const auto& s : best(scored, static_cast<int64_t>(scored.size()))) {
      cands.push_back({{"layers", s.set}, {"entropy", s.entropy}, {"te", s.te}});
    }
    steps.push_back({{"step", step}, {"best", kept.front().set}, {"te", kept.front().te}, {"candidates", cands}});
    log_info(cat("step ", step, ": best ", to_string(kept.front().set), " TE ", kept.front().te, " (", scored.size(),
                 " candidates)"));
  };
  if (c.search.exhaustive) {
    std::vector<int64_t> sizes = counts;
    std::sort(sizes.begin(), sizes.end());
    sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
    for (int64_t k : sizes) {
      auto evals = all_subsets(allowed, k, kExhaustiveLimit);
      auto scored = round(k, evals);
      if (mpi_.rank() == 0) {
        auto kept = best(scored, 1);
        chosen[k] = kept.front();
        record_step(k, scored, kept);
      }
    }
  } else {
    for (int64_t k = 1; k <= max_count; ++k) {
      auto evals = expand(beams, allowed);
      auto scored = round(k, evals);
      std::vector<int64_t> masks;
      if (mpi_.rank() == 0) {
        auto kept = best(scored, c.search.beam);
        chosen[k] = kept.front();
        record_step(k, scored, kept);
        for (const auto& s : kept) masks.push_back(static_cast<int64_t>(mask_of(s.set)));
      }
      masks = mpi_.broadcast(masks);
      beams.clear();
      for (int64_t m : masks) beams.push_back(set_of_mask(static_cast<uint64_t>(m)));
    }
  }
  const long long forwards = mpi_.allreduce_sum(scorer_->block_forwards());
  const long long items = mpi_.allreduce_sum(computed_items_);
  if (mpi_.rank() != 0) return 0;

  const long long naive = items * depth_;
  const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  std::vector<double> selection;
  nlohmann::json selections = nlohmann::json::array();
  std::printf("ratio  layers  selected            TE          H(G|skipped)   [H(G|full) = %.6f]\n", full_entropy_);
  for (size_t i = 0; i < counts.size(); ++i) {
    const Scored& s = chosen.at(counts[i]);
    selection.insert(selection.end(), {c.search.ratios[i], static_cast<double>(counts[i]),
                                       static_cast<double>(mask_of(s.set)), s.entropy, s.te});
    selections.push_back(
        {{"ratio", c.search.ratios[i]}, {"count", counts[i]}, {"layers", s.set}, {"te", s.te}, {"entropy", s.entropy}});
    std::printf("%5.3f  %6lld  %-18s %12.6f  %12.6f\n", c.search.ratios[i], static_cast<long long>(counts[i]),
                to_string(s.set).c_str(), s.te, s.entropy);
  }
  std::printf("block-forwards %lld vs %lld without the prefix cache (%.3fx); %lld items scored, %lld resumed; %.1f s\n",
              forwards, naive, naive ? static_cast<double>(forwards) / naive : 0.0, items,
              static_cast<long long>(ledger_->resumed()), seconds);
  auto& trace = ledger_->trace();
  trace.write("/search/selection", selection);
  trace.write("/search/full_entropy", {full_entropy_});
  trace.write("/search/complete", {1.0});
  trace.commit();
  if (!c.search.json.empty()) {
    nlohmann::json j = {{"program", "vitslim"},
                        {"version", kVersion},
                        {"job", "search"},
                        {"schema", kSchema},
                        {"model",
                         {{"img_size", shape.img_size},
                          {"patch_size", shape.patch_size},
                          {"in_chans", shape.in_chans},
                          {"embed_dim", shape.embed_dim},
                          {"depth", depth_},
                          {"num_heads", shape.num_heads},
                          {"num_classes", shape.num_classes},
                          {"weights", c.model.weights}}},
                        {"method", method},
                        {"beam", c.search.beam},
                        {"estimator", to_string(c.search.estimator)},
                        {"candidate_layers", allowed},
                        {"calib_images", calib_.size()},
                        {"shards", shards_},
                        {"world_size", mpi_.world_size()},
                        {"full_entropy", full_entropy_},
                        {"selections", selections},
                        {"steps", steps},
                        {"block_forwards", forwards},
                        {"naive_block_forwards", naive},
                        {"items_scored", items},
                        {"items_resumed", ledger_->resumed()},
                        {"seconds", seconds},
                        {"trace", c.search.out}};
    write_file_atomic(c.search.json, j.dump(2) + "\n");
  }
  return 0;
}

}  // namespace

void run_search(const SearchInputs& inputs, const dist::MpiSession& mpi) {
  Search search(inputs, mpi);
  search.run();
}

}  // namespace vitslim::search
