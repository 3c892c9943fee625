// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0

// fasa_fuzz_seeds DIR: writes each fuzz target's seed corpus into DIR/<target>/ (small valid
// files from seed_files.hpp, plus stories260K's tokenizer from ../shared/data where present).

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>

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

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fasa_fuzz_seeds DIR\n");
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
