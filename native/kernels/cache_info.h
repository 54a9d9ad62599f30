// The data cache sizes of the core the kernels run on, read once at run time,
// so the CSR kernels' column blocks follow the machine: the same binary runs on
// Zen 3 (32 KB L1d, 512 KB L2), Zen 4/5 (32-48 KB, 1 MB) and Intel cores
// (48 KB, 1.25-2 MB), and a block sized for one overflows the other's caches.
// L2 blocks are half of l2; L1 blocks 40 KB, or l1d less 8 KB where X's rows
// are wider than a batch tile (sparse.cpp).
#pragma once

#include <cstdint>

namespace np {

struct CacheSizes {
  int64_t l1d;  // bytes of L1 data cache per core
  int64_t l2;   // bytes of L2 per core
};

// sysconf's answer (glibc reads CPUID), clamped to a sane range; 32 KB and
// 512 KB where the OS does not say (musl, some VMs), the smallest current x86
// cores, so an unknown machine gets blocks that are too small, never too big.
const CacheSizes& cache_sizes();

}  // namespace np
