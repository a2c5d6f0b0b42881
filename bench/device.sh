#!/usr/bin/env bash
# The CUDA backend's device run (issue 17), in one go on a GPU machine that has nvcc and PyTorch but
# no Node: builds native/tools/cuda_check with the machine's own nvcc, runs it (device report, the
# epilogue for every activation against the double-precision definition), and times the peer's
# GEMMs on the shapes the issue names, so maas's rows have their baseline. Writes
# device-results.md into $OUT (the device tool's folder) or the current directory.
#
#   bash bench/device.sh               # everything, about a minute on an H200
#   bash bench/device.sh --build-only  # compile the check (CI does this where nvcc is present)
set -uo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
arch=${MAAS_DEVICE_ARCH:-sm_90}
build() {
  nvcc -std=c++17 -O2 -arch="$arch" -Inative/include native/tools/cuda_check.cu native/src/cuda/*.cu \
    native/src/cuda/*.cc -o "$work/cuda_check" -ldl
}
if [ "${1:-}" = "--build-only" ]; then
  build && echo "device.sh: cuda_check builds for $arch"
  exit
fi

results=${OUT:-.}/device-results.md
{
  echo "# maas device run"
  echo
  echo "- date: $(date -u +%FT%TZ); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- $(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | head -1)"
  echo "- nvcc: $(nvcc --version | tail -1)"
  echo
} > "$results"

# cuBLASLt and NVML as PyTorch's wheels ship them, for the backend's loader to find.
site=$(python3 -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null)
if [ -n "$site" ] && [ -d "$site/nvidia" ]; then
  libs=$(find "$site/nvidia" -name 'libcublasLt.so*' -printf '%h\n' 2>/dev/null | sort -u | paste -sd:)
  export LD_LIBRARY_PATH=${libs:+$libs:}${LD_LIBRARY_PATH:-}
fi

echo "## cuda_check (device epilogue against the double-precision definition)" >> "$results"
echo '```' >> "$results"
if build >> "$results" 2>&1; then
  "$work/cuda_check" >> "$results" 2>&1
  echo "exit status $?" >> "$results"
else
  echo "build failed" >> "$results"
fi
echo '```' >> "$results"

# The peer: PyTorch's matmul (cuBLAS) on the issue's shapes, each the median of 10 after 3 warm-ups.
echo >> "$results"
echo "## Peer GEMMs (torch.matmul; int8 through torch._int_mm)" >> "$results"
echo >> "$results"
python3 - >> "$results" 2>&1 <<'PY'
import torch
def median_ms(fn, reps=10, warm=3):
    for _ in range(warm): fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    times.sort()
    return times[len(times) // 2]
print("| shape | precision | ms | TFLOP/s (TOP/s) |")
print("| --- | --- | --- | --- |")
torch.manual_seed(0)
for n in (4096, 8192):
    for name, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True), ("bf16", torch.bfloat16, False)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(n, n, device="cuda", dtype=dtype); b = torch.randn(n, n, device="cuda", dtype=dtype)
        ms = median_ms(lambda: a @ b)
        print(f"| {n}³ | {name} | {ms:.3f} | {2 * n**3 / ms / 1e9:.1f} |")
    a = torch.randint(-128, 127, (n, n), device="cuda", dtype=torch.int8)
    b = torch.randint(-128, 127, (n, n), device="cuda", dtype=torch.int8)
    ms = median_ms(lambda: torch._int_mm(a, b))
    print(f"| {n}³ | int8 | {ms:.3f} | {2 * n**3 / ms / 1e9:.1f} |")
PY
echo >> "$results"
echo "maas's own GEMM rows come with the device GEMM path (not built yet)." >> "$results"
cat "$results"
