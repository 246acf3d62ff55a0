// Implements the CPU's bf16 capability check of --bf16 (see autocast.h).
#include "model/autocast.h"

#include <ATen/cpu/Utils.h>

#include "core/log.h"

namespace vitslim::model {
namespace {

bool cpu_has_native_bf16() {
  const auto caps = at::cpu::get_cpu_capabilities();
  for (const char* flag : {"avx512_bf16", "amx_bf16"}) {
    const auto it = caps.find(flag);
    if (it != caps.end() && it->second.isBool() && it->second.toBool()) return true;
  }
  return false;
}

}  // namespace

void warn_if_bf16_emulated(c10::DeviceType device, bool bf16) {
  if (!bf16 || device != c10::DeviceType::CPU || cpu_has_native_bf16()) return;
  log_warn(
      "--bf16: this CPU has neither AVX512-BF16 nor AMX-BF16, so bf16 autocast is emulated and will be slower "
      "than float32");
}

}  // namespace vitslim::model
