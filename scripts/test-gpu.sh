#!/usr/bin/env bash
# `npm run test:gpu`: the CUDA backend's checks on a machine WITH an NVIDIA GPU.
# Builds the CPU addon, the CUDA addon and the CUDA kernel tests (cmake-js, into
# build-gpu/ so build/ is left alone), runs neuroplastic_cuda_tests and
# test/65.cuda.test.ts with NEUROPLASTIC_REQUIRE_GPU=1 (a missing device fails
# instead of skipping), then `npm run bench -- --device cuda --json FILE`
# (GEMM, CSR SpMM vs dense and cuSPARSE, 784-4096-4096-10 training GPU vs CPU),
# and prints the card's name. Each step has a time limit so the whole script
# stays within ~6 minutes on a 16-core H100/H200 machine (build ~2 min for one
# architecture, tests ~1 min, bench ~1-2 min). Fails loudly, before
# building anything, when there is no GPU: it is meant for the GPU machine; CI
# and other machines run the same tests through `npm test`, where they skip.
#
# Environment:
#   NEUROPLASTIC_GPU_BUILD_DIR   build folder (default build-gpu)
#   NEUROPLASTIC_GPU_ARCH        CMAKE_CUDA_ARCHITECTURES (default: this GPU's compute
#                                capability from nvidia-smi, e.g. 90 on an H100: one
#                                architecture builds ~5x faster; 'all' = 75;80;86;89;90)
#   NEUROPLASTIC_GPU_BENCH=0     skip the bench
#   NEUROPLASTIC_GPU_BENCH_JSON  where the bench writes its JSON (default bench/out/cuda-bench.json)
#   NEUROPLASTIC_GPU_NO_BUILD=1  use the existing build folder as is
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "" >&2
  echo "test-gpu: FAILED: $*" >&2
  exit 1
}

BUILD="${NEUROPLASTIC_GPU_BUILD_DIR:-build-gpu}"
JOBS="$(nproc 2>/dev/null || echo 4)"

# ---- 1. is there a GPU? -----------------------------------------------------------
command -v nvidia-smi > /dev/null ||
  fail "nvidia-smi not found: no NVIDIA driver on this machine. npm run test:gpu needs an NVIDIA GPU (use npm test elsewhere: the GPU tests skip there)."
if ! GPUS="$(nvidia-smi --query-gpu=index,name,memory.total,compute_cap,driver_version --format=csv,noheader 2>&1)"; then
  fail "nvidia-smi failed: ${GPUS}"
fi
[ -n "${GPUS}" ] || fail "nvidia-smi lists no GPU"
echo "== GPU (nvidia-smi): index, name, memory, compute capability, driver"
echo "${GPUS}" | sed 's/^/   /'
DRIVER_CUDA="$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -n1)"
echo "   driver supports CUDA ${DRIVER_CUDA:-?}"

# ---- 2. tools ------------------------------------------------------------------------
if ! command -v nvcc > /dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH="/usr/local/cuda/bin:${PATH}"; fi
command -v nvcc > /dev/null || fail "nvcc not found (install the CUDA toolkit or put it on PATH)"
NVCC_CUDA="$(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
echo "   nvcc: CUDA ${NVCC_CUDA}"
if [ -n "${DRIVER_CUDA}" ] && [ "$(printf '%s\n%s\n' "${NVCC_CUDA}" "${DRIVER_CUDA}" | sort -V | head -n1)" != "${NVCC_CUDA}" ]; then
  echo "   WARNING: the driver supports CUDA ${DRIVER_CUDA}, older than nvcc's ${NVCC_CUDA}: the addon (static cudart ${NVCC_CUDA})" \
       "will report 'driver is too old'. Put an older CUDA toolkit first on PATH, or update the driver."
fi
command -v cmake > /dev/null || fail "cmake not found"
[ -x node_modules/.bin/cmake-js ] || fail "node_modules/.bin/cmake-js not found: run npm ci first"

