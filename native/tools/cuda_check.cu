// The CUDA backend's device check, for machines with a GPU and no Node (bench/device.sh builds it
// with the device's own nvcc): prints what QueryCuda sees, then runs the device epilogue for every
// activation, with and without bias, against the double-precision scalar definition on the host.
// Exit status: 0 all within tolerance, 1 a mismatch or a device error, 2 no usable device.
#include <cmath>
#include <cstdio>
#include <vector>

#include "maas/cuda_backend.h"

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

}  // namespace

int main() {
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
  const size_t rows = 37, cols = 129;
  Lcg lcg;
  std::vector<float> z(rows * cols), bias(cols), y(rows * cols);
  for (float& v : z) v = static_cast<float>(lcg.next() * 8);
  for (float& v : bias) v = static_cast<float>(lcg.next() * 2);
  int failures = 0;
  for (uint32_t code = 0; code < maas::kActivationCount; ++code) {
    const auto act = static_cast<maas::Activation>(code);
    maas::ActivationParams p;
    if (act == maas::Activation::kLeakyRelu) p.alpha = 0.3f;
    if (act == maas::Activation::kElu) p.alpha = 1.3f;
    if (act == maas::Activation::kKerasRelu) p = {0.2f, 2.5f, 0.5f};
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
  std::printf("%s\n", failures ? "cuda_check: FAILED" : "cuda_check: all within tolerance");
  return failures ? 1 : 0;
}
