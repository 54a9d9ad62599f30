# Builds the CPU addon with npm's own node-gyp, for users without cmake. The
# source lists come from native/sources.json, the same file CMakeLists.txt
# reads, so the two builds cannot drift. AVX2 and AVX-512 kernels are separate
# static libraries because gyp sets compiler flags per target, not per file.
{
  "variables": {
    "np_common_flags": ["-O3", "-fno-math-errno", "-fopenmp-simd", "-fvisibility=hidden", "-std=c++17", "-Wno-unused-parameter"]
  },
  "targets": [
    {
      "target_name": "neuroplastic_avx2",
      "type": "static_library",
      "sources": ["<!@(node -p \"require('./native/sources.json').avx2.join(' ')\")"],
      "include_dirs": ["native"],
      "cflags_cc": ["<@(np_common_flags)", "-mavx2", "-mfma", "-mf16c", "-fPIC"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "defines": ["NP_HAVE_X86_SIMD=1"]
    },
    {
      "target_name": "neuroplastic_avx512",
      "type": "static_library",
      "sources": ["<!@(node -p \"require('./native/sources.json').avx512.join(' ')\")"],
      "include_dirs": ["native"],
      "cflags_cc": ["<@(np_common_flags)", "-mavx512f", "-mavx512vl", "-mavx512bw", "-mavx512dq", "-mavx2", "-mfma", "-mf16c", "-fPIC"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "defines": ["NP_HAVE_X86_SIMD=1"]
    },
    {
      "target_name": "neuroplastic",
      "dependencies": ["neuroplastic_avx2", "neuroplastic_avx512"],
      "sources": [
        "<!@(node -p \"require('./native/sources.json').common.join(' ')\")",
        "<!@(node -p \"require('./native/sources.json').binding.join(' ')\")"
      ],
      "include_dirs": ["native", "<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS", "NP_HAVE_X86_SIMD=1"],
      "cflags_cc": ["<@(np_common_flags)", "-march=x86-64-v2", "-fexceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "libraries": ["-lpthread"]
    }
  ]
}
