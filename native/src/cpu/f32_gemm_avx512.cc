// fp32 GEMM for AVX-512F: a 14×32 register tile (28 zmm accumulators, embedded broadcasts) for
// Zen 4 and the rest, a 6×64 one with register broadcasts for full-width AVX-512 cores (Intel's
// with B prefetched 16 K steps ahead, Zen 5's with C's lines asked for 64 K steps before a tile's
// end); masked
// tails; and the optimizer update pass, over the AVX-512 vector traits of f32_zmm_traits.h.
// Built with this file's own ISA flags; dispatch calls it only where CPUID and XCR0 allow.
#include <immintrin.h>

#include "f32_gemm_driver.h"
#include "f32_update_driver.h"
#include "f32_zmm_traits.h"

namespace maas {
namespace {

// VAvx512, with each row's A value broadcast into a register first (vbroadcastss, then a
// register FMA): on Zen 5 the embedded {1to16} form's loads bound the 6×64 tile well below the
// FMA peak, and one broadcast feeds 4 FMAs here.
struct VAvx512Broadcast : VAvx512 {
  static R fmadd_bcast(const float* p, R b, R acc) { return _mm512_fmadd_ps(_mm512_set1_ps(*p), b, acc); }
};

}  // namespace
}  // namespace maas

MAAS_DEFINE_F32_GEMM_PREFETCH(f32_gemm_bias_act_6x64__avx512f_broadcast_pf16, VAvx512Broadcast, 6, 4, 768, 96, 16)
MAAS_DEFINE_F32_GEMM_TUNED(f32_gemm_bias_act_6x64__avx512f_broadcast, VAvx512Broadcast, 6, 4, 1024, 96, 0, 64)
MAAS_DEFINE_F32_GEMM(f32_gemm_bias_act_14x32__avx512f, VAvx512, 14, 2)
MAAS_DEFINE_F32_UPDATE(f32_update__avx512f, VAvx512)
