#!/usr/bin/env bash
# Runs on the GPU machine (see scripts/gpu-bundle.sh): unpacks the carried
# node binary and node_modules, then scripts/test-gpu.sh (build, CUDA tests,
# GPU bench), keeping its whole log and the bench JSON in $OUT when the
# device tool provides it.
set -euo pipefail
cd "$(dirname "$0")/.."
B=.gpu-bundle
[ -f "$B/node.xz" ] && [ -f "$B/node_modules.tar.xz" ] ||
  { echo "gpu-remote: $B/ is missing: run scripts/gpu-bundle.sh here and carry $B" >&2; exit 1; }
mkdir -p /tmp/np-node/bin
# The GPU image is not known to have xz (tar -J needs it); its python3 always
# has lzma, so it unpacks the bundle when xz is missing.
if command -v xz > /dev/null; then
  xz -dc "$B/node.xz" > /tmp/np-node/bin/node
  [ -d node_modules ] || tar -xJf "$B/node_modules.tar.xz"
else
  echo "gpu-remote: no xz here, unpacking with python3"
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
    "$B/node.xz" /tmp/np-node/bin/node
  [ -d node_modules ] || python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(".")' \
    "$B/node_modules.tar.xz"
fi
chmod +x /tmp/np-node/bin/node
export PATH="/tmp/np-node/bin:${PATH}"
# cuBLAS and cuSPARSE are dlopen'ed at run time (gemm.cu, bench_peers.cpp) from
# the loader's path or /usr/local/cuda. An image whose toolkit lacks them (only
# nvcc and cudart, like the build machine) would silently test the tiled GEMM
# alone and bench no cuSPARSE: then use the copies PyTorch's wheels bring.
# (No grep -q and no bare find in a pipe: with pipefail, SIGPIPE or a missing
# folder would read as failure, or end the script under set -e.)
if ! ldconfig -p 2> /dev/null | grep 'libcublas\.so\.1[0-9]' > /dev/null &&
   ! ls /usr/local/cuda/lib64/libcublas.so.1* > /dev/null 2>&1; then
  for lib in libcublas libcusparse; do
    so="$({ find /usr/local /opt /usr/lib -maxdepth 9 -name "${lib}.so.1[0-9]" 2> /dev/null || true; } | head -n1)"
    if [ -n "${so}" ]; then
      echo "gpu-remote: ${lib} from ${so%/*}"
      export LD_LIBRARY_PATH="${so%/*}${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"
    fi
  done
fi
echo "gpu-remote: node $(node --version), $(nvcc --version | tail -n1)"
OUT_DIR="${OUT:-/tmp/np-out}"
mkdir -p "${OUT_DIR}"
export NEUROPLASTIC_GPU_BENCH_JSON="${OUT_DIR}/cuda-bench.json"
set -o pipefail
bash scripts/test-gpu.sh 2>&1 | tee "${OUT_DIR}/test-gpu.log"
