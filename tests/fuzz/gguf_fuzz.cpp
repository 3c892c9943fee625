// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0

// libFuzzer target: GGUF files. The reader parses the header, metadata and tensor infos; then
// every metadata value is read back with its typed accessor, every small tensor of a type fasa
// reads is dequantised, and the Llama configuration, weights and BPE tokenizer are read as the
// tools read them.

#include <algorithm>
#include <span>
#include <string>

#include "fasa/model/gguf.hpp"
#include "fasa/model/gguf_llama.hpp"
#include "fasa/model/tokenizer_bpe.hpp"
#include "fuzz/fuzz.hpp"

namespace {

using fasa::model::gguf_value;
using fasa::model::gguf_value_type;

// Reads a value the way a caller would: scalars as their type, arrays element by element.
void touch(const gguf_value& v) {
  switch (v.type()) {
    case gguf_value_type::boolean:
      (void)v.as_bool();
      break;
    case gguf_value_type::string:
      (void)fasa::model::detail::printable(v.as_string());
      break;
    case gguf_value_type::float32:
    case gguf_value_type::float64:
      (void)v.as_float();
      break;
    case gguf_value_type::array: {
      const std::size_t n = std::min<std::size_t>(v.size(), 64);
      for (std::size_t i = 0; i < n; ++i) touch(v.element(i));
      break;
    }
    default:
      (void)v.integer_text();
  }
  (void)v.type_text();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace fasa::model;
  std::optional<gguf_file> file;
  if (!fasa::fuzz::stage([&] { file.emplace(std::span(data, size), "fuzz.gguf"); })) return 0;
  const gguf_file& f = *file;

  for (const auto& kv : f.metadata()) fasa::fuzz::stage([&] { touch(kv.value); });

  std::uint64_t floats = 0;
  for (const auto& t : f.tensors()) {
    if (t.n_elements > fasa::fuzz::max_floats_read - floats) continue;
    floats += t.n_elements;
    fasa::fuzz::stage([&] { (void)f.dequantize(t.name); });
    if (t.n_elements == 0) continue;  // a zero dim: dims[0] alone may still be huge
    fasa::fuzz::stage([&] {
      std::vector<float> row(static_cast<std::size_t>(t.row_length()));
      dequantize_rows(t, t.n_rows() - 1, 1, row);
    });
  }

  llama_config config;
  if (fasa::fuzz::stage([&] { config = read_gguf_llama_config(f); })) {
    const double weights =
        static_cast<double>(config.vocab_size) * config.dim * (config.tied_output ? 1 : 2) +
        static_cast<double>(config.n_layers) *
            (4.0 * config.dim * config.n_heads * config.head_dim +
             3.0 * config.dim * config.hidden_dim);
    if (weights <= static_cast<double>(fasa::fuzz::max_floats_read))
      fasa::fuzz::stage([&] { (void)read_gguf_llama(f); });
  }

  fasa::fuzz::stage([&] {
    const auto tok = bpe_tokenizer::from_gguf(f);
    const auto ids = tok.encode("Once upon a time <|im_start|>user\n12345 caf\xc3\xa9\xff");
    (void)tok.decode(ids);
  });
  return 0;
}
