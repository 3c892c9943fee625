// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0

// libFuzzer target: llama2.c checkpoints (run.c's format: a 7-int header, then the float32
// weights), read as fasa-generate and the tests read stories260K.bin.

#include <vector>

#include "fasa/model/llama2c.hpp"
#include "fuzz/fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<char> bytes(data, data + size);
  fasa::fuzz::stage([&] { (void)fasa::model::read_llama2c(bytes, "fuzz.bin"); });
  return 0;
}
