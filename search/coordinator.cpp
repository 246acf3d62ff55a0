// Implements the search job (see coordinator.h): plan, resume, rounds of distributed scoring,
// ranking, result files. Another --criterion ranks the layers by its per-layer score instead
// (criteria.h) and scores the sets it chooses in the same rounds, so every criterion's choice has
// its transfer entropy measured the same way.
#include "search/coordinator.h"

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
#include "core/cuda_device.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/version.h"
#include "data/formats/dataset.h"
#include "data/loading/batch.h"
#include "data/open.h"
#include "dist/gpu_select.h"
#include "dist/mpi_session.h"
#include "io/trace.h"
#include "io/trace_reader.h"
#include "model/autocast.h"
#include "model/checkpoint.h"
#include "search/criteria.h"
#include "search/ledger.h"
#include "search/nose.h"
#include "search/scorer.h"

namespace vitslim::search {
namespace {

namespace fs = std::filesystem;
using entropy::ChannelStats;

constexpr int kResultTag = 11;
constexpr int64_t kExhaustiveLimit = 20000;
constexpr int64_t kMaxDepth = 52;  // layer masks are stored exactly in float64
constexpr int64_t kBytesPerMiB = int64_t{1} << 20;
constexpr size_t kMessageHeader = 2;  // [evaluation, shard, stats...]

using Clock = std::chrono::steady_clock;

class Search {
 public:
  Search(const SearchInputs& c, const dist::MpiSession& mpi) : c_(c), mpi_(mpi), start_(Clock::now()) {}

  SearchResult run();

