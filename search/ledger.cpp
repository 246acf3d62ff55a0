// Implements the search ledger (see ledger.h).
#include "search/ledger.h"

#include <cstdio>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "core/options.h"
#include "core/version.h"
#include "entropy/channel_stats.h"
#include "io/trace_reader.h"

namespace vitslim::search {

namespace fs = std::filesystem;
using entropy::ChannelStats;

namespace {

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

std::string fingerprint(model::VisionTransformer& model, const SearchInputs& c) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  auto mix = [&](const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  };
  for (const auto& p : model->named_parameters()) {
    auto t = p.value().detach().to(at::kCPU).contiguous();
    mix(p.key().data(), p.key().size());
    mix(t.data_ptr(), static_cast<size_t>(t.numel() * t.element_size()));
  }
  // Every data option (a new one is included without an edit here), each value in the exact text
  // --dump-config writes; then the shape, the seed (it draws the calibration subset) and the
  // estimator. Only what cannot change a score stays out: outputs, threads, the cache budget and
  // the search's ratios/beam (its items are keyed by their layer sets).
  DataConfig data = c.data;
  Options declared;
  data.declare(declared);
  std::ostringstream what;
  for (const Option& o : declared.all()) what << o.flag << "=" << o.text().value_or("<unset>") << "\n";
  what << "shape=" << model->shape().describe() << "\nseed=" << c.runtime.seed
       << "\nestimator=" << to_string(c.search.estimator) << "\n";
  // Statistics from a GPU differ from the CPU's in the last bits: a ledger resumes on its device
  // kind (CPU fingerprints are those of the versions before --device).
  if (model->device().is_cuda()) what << "device=cuda\ntf32=" << c.compute.tf32 << "\n";
  const std::string text = what.str();
  mix(text.data(), text.size());
  return hex(h);
}

std::string Ledger::resume_source() const {
  const std::string out = c_.search.out, partial = out + ".partial", resume = out + ".resume";
  if (fs::exists(resume)) return resume;
  if (fs::exists(partial)) return partial;
  if (fs::exists(out)) return out;
  return "";
}

void Ledger::open() {
  const std::string out = c_.search.out, partial = out + ".partial", resume = out + ".resume";
  std::string source = resume_source();
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
  create_series();
  for (const auto& [key, stats] : items_) append_item(key, stats);
  trace_->flush();
  if (source == resume) fs::remove(resume);
  if (!items_.empty()) log_info(cat("resumed ", items_.size(), " scored items from ", source));
  resumed_ = static_cast<int64_t>(items_.size());
}

void Ledger::create_series() {
  const int64_t width = ChannelStats::serialized_size(channels_);
  trace_->create_series("/search/item_keys", 2, "scored items: [layer mask, shard]");
  trace_->create_series("/search/item_stats", width, "per item: [count, mean[K], M2[K]] of the head output");
  trace_->create_series("/search/candidates", 6,
                        "finished candidates: [step, layer mask, size, entropy, TE, seconds since start]");
  trace_->create_array("/search/selection", {static_cast<int64_t>(c_.search.ratios.size()), 5},
                       "per requested ratio: [ratio, count, layer mask, entropy, TE]");
  trace_->create_array("/search/full_entropy", {1}, "H(G | full model)");
  trace_->create_array("/search/complete", {1}, "1 when the search finished");
  if (!c_.search.nose()) {
    trace_->create_array("/search/layer_scores", {depth_},
                         cat("per block: the ", to_string(c_.search.criterion), " score (lowest removed first)"));
  }
  trace_->set_attribute("/search", "estimator", to_string(c_.search.estimator));
  trace_->set_attribute("/search", "criterion", to_string(c_.search.criterion));
  trace_->set_attribute("/search", "depth", std::to_string(depth_));
  trace_->start_swmr();
}

const std::vector<double>* Ledger::find(const ItemKey& key) const {
  auto it = items_.find(key);
  return it == items_.end() ? nullptr : &it->second;
}

void Ledger::add(const ItemKey& key, std::vector<double> stats) {
  append_item(key, stats);
  trace_->flush();  // a kill loses at most the item being scored
  items_[key] = std::move(stats);
}

void Ledger::add_candidate(int64_t step, const Scored& s) {
  const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  trace_->append("/search/candidates", {static_cast<double>(step), static_cast<double>(mask_of(s.set)),
                                        static_cast<double>(s.set.size()), s.entropy, s.te, seconds});
  trace_->flush();
}

void Ledger::load(const std::string& path) {
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

void Ledger::append_item(const ItemKey& key, const std::vector<double>& stats) {
  trace_->append("/search/item_keys", {static_cast<double>(key.mask), static_cast<double>(key.shard)});
  trace_->append("/search/item_stats", stats);
}

double Ledger::shard_size(int64_t shard) const {
  const int64_t bs = c_.data.batch_size;
  return static_cast<double>(std::min(bs, c_.data.calib_images - shard * bs));
}

}  // namespace vitslim::search
