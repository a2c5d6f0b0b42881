// bf16-weight GEMM for AVX512_BF16: vdpbf16ps multiplies a pair of bf16 along K per fp32 lane, so
// one instruction does the work of two FMAs on half the bytes of B. A 6×64 register tile (24
// accumulators, A pairs broadcast from memory, 4 B vectors a step) as the fp32 Zen 5 kernel; its
// blocking is in f32_gemm.inc.
// Built with this file's own ISA flags; dispatch calls it only where CPUID and XCR0 allow.
#include <immintrin.h>

#include "bf16_gemm_driver.h"
#include "bf16_zmm_pairs.h"
#include "f32_zmm_traits.h"

namespace maas {
namespace {

struct TAvx512Bf16 : VAvx512 {
  using P = __m512i;
  static P bcast_pair(const uint32_t* p) { return _mm512_set1_epi32(static_cast<int>(*p)); }
  static P load_pairs(const uint32_t* p) { return _mm512_loadu_si512(p); }
  static R dot2(R acc, P a, P b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }
  // vcvtne2ps2bf16 rounds to nearest even, quiets NaNs and flushes subnormals: Bf16Bits' rule.
  static void to_pairs(const float* x, size_t n, uint32_t* dst) { ToPairsAvx512Bf16(x, n, dst); }
};

}  // namespace
}  // namespace maas

MAAS_DEFINE_BF16_GEMM(bf16_gemm_bias_act_6x64__avx512bf16, TAvx512Bf16, 6, 4, 1536, 48)
