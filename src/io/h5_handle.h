// HDF5 C API identifiers as owned values and its calls checked, for the io layer's two files
// (trace.cpp writes, trace_reader.cpp reads; nothing else includes hdf5.h). An H5Handle closes its
// identifier with the matching H5?close when it goes; `checked` turns a negative identifier or
// status into an Error carrying the caller's description (the call, the file and the object).
#pragma once

#include <hdf5.h>

#include <string>

#include "core/error.h"

namespace vitslim::io {

// Owns one HDF5 identifier and closes it with the matching H5?close.
class H5Handle {
 public:
  H5Handle() = default;
  H5Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~H5Handle() { reset(); }
  H5Handle(H5Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = H5I_INVALID_HID; }
  H5Handle& operator=(H5Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      close_ = o.close_;
      o.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = H5I_INVALID_HID;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
  herr_t (*close_)(hid_t) = nullptr;
};

inline hid_t checked(hid_t id, const std::string& what) {
  if (id < 0) throw Error(what);
  return id;
}
inline void checked_status(herr_t rc, const std::string& what) {
  if (rc < 0) throw Error(what);
}

}  // namespace vitslim::io
