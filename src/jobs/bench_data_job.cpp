// `vitslim bench-data`: input pipeline speed (data/loading/bench.h does the work).
#include "data/loading/bench.h"
#include "jobs/common.h"
#include "jobs/job.h"

namespace vitslim {

namespace {

void declare(Options& o, Config& c) {
  c.data.declare(o);
  o.refuse("class-index", "bench-data reads no label; --class-index is not used");
  c.data.declare_augment(o);
  c.bench_data.declare(o);
  o.add("img-size", c.model.img_size, "output side of the transforms (default 224)", positive());
  c.runtime.declare(o);
}

void validate(const Config& c) {
  c.data.validate();
  if (c.data.path.empty())
    throw Error("bench-data: --data-path (a folder of JPEG/PNG images, or shards with --data-set wds) is required");
  // Image files are listed directly: an index would be ignored.
  if (!c.data.index.empty() && c.data.kind().index != data::IndexSource::Shards)
    throw Error(cat("bench-data: --index ", c.data.index,
                    " applies to --data-set wds only (image files are listed "
                    "directly)"));
}

JobResult run(const Config& c, const dist::MpiSession&) {
  data::run_bench_data({c.data, c.bench_data, c.model.img_size});
  return {};
}

}  // namespace

Job bench_data_job() {
  return make_job("bench-data",
                  "input pipeline speed: JPEG decode, DeiT train/eval transforms, threaded loader (images/s)", declare,
                  validate, run);
}

}  // namespace vitslim
