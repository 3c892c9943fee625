// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0

// fasa_fuzz_seeds DIR: writes each fuzz target's seed corpus into DIR/<target>/ (small valid
// files from seed_files.hpp, plus stories260K's tokenizer from ../shared/data where present).
// fasa_fuzz_seeds --tokenizer-only MODEL.gguf OUT.gguf: writes a GGUF with only MODEL's
// tokenizer keys (SmolLM2's: about 1 MB of the 98 MB file), for fuzz_tokenizer_encode's
// FASA_MODEL where the model itself is too big to copy (a longer run on another machine).

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>

#include "fasa/model/gguf.hpp"
#include "fuzz/seed_files.hpp"

namespace {

namespace fs = std::filesystem;

void write(const fs::path& dir, const std::string& name, std::string_view content) {
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!out) throw std::runtime_error("cannot write " + (dir / name).string());
}

void write(const fs::path& dir, const std::string& name, const fasa::fuzz::bytes& content) {
  write(dir, name, std::string_view(reinterpret_cast<const char*>(content.data()), content.size()));
}

}  // namespace

// The tokenizer keys bpe_tokenizer::from_gguf reads, copied from `model` into a GGUF of their own.
fasa::fuzz::bytes tokenizer_only(const fs::path& model) {
  namespace g = fasa::test::gguf;
  const fasa::model::gguf_file f(model);
  g::builder b;
  for (const char* key : {"tokenizer.ggml.model", "tokenizer.ggml.pre"})
    if (f.has(key)) b.kv(key, g::vt_string, g::str(f.get_string(key)));
  for (const char* key : {"tokenizer.ggml.tokens", "tokenizer.ggml.merges"})
    b.kv(key, g::vt_array, fasa::fuzz::string_array(f.get_string_array(key)));
  if (f.has("tokenizer.ggml.token_type"))
    b.kv("tokenizer.ggml.token_type", g::vt_array,
         fasa::fuzz::int32_array(f.get_int_array<std::int32_t>("tokenizer.ggml.token_type")));
  for (const char* key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                          "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"})
    if (f.has(key)) b.kv(key, g::vt_uint32, g::le(f.get_int<std::uint32_t>(key), 4));
  if (f.has("tokenizer.ggml.add_bos_token"))
    b.kv("tokenizer.ggml.add_bos_token", g::vt_bool,
         g::le(f.get_bool("tokenizer.ggml.add_bos_token") ? 1 : 0, 1));
  return b.build();
}

int main(int argc, char** argv) {
  if (argc == 4 && std::string_view(argv[1]) == "--tokenizer-only") {
    try {
      const fs::path out = argv[3];
      write(out.parent_path().empty() ? fs::path(".") : out.parent_path(), out.filename().string(),
            tokenizer_only(argv[2]));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "fasa_fuzz_seeds: %s\n", e.what());
      return 1;
    }
    return 0;
  }
  if (argc != 2) {
    std::fprintf(stderr,
                 "usage: fasa_fuzz_seeds DIR\n"
                 "       fasa_fuzz_seeds --tokenizer-only MODEL.gguf OUT.gguf\n");
    return 2;
  }
  namespace g = fasa::test::gguf;
  using fasa::selection_granularity;
  const fs::path root = argv[1];
  try {
    const fs::path gguf = root / "gguf";
    write(gguf, "tiny_f32_small_vocab.gguf",
          fasa::fuzz::tiny_llama_gguf(g::tt_f32, 8, false, true));
    write(gguf, "tiny_f16_untied.gguf", fasa::fuzz::tiny_llama_gguf(g::tt_f16, 8, false, false));
    write(gguf, "tiny_q8_0.gguf", fasa::fuzz::tiny_llama_gguf(g::tt_q8_0, 32, false, true));
    write(gguf, "tiny_f32_byte_vocab.gguf", fasa::fuzz::tiny_llama_gguf(g::tt_f32, 8, true, true));

    write(root / "llama2c", "tiny_tied.bin", fasa::fuzz::tiny_llama2c(true));
    write(root / "llama2c", "tiny_untied.bin", fasa::fuzz::tiny_llama2c(false));

    const fs::path tok = root / "llama2c_tokenizer";
    write(tok, "tiny_words.bin", fasa::fuzz::tiny_llama2c_tokenizer(false));
    write(tok, "tiny_bytes.bin", fasa::fuzz::tiny_llama2c_tokenizer(true));
#ifdef FASA_SHARED_DATA_DIR
    const fs::path tok512 = fs::path(FASA_SHARED_DATA_DIR) / "models/stories260K/tok512.bin";
    if (fs::exists(tok512)) {  // read and written, not copied: the shared copy is read-only
      std::ifstream in(tok512, std::ios::binary);
      write(tok, "tok512.bin",
            std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
    }
#endif

    const fs::path cal = root / "calibration";
    write(cal, "query_head.json",
          fasa::fuzz::tiny_calibration(4, 2, selection_granularity::query_head, true));
    write(cal, "kv_head.json",
          fasa::fuzz::tiny_calibration(3, 1, selection_granularity::kv_head, false));

    int i = 0;
    for (const auto& text : fasa::fuzz::encode_texts())
      write(root / "tokenizer_encode", "text_" + std::to_string(i++) + ".txt", text);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fasa_fuzz_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
