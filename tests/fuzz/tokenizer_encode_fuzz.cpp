// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0

// libFuzzer target: encode() of arbitrary bytes, the text a user types or a data set holds.
// The byte-level BPE tokenizer is SmolLM2's where FASA_MODEL names its GGUF file (scripts/
// test.sh sets it), else a small vocabulary with all 256 byte tokens; the llama2.c tokenizer is
// FASA_FUZZ_LLAMA2C_TOKENIZER's file where set, else stories260K's tok512.bin from ../shared/data
// where present, else a small generated one. Checked beyond "no crash": decode(encode(s)) == s
// whenever every byte of s has a token (tokenizer_bpe.hpp documents it), and every id encode()
// returns is in the vocabulary.

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "fasa/model/gguf.hpp"
#include "fasa/model/tokenizer_bpe.hpp"
#include "fasa/model/tokenizer_llama2c.hpp"
#include "fuzz/fuzz.hpp"
#include "fuzz/seed_files.hpp"

namespace {

using fasa::model::bpe_tokenizer;
using fasa::model::llama2c_tokenizer;

const bpe_tokenizer& bpe() {
  static const bpe_tokenizer tok = [] {
    if (const char* path = std::getenv("FASA_MODEL"); path && *path)
      return bpe_tokenizer::from_gguf(fasa::model::gguf_file(std::filesystem::path(path)));
    const auto file = fasa::fuzz::tiny_llama_gguf(fasa::test::gguf::tt_f32, 8, true, true);
    return bpe_tokenizer::from_gguf(fasa::model::gguf_file(file, "tiny vocabulary"));
  }();
  return tok;
}

const llama2c_tokenizer& llama2c() {
  static const llama2c_tokenizer tok = [] {
    std::filesystem::path path;
    if (const char* p = std::getenv("FASA_FUZZ_LLAMA2C_TOKENIZER"); p && *p) path = p;
#ifdef FASA_SHARED_DATA_DIR
    if (path.empty()) {
      const std::filesystem::path shared =
          std::filesystem::path(FASA_SHARED_DATA_DIR) / "models/stories260K/tok512.bin";
      if (std::filesystem::exists(shared)) path = shared;
    }
#endif
    if (!path.empty()) return llama2c_tokenizer::from_file(path);
    const auto file = fasa::fuzz::tiny_llama2c_tokenizer(true);
    return llama2c_tokenizer::from_bytes(
        std::span(reinterpret_cast<const char*>(file.data()), file.size()), "tiny vocabulary");
  }();
  return tok;
}

bool all_bytes_have_tokens(const bpe_tokenizer& tok, std::string_view s) {
  for (const char c : s)
    if (!tok.has_byte_token(static_cast<std::uint8_t>(c))) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Load both vocabularies before the first input, so that a bad file fails here, loudly.
  (void)bpe();
  (void)llama2c();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const bpe_tokenizer& tok = bpe();
  const bool round_trips = all_bytes_have_tokens(tok, text);
  for (const bool parse_special : {true, false}) {
    const auto ids = tok.encode(text, parse_special);
    for (const auto id : ids)
      if (id < 0 || id >= tok.vocab_size())
        fasa::fuzz::property_failed("bpe_tokenizer::encode returned an id outside the vocabulary");
    if (round_trips && tok.decode(ids) != text)
      fasa::fuzz::property_failed("bpe_tokenizer: decode(encode(s)) != s");
  }
  const llama2c_tokenizer& l2c = llama2c();
  const auto ids = l2c.encode(text, true, true);
  for (const auto id : ids)
    if (id < 0 || id >= l2c.vocab_size())
      fasa::fuzz::property_failed(
          "llama2c_tokenizer::encode returned an id outside the vocabulary");
  (void)l2c.decode(ids);
  return 0;
}
