// The CUDA backend's device check, for machines with a GPU and no Node (bench/device.sh builds it
// with the device's own nvcc): prints what QueryCuda sees, then runs the device epilogue for every
// activation and a dense layer through cuBLASLt in fp32, TF32 and bf16, with and without bias,
// against the double-precision reference on the host (the tolerances of test/native/cuda-backend).
// `--time` prints instead the bench rows bench/device.sh collects.
// Exit status: 0 all within tolerance, 1 a mismatch or a device error, 2 no usable device.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "../src/core/activation_backward.h"
#include "../src/cpu/f32_update_driver.h"
#include "../src/cuda/lane_traits.cuh"
#include "maas/cuda_backend.h"
#include "maas/reference.h"

namespace {

// fp32 on the device: libdevice's expf, tanhf and erfcf are within a few ulps of the double value.
constexpr double kRelative = 16.0 / (1 << 23);
constexpr double kAbsolute = 4.0 / (1 << 23);

// A fixed linear congruential sequence in [-0.5, 0.5): the same inputs on every run.
struct Lcg {
  uint64_t s = 0x9e3779b97f4a7c15ull;
  double next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(s >> 11) / 9007199254740992.0 - 0.5;
  }
};

// Each parameterised activation's parameters in the checks (kerasRelu with all three).
maas::ActivationParams ParamsFor(maas::Activation act) {
  maas::ActivationParams p;
  if (act == maas::Activation::kLeakyRelu) p.alpha = 0.3f;
  if (act == maas::Activation::kElu) p.alpha = 1.3f;
  if (act == maas::Activation::kKerasRelu) p = {0.2f, 2.5f, 0.5f};
  return p;
}

// The expected rows: act(float(z + bias)) in double; softmax row-wise, max-subtracted.
std::vector<double> Expected(const std::vector<float>& zb, size_t rows, size_t cols, maas::Activation act,
                             const maas::ActivationParams& p) {
  std::vector<double> want(zb.size());
  for (size_t r = 0; r < rows; ++r) {
    const float* in = zb.data() + r * cols;
    double* out = want.data() + r * cols;
    if (act == maas::Activation::kSoftmax) {
      double m = -INFINITY, sum = 0;
      for (size_t j = 0; j < cols; ++j) m = std::fmax(m, in[j]);
      for (size_t j = 0; j < cols; ++j) sum += out[j] = std::exp(in[j] - m);
      for (size_t j = 0; j < cols; ++j) out[j] /= sum;
    } else {
      for (size_t j = 0; j < cols; ++j)
        out[j] = act == maas::Activation::kLinear ? in[j] : maas::ActivateScalar<double>(act, in[j], p);
    }
  }
  return want;
}

