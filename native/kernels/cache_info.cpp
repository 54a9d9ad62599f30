#include "cache_info.h"

#include <unistd.h>

#include <algorithm>

namespace np {

namespace {

int64_t sysconf_bytes(int name, int64_t fallback, int64_t lo, int64_t hi) {
  const long v = sysconf(name);
  if (v <= 0) return fallback;
  return std::clamp<int64_t>(v, lo, hi);
}

CacheSizes detect() {
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE)
  return {sysconf_bytes(_SC_LEVEL1_DCACHE_SIZE, 32 * 1024, 16 * 1024, 256 * 1024),
          sysconf_bytes(_SC_LEVEL2_CACHE_SIZE, 512 * 1024, 128 * 1024, 4 * 1024 * 1024)};
#else
  return {32 * 1024, 512 * 1024};
#endif
}

}  // namespace

const CacheSizes& cache_sizes() {
  static const CacheSizes sizes = detect();
  return sizes;
}

}  // namespace np
