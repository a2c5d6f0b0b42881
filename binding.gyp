# The CPU-only fallback build (node-gyp), from the same source list as CMakeLists.txt:
# native/sources.json. Each ISA group is a static library with its own flags.
{
  "variables": {
    "maas_common_defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
    "maas_common_cflags": ["-O3", "-fvisibility=hidden", "-fno-math-errno", "-std=c++17", "-fexceptions"]
  },
  "target_defaults": {
    "include_dirs": [
      "<!(node -p \"require('node-addon-api').include_dir\")",
      "native/include"
    ],
    "defines": ["<@(maas_common_defines)"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
    "cflags_cc": ["<@(maas_common_cflags)"]
  },
  "targets": [
    {
      "target_name": "maas_avx2",
      "type": "static_library",
      "sources": ["<!@(node -p \"require('./native/sources.json').avx2.join(' ')\")"],
      "cflags_cc": ["<!@(node -p \"require('./native/sources.json').flags.avx2.join(' ')\")"]
    },
    {
      "target_name": "maas_avx512",
      "type": "static_library",
      "sources": ["<!@(node -p \"require('./native/sources.json').avx512.join(' ')\")"],
      "cflags_cc": ["<!@(node -p \"require('./native/sources.json').flags.avx512.join(' ')\")"]
    },
    {
      "target_name": "maas_avxvnni",
      "type": "static_library",
      "sources": ["<!@(node -p \"require('./native/sources.json').avxvnni.join(' ')\")"],
      "cflags_cc": ["<!@(node -p \"require('./native/sources.json').flags.avxvnni.join(' ')\")"]
    },
    {
      "target_name": "maas_avx512vnni",
      "type": "static_library",
      "sources": ["<!@(node -p \"require('./native/sources.json').avx512vnni.join(' ')\")"],
      "cflags_cc": ["<!@(node -p \"require('./native/sources.json').flags.avx512vnni.join(' ')\")"]
    },
    {
      "target_name": "maas_avx512bf16",
      "type": "static_library",
      "sources": ["<!@(node -p \"require('./native/sources.json').avx512bf16.join(' ')\")"],
      "cflags_cc": ["<!@(node -p \"require('./native/sources.json').flags.avx512bf16.join(' ')\")"]
    },
    {
      "target_name": "maas_amx",
      "type": "static_library",
      "sources": ["<!@(node -p \"require('./native/sources.json').amx.join(' ')\")"],
      "cflags_cc": ["<!@(node -p \"require('./native/sources.json').flags.amx.join(' ')\")"]
    },
    {
      "target_name": "maas",
      "sources": ["<!@(node -p \"require('./native/sources.json').baseline.join(' ')\")"],
      "dependencies": ["maas_avx2", "maas_avxvnni", "maas_avx512", "maas_avx512vnni", "maas_avx512bf16", "maas_amx"]
    }
  ]
}