// Dense layers in each precision against ref::F32Dense: |error| within the Lipschitz bound of
// the activation times (k ulps + the operand rounding) of the row's magnitude, plus a few ulps.
int CheckDense() {
  const size_t m = 33, k = 257, n = 65;
  Lcg lcg;
  std::vector<float> x(m * k), w(k * n), bias(n), y(m * n), want(m * n), mag(m * n);
  for (float& v : x) v = static_cast<float>(lcg.next() * 2);
  for (float& v : w) v = static_cast<float>(lcg.next() / 8);
  for (float& v : bias) v = static_cast<float>(lcg.next());
  const struct {
    maas::Activation act;
    double lipschitz;
  } acts[] = {{maas::Activation::kLinear, 1},  {maas::Activation::kRelu, 1},       {maas::Activation::kGeluTanh, 1.13},
              {maas::Activation::kGelu, 1.13}, {maas::Activation::kSigmoid, 0.25}, {maas::Activation::kTanh, 1},
              {maas::Activation::kSoftmax, 1}};
  const char* names[] = {"fp32", "tf32", "bf16"};
  const double rounding[] = {0, 1.0 / 1024, 1.0 / 128};
  int failures = 0;
  for (int pr = 0; pr < 3; ++pr) {
    for (const auto& a : acts) {
      for (int with_bias = 0; with_bias < 2; ++with_bias) {
        const float* b = with_bias ? bias.data() : nullptr;
        char error[256] = "";
        const maas::Status s =
            maas::CudaDenseHost(x.data(), w.data(), b, m, k, n, a.act, {}, static_cast<maas::CudaPrecision>(pr),
                                y.data(), error, sizeof(error));
        if (s != maas::Status::kOk) {
          std::printf("dense %s act %u%s: device error: %s\n", names[pr], static_cast<unsigned>(a.act),
                      with_bias ? "+bias" : "", error);
          ++failures;
          continue;
        }
        maas::ref::F32Dense(x.data(), k, w.data(), b, m, n, k, a.act, {}, want.data(), n, mag.data());
        double worst = 0;
        size_t bad = 0;
        for (size_t i = 0; i < m; ++i) {
          float row_mag = 0;
          for (size_t j = 0; j < n; ++j) row_mag = std::fmax(row_mag, mag[i * n + j]);
          for (size_t j = 0; j < n; ++j) {
            const size_t at = i * n + j;
            const double scale = a.act == maas::Activation::kSoftmax ? row_mag : mag[at];
            // cuBLASLt's fused GELU may use a fast tanh (relative error about 2^-11).
            const double gelu = a.act == maas::Activation::kGeluTanh ? scale / 2048.0 : 0.0;
            const double tol = a.lipschitz * (k / 16777216.0 + rounding[pr]) * scale + gelu +
                               kRelative * std::fabs(want[at]) + kAbsolute;
            const double excess = std::fabs(y[at] - want[at]) / tol;
            if (!(excess <= 1)) ++bad;
            if (excess > worst || std::isnan(excess)) worst = excess;
          }
        }
        std::printf("dense %s act %2u%s: %s (worst error %.2f of the tolerance)\n", names[pr],
                    static_cast<unsigned>(a.act), with_bias ? "+bias" : "     ", bad ? "FAIL" : "ok", worst);
        failures += bad ? 1 : 0;
      }
    }
  }
  return failures;
}

// The int8 layer against the same arithmetic on the host: x quantized with the device's scale by
// the same float operations, exact integer sums, the dequantization's one fma, then the activation
// in double. K and N off multiples of 4 exercise the padding.
int CheckInt8() {
  const size_t m = 33, k = 259, n = 67;
  Lcg lcg;
  std::vector<float> x(m * k), scale(n), bias(n), y(m * n);
  std::vector<int8_t> w(k * n);
  for (float& v : x) v = static_cast<float>(lcg.next() * 6);
  for (int8_t& v : w) v = static_cast<int8_t>(std::lrint(lcg.next() * 254));
  for (float& v : scale) v = static_cast<float>(0.001 + (lcg.next() + 0.5) * 0.01);
  for (float& v : bias) v = static_cast<float>(lcg.next());
  const maas::Activation acts[] = {maas::Activation::kLinear, maas::Activation::kRelu, maas::Activation::kGelu,
                                   maas::Activation::kSigmoid, maas::Activation::kSoftmax};
  int failures = 0;
  for (maas::Activation act : acts) {
    float xs = 0;
    char error[256] = "";
    if (maas::CudaInt8DenseHost(x.data(), w.data(), scale.data(), bias.data(), m, k, n, act, {}, y.data(), &xs, error,
                                sizeof(error)) != maas::Status::kOk) {
      std::printf("int8 act %u: device error: %s\n", static_cast<unsigned>(act), error);
      ++failures;
      continue;
    }
    // The scale must be the batch's own: max|x| / 127, as the host finds it.
    float amax = 0;
    for (float v : x) amax = std::fabs(v) > amax ? std::fabs(v) : amax;
    if (xs != (amax > 0 ? amax / 127.f : 1.f)) {
      std::printf("int8 act %2u: FAIL (x scale %.9g, want max|x| / 127 = %.9g)\n", static_cast<unsigned>(act), xs,
                  amax / 127.f);
      ++failures;
      continue;
    }
    std::vector<double> want(m * n);
    for (size_t i = 0; i < m; ++i) {
      for (size_t j = 0; j < n; ++j) {
        int64_t acc = 0;
        for (size_t p = 0; p < k; ++p) {
          const float v = x[i * k + p] / xs;
          const float q = std::fmin(std::fmax(std::rint(v), -127.f), 127.f);
          acc += static_cast<int64_t>(q) * w[p * n + j];
        }
        want[i * n + j] = std::fma(static_cast<float>(acc), xs * scale[j], bias[j]);
      }
    }
    std::vector<float> pre(want.begin(), want.end());
    const std::vector<double> expected = Expected(pre, m, n, act, {});
    double worst = 0;
    size_t bad = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
      const double excess = std::fabs(y[i] - expected[i]) / (kAbsolute + kRelative * std::fabs(expected[i]));
      if (!(excess <= 1)) ++bad;
      if (excess > worst || std::isnan(excess)) worst = excess;
    }
    std::printf("int8 act %2u: %s (x scale %.4g; worst error %.2f of the tolerance)\n", static_cast<unsigned>(act),
                bad ? "FAIL" : "ok", xs, worst);
    failures += bad ? 1 : 0;
  }
  return failures;
}

