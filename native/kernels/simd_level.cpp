#include "simd_level.h"

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace np {

namespace {

#if defined(__x86_64__)
// XCR0 says which register files the OS saves on a context switch. A CPU can
// report AVX-512 while the OS (or a hypervisor) leaves ZMM state unmanaged;
// using it then corrupts registers across preemption, so both must agree.
uint64_t read_xcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

SimdLevel detect() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return SimdLevel::kScalar;
  const bool osxsave = ecx & (1u << 27);
  const bool avx = ecx & (1u << 28);
  const bool fma = ecx & (1u << 12);
  if (!osxsave || !avx || !fma) return SimdLevel::kScalar;
  const uint64_t xcr0 = read_xcr0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;     // SSE + AVX upper halves
  const bool zmm_state = (xcr0 & 0xE6) == 0xE6;   // + opmask, ZMM0-15 upper, ZMM16-31
  if (!ymm_state) return SimdLevel::kScalar;
  if (__get_cpuid_max(0, nullptr) < 7) return SimdLevel::kScalar;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const bool avx2 = ebx & (1u << 5);
  if (!avx2) return SimdLevel::kScalar;
  const bool f = ebx & (1u << 16), dq = ebx & (1u << 17), bw = ebx & (1u << 30), vl = ebx & (1u << 31);
  if (zmm_state && f && dq && bw && vl) return SimdLevel::kAvx512;
  return SimdLevel::kAvx2;
}
#else
SimdLevel detect() { return SimdLevel::kScalar; }
#endif

// -1 until first use; then the level every dispatcher reads. An atomic rather
// than a function-local static so set_simd_level can change it.
std::atomic<int> g_active{-1};

SimdLevel initial_level() {
  const SimdLevel detected = detected_simd_level();
  const char* env = std::getenv("NEUROPLASTIC_SIMD");
  if (env == nullptr || *env == '\0') return detected;
  SimdLevel wanted;
  if (!parse_simd_level(env, &wanted)) {
    std::fprintf(stderr,
                 "neuroplastic: NEUROPLASTIC_SIMD=%s is not one of scalar|avx2|avx512; using %s\n", env,
                 simd_level_name(detected));
    return detected;
  }
  if (static_cast<int>(wanted) > static_cast<int>(detected)) {
    std::fprintf(stderr, "neuroplastic: NEUROPLASTIC_SIMD=%s is not supported by this CPU; using %s\n",
                 env, simd_level_name(detected));
    return detected;
  }
  return wanted;
}

}  // namespace

SimdLevel detected_simd_level() {
  static const SimdLevel level = detect();
  return level;
}

SimdLevel active_simd_level() {
  int v = g_active.load(std::memory_order_acquire);
  if (v < 0) {
    // Read the environment once; a racing first call computes the same value,
    // and a set_simd_level() that won the race is kept.
    int expected = -1;
    g_active.compare_exchange_strong(expected, static_cast<int>(initial_level()),
                                     std::memory_order_acq_rel);
    v = g_active.load(std::memory_order_acquire);
  }
  return static_cast<SimdLevel>(v);
}

bool set_simd_level(SimdLevel level) {
  if (static_cast<int>(level) < 0 || static_cast<int>(level) > static_cast<int>(detected_simd_level()))
    return false;
  g_active.store(static_cast<int>(level), std::memory_order_release);
  return true;
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar: return "scalar";
    case SimdLevel::kAvx2: return "avx2";
    case SimdLevel::kAvx512: return "avx512";
  }
  return "unknown";
}

bool parse_simd_level(const char* text, SimdLevel* out) {
  if (text == nullptr) return false;
  static const SimdLevel kAll[] = {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512};
  for (SimdLevel level : kAll) {
    if (std::strcmp(text, simd_level_name(level)) == 0) {
      *out = level;
      return true;
    }
  }
  return false;
}

}  // namespace np
