// Scoped bf16 autocast on the CPU or a CUDA device, as Python's
// `with torch.autocast(device_type, dtype=torch.bfloat16)`: sets the dtype (LibTorch's CUDA default
// is float16), enables autocast for that device type, and on leaving the outermost scope disables
// it and clears the cache of low-precision weight copies, so the next step casts the updated
// weights. A disabled guard does nothing. Autocast keeps LayerNorm, softmax, the losses and every
// reduction in float32; matrix products and convolutions run in bf16.
#pragma once

#include <ATen/autocast_mode.h>

namespace vitslim::model {

// Held across the batches of an inference pass (the weights do not change), one region also keeps
// autocast's bf16 copies of the weights for the whole pass instead of casting them per batch:
// nested regions inside it do not clear that cache.
class Bf16Autocast {
 public:
  Bf16Autocast(c10::DeviceType device, bool enabled) : device_(device), enabled_(enabled) {
    if (!enabled_) return;
    previous_ = at::autocast::is_autocast_enabled(device_);
    at::autocast::set_autocast_dtype(device_, at::kBFloat16);
    at::autocast::set_autocast_enabled(device_, true);
    at::autocast::increment_nesting();
  }
  ~Bf16Autocast() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(device_, previous_);
  }
  Bf16Autocast(const Bf16Autocast&) = delete;
  Bf16Autocast& operator=(const Bf16Autocast&) = delete;

 private:
  c10::DeviceType device_;
  bool enabled_;
  bool previous_ = false;
};

// The one line that --bf16 prints on a CPU without native bf16 (AVX512-BF16 or AMX-BF16), where
// autocast works but is emulated and slower than float32; nothing on CUDA or a capable CPU.
void warn_if_bf16_emulated(c10::DeviceType device, bool bf16);

}  // namespace vitslim::model
