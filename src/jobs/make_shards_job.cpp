// `vitslim make-shards`: WebDataset tar shards from an image folder (data/make_shards.h does the work).
#include <chrono>
#include <cstdio>

#include "data/make_shards.h"
#include "dist/mpi_session.h"
#include "jobs/common.h"
#include "jobs/job.h"

namespace vitslim {

namespace {

constexpr double kMegabyte = 1e6;

void declare(Options& o, Config& c) {
  c.data.declare_dataset(o);
  c.data.declare_source(o);
  c.make_shards.declare(o);
  c.runtime.declare(o);
}

void validate(const Config& c) {
  c.data.validate();
  if (!c.data.image_folder()) throw Error("make-shards: --data-set must be imagenet or folder (an image folder)");
  if (c.data.path.empty()) throw Error("make-shards: --data-path (the image folder) is required");
  if (c.make_shards.out.empty()) throw Error("make-shards: --out (e.g. DIR/train-%06d.tar) is required");
}

JobResult run(const Config& c, const dist::MpiSession& mpi) {
  if (mpi.rank() != 0) return {};
  const auto start = std::chrono::steady_clock::now();
  const auto w = data::make_shards(c.data, c.make_shards, c.runtime.seed);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "make-shards: %lld samples in %lld shard(s) (%s .. %s), %.1f MB, %lld unreadable image(s) skipped, %.1f s\n",
      static_cast<long long>(w.samples), static_cast<long long>(w.shards), w.first.c_str(), w.last.c_str(),
      static_cast<double>(w.bytes) / kMegabyte, static_cast<long long>(w.skipped), seconds);
  return {};
}

}  // namespace

Job make_shards_job() {
  return make_job("make-shards", "write WebDataset tar shards (<key>.jpg + <key>.cls) from an image folder", declare,
                  validate, run);
}

}  // namespace vitslim
