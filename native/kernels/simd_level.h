// Which instruction set the hot kernels use, chosen once at run time.
//
// Every kernel with SIMD variants is compiled for each level (scalar for the
// portable x86-64-v2 baseline, AVX2+FMA, AVX-512F/VL/BW/DQ) and the dispatcher
// picks the best the CPU supports. NEUROPLASTIC_SIMD=scalar|avx2|avx512 forces
// a level (clamped to what the CPU can run, with a warning on stderr), and the
// tests switch levels with set_simd_level() to check each against the naive
// reference.
#pragma once

namespace np {

enum class SimdLevel : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// The best level this CPU (and OS, via XGETBV) supports.
SimdLevel detected_simd_level();

// The level in use: NEUROPLASTIC_SIMD if set, else detected_simd_level().
SimdLevel active_simd_level();

// Forces a level for this process (tests, benches). Returns false and changes
// nothing if the CPU cannot run it.
bool set_simd_level(SimdLevel level);

const char* simd_level_name(SimdLevel level);

// Parses "scalar" | "avx2" | "avx512"; returns false on anything else.
bool parse_simd_level(const char* text, SimdLevel* out);

}  // namespace np