 private:
  void choose_candidates();
  void open_data();
  void search_sets();
  void rank_sets();  // another --criterion than NOSE
  void record_step(int64_t step, const std::vector<Scored>& scored, const std::vector<Scored>& kept);
  SearchResult selections() const;
  void report(const SearchResult& result, long long forwards, long long items);
  void write_json(const SearchResult& result, long long forwards, long long naive, long long items,
                  double seconds) const;
  std::string method() const {
    if (!c_.search.nose()) return "ranked";
    return c_.search.exhaustive ? "exhaustive" : c_.search.beam > 1 ? "beam" : "greedy";
  }
  // Scores `evals` over every shard; on rank 0 returns them with entropy and TE, elsewhere empty.
  std::vector<Scored> round(int64_t step, const std::vector<Evaluation>& evals);
  std::vector<int64_t> pending_items(int64_t step, const std::vector<Evaluation>& evals);
  void score_shard(int64_t step, const std::vector<Evaluation>& evals, int64_t shard, const std::vector<size_t>& list);
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
  LayerSet allowed_;
  std::vector<int64_t> counts_;       // layers per requested ratio
  std::map<int64_t, Scored> chosen_;  // count -> best set
  std::vector<double> layer_scores_;  // per block, the criterion's importance (not NOSE)
  nlohmann::json steps_ = nlohmann::json::array();
};

at::Tensor Search::shard_images(int64_t shard) {
  const int64_t bs = c_.data.batch_size;
  const int64_t lo = shard * bs, hi = std::min<int64_t>(lo + bs, static_cast<int64_t>(calib_.size()));
  std::vector<int64_t> chunk(calib_.begin() + lo, calib_.begin() + hi);
  return cuda::to_device(data::load_batch(*dataset_, chunk, mean_, std_, (*model_)->shape()).images,
                         (*model_)->device());  // [B, C, H, W]
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

// Rank 0 lists the (evaluation, shard) items not scored yet (the ledger has the others); everyone
// gets the list.
std::vector<int64_t> Search::pending_items(int64_t step, const std::vector<Evaluation>& evals) {
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
  return mpi_.broadcast(pending);
}

// Scores every evaluation of one shard; rank 0 handles its own results and whatever arrived.
void Search::score_shard(int64_t step, const std::vector<Evaluation>& evals, int64_t shard,
                         const std::vector<size_t>& list) {
  at::Tensor images = shard_images(shard);
  std::vector<double> message;
  for (size_t e : list) {
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

std::vector<Scored> Search::round(int64_t step, const std::vector<Evaluation>& evals) {
  std::map<int64_t, std::vector<size_t>> work;  // shard -> evaluations, grouped by base
  for (int64_t item : pending_items(step, evals)) work[item % shards_].push_back(static_cast<size_t>(item / shards_));
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
  for (int64_t t : order) {
    if (claims.claim(t))
      score_shard(step, evals, work_shards[static_cast<size_t>(t)], work[work_shards[static_cast<size_t>(t)]]);
  }
  if (mpi_.rank() != 0) {
    mpi_.wait_sends();
    return {};
  }
  int64_t outstanding = 0;
  for (int64_t m : missing_) outstanding += m;
  std::vector<double> message;
  for (; outstanding > 0; --outstanding) {
    mpi_.receive(message, kResultTag, true);
    handle(step, evals, message);
  }
  return results_;
}

// The candidates (every block whose attention still exists, or --layers) and the layer count of
// every requested ratio.
void Search::choose_candidates() {
  const c10::Device device = dist::open_device(c_.compute, mpi_);
  model_ = model::build_model(c_.model, c_.runtime.seed);
  (*model_)->to(device);
  (*model_)->eval();
  depth_ = (*model_)->shape().depth;
  if (depth_ > kMaxDepth) throw Error(cat("search supports models of up to ", kMaxDepth, " blocks"));
  const auto removed = (*model_)->removed_blocks();
  allowed_ = c_.search.layers;
  if (allowed_.empty()) {
    for (int64_t b = 0; b < depth_; ++b) {
      if (!std::binary_search(removed.begin(), removed.end(), b)) allowed_.push_back(b);
    }
  }
  std::sort(allowed_.begin(), allowed_.end());
  for (int64_t b : allowed_) {
    if (b >= depth_) throw Error(cat("--layers: block ", b, " does not exist (depth ", depth_, ")"));
  }
  for (int64_t b : removed) {
    if (std::binary_search(allowed_.begin(), allowed_.end(), b)) {
      throw Error(cat("--layers: block ", b, "'s attention is already removed in the weights; exclude it"));
    }
  }
  for (double r : c_.search.ratios) {
    const int64_t k = layers_for_ratio(r, depth_);
    if (k < 1) throw Error(cat("--ratios: ", r, " of ", depth_, " blocks rounds to 0 layers"));
    if (k > static_cast<int64_t>(allowed_.size())) {
      throw Error(cat("--ratios: ", r, " of ", depth_, " blocks asks for ", k, " layers but only ", allowed_.size(),
                      " are candidates"));
    }
    counts_.push_back(k);
    log_info(cat("ratio ", r, " -> ", k, " of ", depth_, " attention layers (round(ratio x depth))"));
  }
}

// The calibration shards, the scorer and (rank 0) the ledger; the last checks before any output.
void Search::open_data() {
  const ModelShape& shape = (*model_)->shape();
  dataset_ = data::open_dataset(c_.data, shape, c_.runtime.seed, dist::root_share(mpi_));
  dist::agree_across_ranks(mpi_, "data", dataset_->size_summary());
  calib_ = data::calibration_indices(dataset_->size(), c_.data.calib_images, c_.runtime.seed);
  const Normalisation norm = data::normalisation(c_.data, *dataset_);
  mean_ = norm.mean;
  std_ = norm.std;
  if (c_.search.exhaustive) {
    for (int64_t k : counts_) {
      const uint64_t sets = binomial(static_cast<int64_t>(allowed_.size()), k);
      if (sets > static_cast<uint64_t>(kExhaustiveLimit)) {
        throw Error(cat("--exhaustive: ", sets, " sets of ", k, " out of ", allowed_.size(),
                        " layers exceed the limit of ", kExhaustiveLimit, "; use the greedy or beam search"));
      }
    }
  }
  shards_ = (static_cast<int64_t>(calib_.size()) + c_.data.batch_size - 1) / c_.data.batch_size;
  if (!c_.search.json.empty()) check_writable_output(c_.search.json, "--json");
  scorer_ =
      std::make_unique<PrefixScorer>(*model_, c_.search.estimator, c_.search.cache_mb * kBytesPerMiB, c_.search.bf16);
  model::warn_if_bf16_emulated((*model_)->device().type(), c_.search.bf16);
  channels_ = scorer_->channels();
  log_info(cat("search: ", method(), (c_.search.beam > 1 ? cat(" (width ", c_.search.beam, ")") : std::string()),
               ", estimator ", to_string(c_.search.estimator), ", ", allowed_.size(), " candidate layers ",
               to_string(allowed_), ", ", calib_.size(), " calibration images in ", shards_, " shards, ",
               mpi_.world_size(), " rank(s)"));
  if (mpi_.rank() == 0) {
    ledger_ = std::make_unique<Ledger>(c_, fingerprint(*model_, c_), depth_, channels_, shards_, start_);
    ledger_->open();
  }
}

void Search::record_step(int64_t step, const std::vector<Scored>& scored, const std::vector<Scored>& kept) {
  chosen_[step] = kept.front();
  nlohmann::json cands = nlohmann::json::array();
  for (const auto& s : best(scored, static_cast<int64_t>(scored.size()))) {
    cands.push_back({{"layers", s.set}, {"entropy", s.entropy}, {"te", s.te}});
  }
  steps_.push_back({{"step", step}, {"best", kept.front().set}, {"te", kept.front().te}, {"candidates", cands}});
  log_info(cat("step ", step, ": best ", to_string(kept.front().set), " TE ", kept.front().te, " (", scored.size(),
               " candidates)"));
}

// Exhaustive: every subset of each requested size. Greedy / beam: one layer more per step, the
// `beam` best sets of a step expanded in the next (rank 0 decides and broadcasts them).
void Search::search_sets() {
  round(0, {Evaluation{{}, {}}});  // step 0: the full model
  if (mpi_.rank() == 0 && !std::isfinite(full_entropy_)) {
    throw Error(cat("H(G | full model) is not finite (", full_entropy_, "): the head output has channels that are ",
                    "constant over the calibration set; TE cannot rank candidates"));
  }
  if (!c_.search.nose()) {
    rank_sets();
    return;
  }
  if (c_.search.exhaustive) {
    std::vector<int64_t> sizes = counts_;
    std::sort(sizes.begin(), sizes.end());
    sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
    for (int64_t k : sizes) {
      auto scored = round(k, all_subsets(allowed_, k, kExhaustiveLimit));
      if (mpi_.rank() == 0) record_step(k, scored, best(scored, 1));
    }
    return;
  }
  std::vector<LayerSet> beams = {{}};
  const int64_t max_count = *std::max_element(counts_.begin(), counts_.end());
  for (int64_t k = 1; k <= max_count; ++k) {
    auto scored = round(k, expand(beams, allowed_));
    std::vector<int64_t> masks;
    if (mpi_.rank() == 0) {
      auto kept = best(scored, c_.search.beam);
      record_step(k, scored, kept);
      for (const auto& s : kept) masks.push_back(static_cast<int64_t>(mask_of(s.set)));
    }
    masks = mpi_.broadcast(masks);
    beams.clear();
    for (int64_t m : masks) beams.push_back(set_of_mask(static_cast<uint64_t>(m)));
  }
}

// Every rank scores the layers on the whole calibration set (one forward pass), rank 0's least
// important layers of each count are taken, and the sets' TE is scored in rounds.
void Search::rank_sets() {
  layer_scores_ = layer_scores(
      c_.search.criterion, *model_, shards_, [this](int64_t i) { return shard_images(i); }, c_.runtime.seed);
  std::string text;
  for (int64_t b : allowed_) text += cat(text.empty() ? "" : ", ", b, ": ", fmt(layer_scores_[static_cast<size_t>(b)]));
  log_info(cat("criterion ", to_string(c_.search.criterion), " (lowest removed first): ", text));
  std::vector<int64_t> sizes = counts_;
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  for (int64_t k : sizes) {
    // Rank 0's choice for everyone (the scores agree, but not necessarily to the last bit).
    const auto mask = mpi_.broadcast({static_cast<int64_t>(mask_of(least_important(layer_scores_, allowed_, k)))});
    const LayerSet set = set_of_mask(static_cast<uint64_t>(mask.at(0)));
    auto scored = round(k, {Evaluation{set, {}}});
    if (mpi_.rank() == 0) record_step(k, scored, scored);
  }
}

SearchResult Search::selections() const {
  SearchResult result;
  result.full_entropy = full_entropy_;
  for (size_t i = 0; i < counts_.size(); ++i) {
    const Scored& s = chosen_.at(counts_[i]);
    result.selections.push_back({c_.search.ratios[i], counts_[i], s.set, s.te, s.entropy});
  }
  return result;
}

// Rank 0: the table on stdout, the selection into the result file (then complete), the JSON.
void Search::report(const SearchResult& result, long long forwards, long long items) {
  const long long naive = items * depth_;
  const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  std::vector<double> selection;
  std::printf("ratio  layers  selected            TE          H(G|skipped)   [H(G|full) = %.6f]\n", full_entropy_);
  for (const Selection& s : result.selections) {
    selection.insert(selection.end(),
                     {s.ratio, static_cast<double>(s.count), static_cast<double>(mask_of(s.layers)), s.entropy, s.te});
    std::printf("%5.3f  %6lld  %-18s %12.6f  %12.6f\n", s.ratio, static_cast<long long>(s.count),
                to_string(s.layers).c_str(), s.te, s.entropy);
  }
  std::printf("block-forwards %lld vs %lld without the prefix cache (%.3fx); %lld items scored, %lld resumed; %.1f s\n",
              forwards, naive, naive ? static_cast<double>(forwards) / naive : 0.0, items,
              static_cast<long long>(ledger_->resumed()), seconds);
  auto& trace = ledger_->trace();
  trace.write("/search/selection", selection);
  trace.write("/search/full_entropy", {full_entropy_});
  if (!layer_scores_.empty()) trace.write("/search/layer_scores", layer_scores_);
  trace.write("/search/complete", {1.0});
  trace.commit();
  if (!c_.search.json.empty()) write_json(result, forwards, naive, items, seconds);
}

void Search::write_json(const SearchResult& result, long long forwards, long long naive, long long items,
                        double seconds) const {
  const ModelShape& shape = (*model_)->shape();
  const nlohmann::json model = {{"img_size", shape.img_size},
                                {"patch_size", shape.patch_size},
                                {"in_chans", shape.in_chans},
                                {"embed_dim", shape.embed_dim},
                                {"depth", depth_},
                                {"num_heads", shape.num_heads},
                                {"num_classes", shape.num_classes},
                                {"weights", c_.model.weights}};
  nlohmann::json j = {{"program", "vitslim"},
                      {"version", kVersion},
                      {"job", "search"},
                      {"schema", kSchema},
                      {"model", model},
                      {"criterion", to_string(c_.search.criterion)},
                      {"method", method()},
                      {"beam", c_.search.beam},
                      {"estimator", to_string(c_.search.estimator)},
                      {"candidate_layers", allowed_},
                      {"calib_images", calib_.size()},
                      {"shards", shards_},
                      {"world_size", mpi_.world_size()},
                      {"layer_scores", layer_scores_.empty() ? nlohmann::json(nullptr) : nlohmann::json(layer_scores_)},
                      {"steps", steps_},
                      {"block_forwards", forwards},
                      {"naive_block_forwards", naive},
                      {"items_scored", items},
                      {"items_resumed", ledger_->resumed()},
                      {"seconds", seconds},
                      {"trace", c_.search.out}};
  j.update(nlohmann::json(result));  // full_entropy, selections (search/result.h)
  write_file_atomic(c_.search.json, json_text(j) + "\n");
}

SearchResult Search::run() {
  choose_candidates();
  open_data();
  search_sets();
  const long long forwards = mpi_.allreduce_sum(scorer_->block_forwards());
  const long long items = mpi_.allreduce_sum(computed_items_);
  std::string text;  // rank 0's result for every rank
  if (mpi_.rank() == 0) {
    const SearchResult result = selections();
    report(result, forwards, items);
    text = nlohmann::json(result).dump();
  }
  mpi_.broadcast_bytes(text, 0);
  return search_result_from_json(nlohmann::json::parse(text), "search result from rank 0");
}

}  // namespace

SearchResult run_search(const SearchInputs& inputs, const dist::MpiSession& mpi) {
  SearchInputs resolved = inputs;
  model::use_default_preset(resolved.model);
  Search search(resolved, mpi);
  return search.run();
}

}  // namespace vitslim::search
