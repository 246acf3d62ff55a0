// Scoped bf16 autocast on CUDA, as Python's `with torch.autocast("cuda", dtype=torch.bfloat16)`:
// sets the dtype (LibTorch's default is float16), enables autocast, and on leaving the outermost
// scope disables it and clears the cache of low-precision weight copies, so the next step casts
// the updated weights. A disabled guard does nothing.
#pragma once

#include <ATen/autocast_mode.h>

namespace vitslim::model {

class CudaBf16Autocast {
 public:
  explicit CudaBf16Autocast(bool enabled) : enabled_(enabled) {
    if (!enabled_) return;
    previous_ = at::autocast::is_autocast_enabled(at::kCUDA);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::increment_nesting();
  }
  ~CudaBf16Autocast() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(at::kCUDA, previous_);
  }
  CudaBf16Autocast(const CudaBf16Autocast&) = delete;
  CudaBf16Autocast& operator=(const CudaBf16Autocast&) = delete;

 private:
  bool enabled_;
  bool previous_ = false;
};

}  // namespace vitslim::model
