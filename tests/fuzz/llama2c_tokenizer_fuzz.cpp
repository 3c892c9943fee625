// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0

// libFuzzer target: llama2.c tokenizer files (tok512.bin's format), read to the end of the data
// and, where the first four bytes allow, with an explicit vocab_size as run.c reads them; an
// accepted vocabulary then encodes and decodes a fixed text.

#include <cstring>
#include <optional>
#include <span>

#include "fasa/model/tokenizer_llama2c.hpp"
#include "fuzz/fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using fasa::model::llama2c_tokenizer;
  const std::span<const char> bytes(reinterpret_cast<const char*>(data), size);
  const auto use = [](const llama2c_tokenizer& tok) {
    fasa::fuzz::stage([&] {
      const auto ids = tok.encode("Once upon a time, caf\xc3\xa9 \xff!", true, true);
      (void)tok.decode(ids);
    });
  };
  std::optional<llama2c_tokenizer> tok;
  if (fasa::fuzz::stage([&] { tok.emplace(llama2c_tokenizer::from_bytes(bytes, "fuzz.bin")); }))
    use(*tok);
  // The token count the input implies read back as a vocab_size (the last byte picks how far
  // off it is), so the counted path is fuzzed with values near the right one as well.
  if (tok && size > 0) {
    const auto n = static_cast<std::int32_t>(tok->vocab_size()) + (data[size - 1] % 3) - 1;
    std::optional<llama2c_tokenizer> counted;
    if (fasa::fuzz::stage(
            [&] { counted.emplace(llama2c_tokenizer::from_bytes(bytes, "fuzz.bin", n)); }))
      use(*counted);
  }
  return 0;
}
