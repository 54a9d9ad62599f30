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
xz -dc "$B/node.xz" > /tmp/np-node/bin/node
chmod +x /tmp/np-node/bin/node
export PATH="/tmp/np-node/bin:${PATH}"
[ -d node_modules ] || tar -xJf "$B/node_modules.tar.xz"
echo "gpu-remote: node $(node --version), $(nvcc --version | tail -n1)"
OUT_DIR="${OUT:-/tmp/np-out}"
mkdir -p "${OUT_DIR}"
export NEUROPLASTIC_GPU_BENCH_JSON="${OUT_DIR}/cuda-bench.json"
set -o pipefail
bash scripts/test-gpu.sh 2>&1 | tee "${OUT_DIR}/test-gpu.log"
