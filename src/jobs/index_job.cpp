// `vitslim index`: lists an image folder (or reads the headers of WebDataset shards) once into the
// dataset index file every job and rank can share (data/formats/item_index.h), and reports its size,
// the time it took and the memory it holds per image.
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "core/cpu_memory.h"
#include "data/formats/folder.h"
#include "data/formats/shards.h"
#include "dist/mpi_session.h"
#include "jobs/common.h"
#include "jobs/job.h"

namespace vitslim {

namespace {

constexpr double kBytesPerMib = 1024.0 * 1024.0;

void declare(Options& o, Config& c) {
  c.data.declare_dataset(o);
  c.data.declare_source(o);
  c.runtime.declare(o);
}

void validate(const Config& c) {
  c.data.validate();
  if (c.data.kind().index == data::IndexSource::None) throw Error("index: --data-set must be imagenet, folder or wds");
  if (c.data.path.empty()) throw Error("index: --data-path is required");
}

JobResult run(const Config& c, const dist::MpiSession& mpi) {
  if (mpi.rank() != 0) return {};
  const bool skip = c.data.bad_images == BadImages::Skip;
  malloc_trim(0);
  const double rss_before = resident_mib();
  const auto start = std::chrono::steady_clock::now();
  const data::ItemIndex x = c.data.kind().index == data::IndexSource::Shards
                                ? data::shard_index({c.data.path, c.data.split, c.data.index, 0, skip})
                                : data::folder_index({c.data.path, c.data.kind().imagenet_layout, c.data.split,
                                                      c.data.class_index, c.data.index, skip});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  malloc_trim(0);  // the listing's temporaries go back; what stays is the index
  const double rss_after = resident_mib();
  data::report_index_problems(x, skip);
  const double n = std::max<double>(1, static_cast<double>(x.size()));
  std::error_code ec;
  const auto file_bytes = c.data.index == "none" ? 0 : std::filesystem::file_size(c.data.index, ec);
  std::printf(
      "index: %lld images in %zu %s, %.3f s; %s%s; in memory %.1f B/image (entries %zu B + names %.1f B), "
      "resident +%.1f B/image\n",
      static_cast<long long>(x.size()), x.containers.size(),
      x.kind == data::ItemIndex::Kind::Shards ? "shards" : "classes", seconds,
      c.data.index.empty() ? "in the cache directory" : c.data.index.c_str(),
      ec || c.data.index.empty() ? "" : cat(" (", file_bytes, " bytes)").c_str(),
      static_cast<double>(x.memory_bytes()) / n, sizeof(data::ItemIndex::Entry),
      static_cast<double>(x.arena.size()) / n, (rss_after - rss_before) * kBytesPerMib / n);
  return {};
}

}  // namespace

Job index_job() {
  return make_job("index",
                  "list an image folder (or read WebDataset shard headers) once into a dataset index file (--index)",
                  declare, validate, run);
}

}  // namespace vitslim
