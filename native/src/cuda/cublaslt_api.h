// The part of cuBLASLt's C API that maas calls, declared here because the library is opened at run
// time (cuda_libraries.cc) and its headers need not be installed where maas builds. The values are
// cuBLASLt's ABI (cublasLt.h and cublas_api.h of CUDA 12 and 13), which NVIDIA keeps stable.
#pragma once
#include <cstddef>
#include <cstdint>

namespace maas::lt {

using Status = int;  // cublasStatus_t: 0 is success
using Handle = void*;
using MatmulDesc = void*;
using MatrixLayout = void*;
using Preference = void*;

struct MatmulAlgo {
  uint64_t data[8];
};
struct HeuristicResult {
  MatmulAlgo algo;
  size_t workspace_size;
  Status state;
  float waves_count;
  int reserved[4];
};

// cublasComputeType_t
constexpr int kCompute32F = 68;
constexpr int kCompute32FFastTf32 = 77;
constexpr int kCompute32I = 72;
// cublasLtMatmulDescAttributes_t
constexpr int kDescComputeType = 0;
constexpr int kDescTransA = 3;
constexpr int kDescTransB = 4;
constexpr int kDescEpilogue = 7;
constexpr int kDescBiasPointer = 8;
// cublasOperation_t
constexpr int kOpN = 0;
constexpr int kOpT = 1;
// cublasLtEpilogue_t
constexpr int kEpilogueDefault = 1;
constexpr int kEpilogueRelu = 2;
constexpr int kEpilogueBias = 4;
constexpr int kEpilogueReluBias = 6;
constexpr int kEpilogueGelu = 32;  // GELU's tanh approximation
constexpr int kEpilogueGeluBias = 36;
// cublasLtMatmulPreferenceAttributes_t
constexpr int kPrefMaxWorkspaceBytes = 1;

// The entry points, resolved once from the opened library.
struct Api {
  Status (*create)(Handle*);
  Status (*destroy)(Handle);
  Status (*desc_create)(MatmulDesc*, int compute, int scale_type);
  Status (*desc_destroy)(MatmulDesc);
  Status (*desc_set)(MatmulDesc, int attr, const void* buf, size_t size);
  Status (*layout_create)(MatrixLayout*, int type, uint64_t rows, uint64_t cols, int64_t ld);
  Status (*layout_destroy)(MatrixLayout);
  Status (*pref_create)(Preference*);
  Status (*pref_destroy)(Preference);
  Status (*pref_set)(Preference, int attr, const void* buf, size_t size);
  Status (*heuristic)(Handle, MatmulDesc, MatrixLayout a, MatrixLayout b, MatrixLayout c, MatrixLayout d, Preference,
                      int requested, HeuristicResult* results, int* returned);
  Status (*matmul)(Handle, MatmulDesc, const void* alpha, const void* a, MatrixLayout, const void* b, MatrixLayout,
                   const void* beta, const void* c, MatrixLayout, void* d, MatrixLayout, const MatmulAlgo*,
                   void* workspace, size_t workspace_size, void* stream);
};

}  // namespace maas::lt