# ---- 3. build ------------------------------------------------------------------------
if [ "${NEUROPLASTIC_GPU_NO_BUILD:-0}" != "1" ]; then
  echo "== build into ${BUILD}/ (${JOBS} jobs)"
  ARCH="${NEUROPLASTIC_GPU_ARCH:-$(echo "${GPUS}" | head -n1 | cut -d, -f4 | tr -d ' .')}"
  ARCH_FLAG=()
  if [ -n "${ARCH}" ] && [ "${ARCH}" != "all" ]; then ARCH_FLAG=("--CDCMAKE_CUDA_ARCHITECTURES=${ARCH}"); fi
  echo "   CUDA architectures: ${ARCH:-default}"
  t0=$(date +%s)
  node_modules/.bin/cmake-js configure --out "${BUILD}" --CDNEUROPLASTIC_TESTS=ON --CDNEUROPLASTIC_CUDA=ON "${ARCH_FLAG[@]}" -l warn ||
    fail "cmake-js configure failed"
  # Only what these checks run: the two addons and the CUDA tests (not the CPU benches).
  cmake --build "${BUILD}" --target neuroplastic neuroplastic_cuda neuroplastic_cuda_tests --parallel "${JOBS}" ||
    fail "build failed (is nvcc usable by CMake? see the configure output: 'neuroplastic: CUDA addon ...')"
  echo "   built in $(( $(date +%s) - t0 )) s"
fi
CUDA_ADDON="${BUILD}/Release/cuda/neuroplastic_cuda.node"
CUDA_TESTS="${BUILD}/native/neuroplastic_cuda_tests"
[ -f "${CUDA_ADDON}" ] || fail "${CUDA_ADDON} was not built (CMake did not enable CUDA: check_language(CUDA) found no working nvcc)"
[ -x "${CUDA_TESTS}" ] || fail "${CUDA_TESTS} was not built"

export NEUROPLASTIC_REQUIRE_GPU=1
status=0

# ---- 4. native CUDA kernel tests ---------------------------------------------------------
echo "== ${CUDA_TESTS}"
timeout 180 "${CUDA_TESTS}" || status=1
# grep without -q: under pipefail, -q's early exit can kill the test binary with
# SIGPIPE and the pipeline would read as "no cuBLAS", skipping the second run.
if [ "$status" = 0 ] && "${CUDA_TESTS}" gemm_f32_cuda_matches_naive 2>/dev/null | grep 'backend: cublas' > /dev/null; then
  echo "== the dispatching GEMM once more without cuBLAS (NEUROPLASTIC_CUBLAS=0)"
  NEUROPLASTIC_CUBLAS=0 "${CUDA_TESTS}" gemm_f32_cuda_matches_naive || status=1
fi

# ---- 5. the API tests -------------------------------------------------------------------
echo "== mocha test/65.cuda.test.ts"
NEUROPLASTIC_ADDON_PATH="${BUILD}/Release/neuroplastic.node" \
  timeout 240 node node_modules/mocha/bin/mocha.js --no-config --node-option import=tsx --timeout 120000 test/65.cuda.test.ts || status=1

# ---- 6. the GPU bench ---------------------------------------------------------------------
if [ "${NEUROPLASTIC_GPU_BENCH:-1}" != "0" ]; then
  BENCH_JSON="${NEUROPLASTIC_GPU_BENCH_JSON:-bench/out/cuda-bench.json}"
  mkdir -p "$(dirname "${BENCH_JSON}")"
  echo "== npm run bench -- --device cuda --json ${BENCH_JSON}"
  NEUROPLASTIC_ADDON_PATH="${BUILD}/Release/neuroplastic.node" \
    timeout 240 node --import tsx bench/main.ts --device cuda --json "${BENCH_JSON}" ||
    { echo "   bench failed or timed out (not a test failure; see above)"; }
fi

echo ""
CARD="$(echo "${GPUS}" | head -n1 | cut -d, -f2 | sed 's/^ *//')"
if [ "$status" = 0 ]; then
  echo "test-gpu: ok on ${CARD}"
else
  fail "some CUDA tests failed on ${CARD} (see above)"
fi