// Every optimizer rule (and AdamW's decay) on the device against the same code on the host over the
// same one-lane traits: the roundings are the same, so the results must be identical bit for bit.
int CheckUpdate() {
  const size_t count = 1000;
  Lcg lcg;
  int failures = 0;
  const char* names[] = {"sgd", "momentum", "nesterov", "adam", "rmsprop", "rmsprop+momentum", "adamw"};
  for (int r = 0; r < 7; ++r) {
    maas::F32UpdateArgs args;
    args.rule = static_cast<maas::UpdateRule>(r == 6 ? 3 : r);
    args.lr = 0.01f;
    args.scale = 0.9f;
    args.momentum = 0.9f;
    args.beta1 = 0.9f;
    args.beta2 = 0.999f;
    args.c1 = 1 - 0.9f * 0.9f;
    args.c2 = 1 - 0.999f * 0.999f;
    args.epsilon = 1e-7f;
    args.rho = 0.9f;
    args.decay = r == 6 ? 0.01f * 0.004f : 0.f;
    std::vector<float> w(count), g(count), m(count), v(count);
    for (size_t i = 0; i < count; ++i) {
      w[i] = static_cast<float>(lcg.next());
      g[i] = static_cast<float>(lcg.next() * 0.1);
      m[i] = static_cast<float>(lcg.next() * 0.01);
      v[i] = static_cast<float>((lcg.next() + 0.5) * 0.001);
    }
    std::vector<float> hw(w), hm(m), hv(v);
    maas::F32UpdateArgs host = args;
    host.w = hw.data();
    host.g = g.data();
    host.m = hm.data();
    host.v = hv.data();
    for (size_t i = 0; i < count; ++i) maas::F32Update<maas::VCudaLane>(host, i, i + 1);
    args.w = w.data();
    args.g = g.data();
    args.m = m.data();
    args.v = v.data();
    char error[256] = "";
    if (maas::CudaUpdateHost(args, count, error, sizeof(error)) != maas::Status::kOk) {
      std::printf("update %s: device error: %s\n", names[r], error);
      ++failures;
      continue;
    }
    size_t differ = 0;
    for (size_t i = 0; i < count; ++i) differ += (w[i] != hw[i]) + (m[i] != hm[i]) + (v[i] != hv[i]);
    std::printf("update %-16s: %s (%zu values differ from the host's)\n", names[r], differ ? "FAIL" : "ok", differ);
    failures += differ ? 1 : 0;
  }
  return failures;
}

