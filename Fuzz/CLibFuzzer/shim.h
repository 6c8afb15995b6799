// libFuzzer's driver, which the fuzz targets' main.swift calls: SwiftPM gives an executable's
// `main` to its main.swift, so libFuzzer's own `main` cannot be the one that runs. The library
// comes with `-sanitize=fuzzer` (compiler-rt); this header declares what it has.
#ifndef VTICTL_CLIBFUZZER_SHIM_H
#define VTICTL_CLIBFUZZER_SHIM_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
