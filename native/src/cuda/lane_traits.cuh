// One-lane vector traits for the CPU drivers' code run on the device, one element per thread. The
// device side uses the _rn intrinsics, which nvcc never contracts, so each element sees the roundings
// of the CPU's FMA paths (fmadd fused, every other operation separate); the host side, the same
// operations, is what native/tools/cuda_check compares the device with.
#pragma once
#include <cmath>
#include <cstddef>

namespace maas {

struct VCudaLane {
  using R = float;
  static constexpr size_t W = 1;
  __host__ __device__ static R set1(float x) { return x; }
  __host__ __device__ static R load(const float* p) { return *p; }
  __host__ __device__ static R load_tail(const float* p, size_t n, float fill) { return n ? *p : fill; }
  __host__ __device__ static void store(float* p, R x) { *p = x; }
  __host__ __device__ static void store_tail(float* p, R x, size_t n) {
    if (n) *p = x;
  }
#ifdef __CUDA_ARCH__
  __device__ static R add(R a, R b) { return __fadd_rn(a, b); }
  __device__ static R sub(R a, R b) { return __fsub_rn(a, b); }
  __device__ static R mul(R a, R b) { return __fmul_rn(a, b); }
  __device__ static R div(R a, R b) { return __fdiv_rn(a, b); }
  __device__ static R sqrt(R x) { return __fsqrt_rn(x); }
  __device__ static R fmadd(R a, R b, R c) { return __fmaf_rn(a, b, c); }
#else
  static R add(R a, R b) { return a + b; }
  static R sub(R a, R b) { return a - b; }
  static R mul(R a, R b) { return a * b; }
  static R div(R a, R b) { return a / b; }
  static R sqrt(R x) { return std::sqrt(x); }
  static R fmadd(R a, R b, R c) { return std::fma(a, b, c); }
#endif
};

}  // namespace maas