// The activation backward on the device against the CPU's ActivationBackward, for every
// activation with the bias gradient: the device's libdevice functions and contracted products
// differ from the host's libm by a few ulps, so each value is held to 64 ulps of its scale.
int CheckBackward() {
  const size_t rows = 37, cols = 129;
  Lcg lcg;
  int failures = 0;
  for (uint32_t code = 0; code < maas::kActivationCount; ++code) {
    const auto act = static_cast<maas::Activation>(code);
    const maas::ActivationParams p = ParamsFor(act);
    std::vector<float> z(rows * cols), y(rows * cols), g(rows * cols);
    for (float& v : z) v = static_cast<float>(lcg.next() * 6);
    for (float& v : g) v = static_cast<float>(lcg.next());
    const std::vector<double> fwd = Expected(z, rows, cols, act, p);
    for (size_t i = 0; i < y.size(); ++i) y[i] = static_cast<float>(fwd[i]);
    std::vector<float> want(g), got(g), want_db(cols), got_db(cols);
    maas::ActivationBackward(act, p, y.data(), z.data(), want.data(), rows, cols, want_db.data());
    char error[256] = "";
    if (maas::CudaActivationBackwardHost(act, p, y.data(), z.data(), got.data(), rows, cols, got_db.data(), error,
                                         sizeof(error)) != maas::Status::kOk) {
      std::printf("backward act %u: device error: %s\n", code, error);
      ++failures;
      continue;
    }
    const double ulp = 1.0 / (1 << 23);
    size_t bad = 0;
    for (size_t i = 0; i < want.size(); ++i)
      if (!(std::fabs(got[i] - want[i]) <= 64 * ulp * (std::fabs(want[i]) + std::fabs(g[i])) + 1e-30)) ++bad;
    for (size_t c = 0; c < cols; ++c) {
      double scale = 0;
      for (size_t r = 0; r < rows; ++r) scale += std::fabs(want[r * cols + c]) + std::fabs(g[r * cols + c]);
      if (!(std::fabs(got_db[c] - want_db[c]) <= 64 * ulp * scale + 1e-30)) ++bad;
    }
    std::printf("backward act %2u: %s (%zu values off)\n", code, bad ? "FAIL" : "ok", bad);
    failures += bad ? 1 : 0;
  }
  return failures;
}

// A three-layer stack resident on the device, over batch sizes that reuse, grow and evict its
// buffers and plans, against the reference applied layer after layer (fp32 products; the layers'
// errors add up, so the bound is three layers' worth).
int CheckStack() {
  const uint32_t widths[] = {64, 128, 96, 10};
  const maas::Activation acts[] = {maas::Activation::kRelu, maas::Activation::kSigmoid, maas::Activation::kSoftmax};
  Lcg lcg;
  std::vector<std::vector<float>> w(3), b(3);
  std::vector<maas::CudaStackLayer> layers(3);
  for (int l = 0; l < 3; ++l) {
    w[l].resize(static_cast<size_t>(widths[l]) * widths[l + 1]);
    b[l].resize(widths[l + 1]);
    for (float& v : w[l]) v = static_cast<float>(lcg.next() / 4);
    for (float& v : b[l]) v = static_cast<float>(lcg.next());
    layers[l] = {widths[l], widths[l + 1], acts[l], {}, w[l].data(), b[l].data()};
  }
  int failures = 0;
  for (int pr = 0; pr < 3; ++pr) {
    maas::CudaStack* stack = nullptr;
    char error[256] = "";
    if (maas::CudaStackCreate(layers.data(), layers.size(), static_cast<maas::CudaPrecision>(pr), &stack, error,
                              sizeof(error)) != maas::Status::kOk) {
      std::printf("stack precision %d: %s\n", pr, error);
      ++failures;
      continue;
    }
    const double bound = pr == 0 ? 1e-5 : pr == 1 ? 4e-3 : 3e-2;  // fp32, TF32, bf16, relative to the largest output
    for (size_t batch : {size_t{1}, size_t{7}, size_t{1}, size_t{300}, size_t{2}, size_t{3}, size_t{4}, size_t{5},
                         size_t{6}, size_t{8}, size_t{9}, size_t{7}}) {
      std::vector<float> x(batch * widths[0]), y(batch * widths[3]);
      for (float& v : x) v = static_cast<float>(lcg.next() * 2);
      if (maas::CudaStackForward(stack, x.data(), batch, y.data(), error, sizeof(error)) != maas::Status::kOk) {
        std::printf("stack precision %d batch %zu: %s\n", pr, batch, error);
        ++failures;
        continue;
      }
      std::vector<float> in(x), out;
      for (int l = 0; l < 3; ++l) {
        out.assign(batch * widths[l + 1], 0.f);
        maas::ref::F32Dense(in.data(), widths[l], w[l].data(), b[l].data(), batch, widths[l + 1], widths[l], acts[l],
                            {}, out.data(), widths[l + 1], nullptr);
        in.swap(out);
      }
      double worst = 0;
      for (size_t i = 0; i < y.size(); ++i) worst = std::fmax(worst, std::fabs(y[i] - in[i]));
      const bool ok = worst <= bound;
      if (!ok || batch == 300)
        std::printf("stack precision %d batch %3zu: %s (largest difference %.2e, bound %.0e)\n", pr, batch,
                    ok ? "ok" : "FAIL", worst, bound);
      failures += ok ? 0 : 1;
    }
    maas::CudaStackDestroy(stack);
  }
  return failures;
}

