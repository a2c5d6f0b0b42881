// The backend table. Only the CPU backend exists today; the CUDA entry reports whether the
// build enabled it, so JS can show the seam a CUDA backend will fill.
#include "maas/backend.h"

namespace maas {

namespace {
#ifdef MAAS_WITH_CUDA
constexpr bool kCudaCompiled = true;
#else
constexpr bool kCudaCompiled = false;
#endif
const BackendInfo kBackends[] = {
    {"cpu", true, true},
    {"cuda", kCudaCompiled, false},  // no CUDA kernels yet: never available
};
}  // namespace

const BackendInfo* ListBackends(size_t* count) noexcept {
  *count = sizeof(kBackends) / sizeof(kBackends[0]);
  return kBackends;
}

}  // namespace maas
