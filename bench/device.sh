#!/usr/bin/env bash
# The CUDA backend's device run (issue 17), in one go on a GPU machine that has nvcc and PyTorch but
# no Node: builds native/tools/cuda_check with the machine's own nvcc, runs it (the device report;
# the epilogue for every activation and dense layers in fp32, TF32 and bf16 against the
# double-precision reference), then times maas and PyTorch (cuBLAS) on the shapes the issue names:
# GEMMs 4096³ and 8192³, the same fused with bias + ReLU, model L at batch 1, 256 and 4096.
# Writes device-results.md into $OUT (the device tool's folder) or the current directory.
#
#   bash bench/device.sh               # everything, a few minutes on an H200
#   bash bench/device.sh --build-only  # compile the check (CI does this where nvcc is present)
set -uo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
arch=${MAAS_DEVICE_ARCH:-sm_90}
build() {
  nvcc -std=c++17 -O2 -arch="$arch" -Inative/include native/tools/cuda_check.cu native/src/cuda/*.cu \
    native/src/cuda/*.cc native/src/core/ref/f32_dense_ref.cc native/src/core/activation_backward.cc \
    -o "$work/cuda_check" -ldl
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
site=$(python3 -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null)
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

# maas's rows (operands resident on the device), then the peer's on the same shapes: PyTorch's
# matmul and nn.Linear-style addmm + relu (cuBLAS), each the median of 10 after 3 warm-ups, and the
# ratio peer time / maas time where both ran.
echo >> "$results"
echo "## maas against PyTorch (cuBLAS) on the device" >> "$results"
echo >> "$results"
"$work/cuda_check" --time > "$work/maas-rows.md" 2>&1
python3 - "$work/maas-rows.md" >> "$results" 2>&1 <<'PY'
import sys, torch
maas = {}
for line in open(sys.argv[1]):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) == 4 and cells[0].startswith("maas "):
        try: maas[(cells[0][5:], cells[1])] = float(cells[2])
        except ValueError: maas[(cells[0][5:], cells[1])] = None
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
dtypes = {"fp32": (torch.float32, False), "tf32": (torch.float32, True), "bf16": (torch.bfloat16, False)}
def allow_tf32(on):  # 'high' lets float32 matmuls use TF32; 'highest' keeps them fp32
    torch.set_float32_matmul_precision("high" if on else "highest")
print("| workload | precision | maas ms | torch ms | torch/maas | maas TFLOP/s |")
print("| --- | --- | --- | --- | --- | --- |")
def report(what, prec, flops, fn):
    ms = median_ms(fn)
    ours = maas.get((what, prec))
    ratio = f"{ms / ours:.2f}" if ours else "–"
    tflops = f"{flops / ours / 1e9:.1f}" if ours else "–"
    print(f"| {what} | {prec} | {ours if ours else 'error'} | {ms:.3f} | {ratio} | {tflops} |")
torch.manual_seed(0)
for n in (4096, 8192):
    for prec, (dtype, tf32) in dtypes.items():
        allow_tf32(tf32)
        a = torch.randn(n, n, device="cuda", dtype=dtype); b = torch.randn(n, n, device="cuda", dtype=dtype)
        bias = torch.randn(n, device="cuda", dtype=dtype)
        report(f"GEMM {n}³", prec, 2 * n**3, lambda: a @ b)
        report(f"dense + bias + relu {n}³", prec, 2 * n**3, lambda: torch.relu(torch.addmm(bias, a, b)))
for n in (4096, 8192):
    a = torch.randint(-127, 128, (n, n), device="cuda", dtype=torch.int8)
    b = torch.randint(-127, 128, (n, n), device="cuda", dtype=torch.int8)
    report(f"GEMM {n}³", "int8", 2 * n**3, lambda: torch._int_mm(a, b))
    ours8, ours16 = maas.get((f"GEMM {n}³", "int8")), maas.get((f"GEMM {n}³", "bf16"))
    if ours8 and ours16:
        print(f"| maas int8 / maas bf16, GEMM {n}³ | | | | {ours16 / ours8:.2f} (target ≥ 1.6) | |")
for batch in (1, 256, 4096):
    for prec, (dtype, tf32) in dtypes.items():
        allow_tf32(tf32)
        layers = [torch.nn.Linear(i, o, device="cuda", dtype=dtype) for i, o in ((1024, 4096), (4096, 4096), (4096, 1024))]
        x = torch.randn(batch, 1024, device="cuda", dtype=dtype)
        def forward():
            with torch.no_grad():
                return layers[2](torch.relu(layers[1](torch.relu(layers[0](x)))))
        flops = 2 * batch * (1024 * 4096 + 4096 * 4096 + 4096 * 1024)
        report(f"model L b{batch} (layers summed)", prec, flops, forward)
print()
print("The training step on the device and CUDA graphs are not built yet: no maas rows for them.")
PY
echo >> "$results"
echo '```' >> "$results"
cat "$work/maas-rows.md" >> "$results"
echo '```' >> "$results"
cat "$results"