// The rows bench/device.sh reports: the GEMMs alone and fused with bias + ReLU, and model L's three
// layers at batch 1, 256 and 4096 (operands resident; median of 10 after 3 warm-ups).
int Time() {
  const char* names[] = {"fp32", "tf32", "bf16"};
  std::printf("| workload | precision | ms | TFLOP/s |\n| --- | --- | --- | --- |\n");
  int failures = 0;
  const auto row = [&](const char* what, int pr, double flops, double ms) {
    std::printf("| %s | %s | %.3f | %.1f |\n", what, names[pr], ms, flops / ms / 1e9);
  };
  for (size_t s : {size_t{4096}, size_t{8192}}) {
    for (int pr = 0; pr < 3; ++pr) {
      for (int fused = 0; fused < 2; ++fused) {
        double ms = 0;
        char error[256] = "";
        const maas::Status st =
            maas::CudaDenseTime(s, s, s, fused != 0, fused ? maas::Activation::kRelu : maas::Activation::kLinear,
                                static_cast<maas::CudaPrecision>(pr), 10, &ms, error, sizeof(error));
        char what[96];
        std::snprintf(what, sizeof(what), "maas %s %zu³", fused ? "dense + bias + relu" : "GEMM", s);
        if (st != maas::Status::kOk) {
          std::printf("| %s | %s | error: %s | |\n", what, names[pr], error);
          ++failures;
        } else {
          row(what, pr, 2.0 * s * s * s, ms);
        }
      }
    }
  }
  for (size_t s : {size_t{4096}, size_t{8192}}) {
    double ms = 0;
    char error[256] = "";
    char what[96];
    std::snprintf(what, sizeof(what), "maas GEMM %zu³", s);
    if (maas::CudaInt8GemmTime(s, s, s, 10, &ms, error, sizeof(error)) != maas::Status::kOk) {
      std::printf("| %s | int8 | error: %s | |\n", what, error);
      ++failures;
    } else {
      std::printf("| %s | int8 | %.3f | %.1f |\n", what, ms, 2.0 * s * s * s / ms / 1e9);
    }
  }
  const struct {
    size_t in, out;
    maas::Activation act;
  } layers[] = {{1024, 4096, maas::Activation::kRelu},
                {4096, 4096, maas::Activation::kRelu},
                {4096, 1024, maas::Activation::kLinear}};
  for (size_t batch : {size_t{1}, size_t{256}, size_t{4096}}) {
    for (int pr = 0; pr < 3; ++pr) {
      double total = 0, flops = 0;
      char error[256] = "";
      bool ok = true;
      for (const auto& l : layers) {
        double ms = 0;
        ok = ok && maas::CudaDenseTime(batch, l.in, l.out, true, l.act, static_cast<maas::CudaPrecision>(pr), 10, &ms,
                                       error, sizeof(error)) == maas::Status::kOk;
        total += ms;
        flops += 2.0 * batch * l.in * l.out;
      }
      char what[96];
      std::snprintf(what, sizeof(what), "maas model L b%zu (layers summed)", batch);
      if (!ok) {
        std::printf("| %s | %s | error: %s | |\n", what, names[pr], error);
        ++failures;
      } else {
        row(what, pr, flops, total);
      }
    }
  }
  return failures;
}

}  // namespace

