// Settings of `vitslim convert`, each field declared once with its option.
#pragma once

#include <cstdint>
#include <string>

#include "core/options.h"
#include "core/runtime.h"

namespace vitslim {

struct ConvertConfig {
  std::string out;  // .safetensors

  void declare(Options& o) {
    o.group("convert", "Convert output");
    o.add_path("out", out, ".safetensors file (timm key names)", PathRole::OutputFile);
  }
};

}  // namespace vitslim
