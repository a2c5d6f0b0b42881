// Layout helpers shared by the packed buffers (fp32 "MAASPK01", int8 "MAASQ801"): every array
// starts on a kPackedAlign boundary counted from the buffer's first aligned byte.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "maas/dense_stack.h"

namespace maas::packed {

inline size_t AlignUp(size_t v, size_t a) { return (v + a - 1) / a * a; }

// The first kPackedAlign-aligned byte of a caller's buffer: where the header goes.
inline uint8_t* AlignedStart(const void* p) {
  return reinterpret_cast<uint8_t*>(AlignUp(reinterpret_cast<uintptr_t>(p), kPackedAlign));
}

// Reserves `bytes` at `*off` and moves `*off` to the next aligned offset; returns where they start.
inline uint64_t Take(size_t* off, size_t bytes) {
  const size_t at = *off;
  *off = AlignUp(at + bytes, kPackedAlign);
  return at;
}

// Aligned scratch memory (free with std::free); at least one aligned block even for 0 bytes.
inline void* AllocAligned(size_t bytes) {
  return std::aligned_alloc(kPackedAlign, AlignUp(bytes ? bytes : 1, kPackedAlign));
}

}  // namespace maas::packed
