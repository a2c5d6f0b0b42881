// Execution backends: where a packed dense stack runs. The CPU backend is always built; a CUDA
// backend plugs in here (MAAS_CUDA=ON|AUTO in CMake defines MAAS_WITH_CUDA and adds src/cuda).
#pragma once
#include <cstddef>

namespace maas {

struct BackendInfo {
  const char* name;
  bool compiled;   // built into this binary
  bool available;  // usable on this machine now (a device is present)
};

// The backends this binary knows, CPU first.
const BackendInfo* ListBackends(size_t* count) noexcept;

}  // namespace maas
