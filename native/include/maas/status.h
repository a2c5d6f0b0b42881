// Status values returned by every kernel and op: native code reports, the binding throws.
// Kernels and ops are noexcept; a bad call is a status, never a crash.
#pragma once

namespace maas {

enum class Status : int {
  kOk = 0,
  kInvalidArgument = 1,  // a caller-side mistake: shapes, sizes, layout
  kOutOfMemory = 2,      // a scratch allocation failed
  kUnsupported = 3,      // the kernel or ISA is not available on this CPU/OS
  kCorruptPacked = 4,    // a packed weight buffer failed its header checks
};

inline const char* StatusName(Status s) noexcept {
  switch (s) {
    case Status::kOk:
      return "ok";
    case Status::kInvalidArgument:
      return "invalid argument";
    case Status::kOutOfMemory:
      return "out of memory";
    case Status::kUnsupported:
      return "unsupported";
    case Status::kCorruptPacked:
      return "corrupt packed buffer";
  }
  return "unknown";
}

#define MAAS_RETURN_IF_ERROR(expr)                                \
  do {                                                            \
    ::maas::Status maas_status_ = (expr);                         \
    if (maas_status_ != ::maas::Status::kOk) return maas_status_; \
  } while (0)

}  // namespace maas
