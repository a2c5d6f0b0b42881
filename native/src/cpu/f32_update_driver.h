// The optimizer update written once over a vector-traits type V (the same traits the GEMM
// driver uses); each ISA file instantiates it, and the CUDA backend runs it one element per
// thread over one-lane device traits (native/src/cuda/update.cu). Anonymous namespace: see
// f32_gemm_driver.h.
#pragma once
#include <cstddef>

#include "maas/f32_update.h"
#include "maas/host_device.h"

namespace maas {
namespace {

template <class V>
MAAS_HOST_DEVICE void F32Update(const F32UpdateArgs& a, size_t begin, size_t end) {
  using R = typename V::R;
  const R lr = V::set1(a.lr), scale = V::set1(a.scale), mom = V::set1(a.momentum);
  const R b1 = V::set1(a.beta1), b2 = V::set1(a.beta2), one_b1 = V::set1(1.f - a.beta1),
          one_b2 = V::set1(1.f - a.beta2);
  const R inv_c1 = V::set1(1.f / a.c1), inv_c2 = V::set1(1.f / a.c2), eps = V::set1(a.epsilon);
  const R rho = V::set1(a.rho), one_rho = V::set1(1.f - a.rho), keep = V::set1(1.f - a.decay);
  for (size_t i = begin; i < end; i += V::W) {
    const size_t count = end - i < V::W ? end - i : V::W;
    const bool full = count == V::W;
    auto load = [&](const float* p) { return full ? V::load(p + i) : V::load_tail(p + i, count, 0.f); };
    auto store = [&](float* p, R x) {
      if (full)
        V::store(p + i, x);
      else
        V::store_tail(p + i, x, count);
    };
    const R g = V::mul(load(a.g), scale);
    R w = load(a.w);
    switch (a.rule) {
      case UpdateRule::kSgd:
        w = V::sub(w, V::mul(lr, g));
        break;
      case UpdateRule::kMomentum:
      case UpdateRule::kNesterov: {
        const R acc = V::fmadd(mom, load(a.m), g);  // tfjs's accumulation: m·acc + g
        store(a.m, acc);
        w = V::sub(w, V::mul(lr, a.rule == UpdateRule::kNesterov ? V::fmadd(mom, acc, g) : acc));
        break;
      }
      case UpdateRule::kAdam: {
        const R m = V::fmadd(b1, load(a.m), V::mul(one_b1, g));
        const R v = V::fmadd(b2, load(a.v), V::mul(one_b2, V::mul(g, g)));
        store(a.m, m);
        store(a.v, v);
        w = V::mul(w, keep);  // adamw's decoupled decay (keep = 1 for adam)
        w = V::sub(w, V::div(V::mul(lr, V::mul(m, inv_c1)), V::add(V::sqrt(V::mul(v, inv_c2)), eps)));
        break;
      }
      case UpdateRule::kRmsProp:
      case UpdateRule::kRmsPropMomentum: {
        const R ms = V::fmadd(rho, load(a.v), V::mul(one_rho, V::mul(g, g)));
        store(a.v, ms);
        const R delta = V::div(V::mul(lr, g), V::sqrt(V::add(ms, eps)));
        if (a.rule == UpdateRule::kRmsPropMomentum) {
          const R acc = V::fmadd(mom, load(a.m), delta);
          store(a.m, acc);
          w = V::sub(w, acc);
        } else {
          w = V::sub(w, delta);
        }
        break;
      }
    }
    store(a.w, w);
  }
}

}  // namespace
}  // namespace maas

#define MAAS_DEFINE_F32_UPDATE(name, V)                                                              \
  namespace maas {                                                                                   \
  void name##_run(const F32UpdateArgs& a, size_t begin, size_t end) { F32Update<V>(a, begin, end); } \
  }