int main(int argc, char** argv) {
  const bool time = argc > 1 && std::string(argv[1]) == "--time";
  const maas::CudaReport& r = maas::QueryCuda();
  std::printf("cuda: runtime %d, driver %d, code for %s\n", r.runtime_version, r.driver_version, r.architectures);
  for (int i = 0; i < r.device_count; ++i)
    std::printf("device %d: %s, compute %d.%d, %.1f GiB, %d multiprocessors\n", i, r.devices[i].name,
                r.devices[i].major, r.devices[i].minor, r.devices[i].memory_bytes / 1073741824.0,
                r.devices[i].multiprocessors);
  const maas::CudaLibrary& lt = maas::LoadCublasLt();
  std::printf("cublasLt: %s\n", lt.loaded ? lt.path : lt.reason);
  const maas::CudaLibrary& nvml = maas::LoadNvml();
  std::printf("nvml: %s\n", nvml.loaded ? nvml.path : nvml.reason);
  if (r.device_count == 0) {
    std::printf("%s\n", r.reason);
    return 2;
  }
  if (time) return Time() ? 1 : 0;
  const size_t rows = 37, cols = 129;
  Lcg lcg;
  std::vector<float> z(rows * cols), bias(cols), y(rows * cols);
  for (float& v : z) v = static_cast<float>(lcg.next() * 8);
  for (float& v : bias) v = static_cast<float>(lcg.next() * 2);
  int failures = 0;
  for (uint32_t code = 0; code < maas::kActivationCount; ++code) {
    const auto act = static_cast<maas::Activation>(code);
    const maas::ActivationParams p = ParamsFor(act);
    for (int with_bias = 0; with_bias < 2; ++with_bias) {
      char error[256] = "";
      const maas::Status s = maas::CudaBiasActivationHost(z.data(), with_bias ? bias.data() : nullptr, rows, cols, act,
                                                          p, y.data(), error, sizeof(error));
      if (s != maas::Status::kOk) {
        std::printf("activation %u%s: device error: %s\n", code, with_bias ? "+bias" : "", error);
        ++failures;
        continue;
      }
      std::vector<float> zb(z);
      if (with_bias)
        for (size_t i = 0; i < zb.size(); ++i) zb[i] = z[i] + bias[i % cols];
      const std::vector<double> want = Expected(zb, rows, cols, act, p);
      double worst = 0;
      size_t bad = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        const double err = std::fabs(y[i] - want[i]);
        const double excess = err / (kAbsolute + kRelative * std::fabs(want[i]));
        if (!(excess <= 1)) ++bad;
        if (excess > worst || std::isnan(excess)) worst = excess;
      }
      std::printf("activation %2u%s: %s (worst error %.2f of the tolerance)\n", code, with_bias ? "+bias" : "     ",
                  bad ? "FAIL" : "ok", worst);
      failures += bad ? 1 : 0;
    }
  }
  failures += CheckDense();
  failures += CheckStack();
  failures += CheckInt8();
  failures += CheckUpdate();
  failures += CheckBackward();
  std::printf("%s\n", failures ? "cuda_check: FAILED" : "cuda_check: all within tolerance");
  return failures ? 1 : 0;
}
