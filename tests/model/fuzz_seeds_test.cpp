// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0

// The fuzz targets' seeds (tests/fuzz/seed_files.hpp) are valid inputs of their readers, read
// to the end (a seed the reader refuses would start the fuzzer from noise), and the defects the
// fuzzers found stay fixed: each input below is the one a fuzzer reduced, or its essence.

#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "fasa/calib/calibration_file.hpp"
#include "fasa/model/gguf.hpp"
#include "fasa/model/gguf_llama.hpp"
#include "fasa/model/llama2c.hpp"
#include "fasa/model/tokenizer_bpe.hpp"
#include "fasa/model/tokenizer_llama2c.hpp"
#include "fuzz/seed_files.hpp"
#include "support.hpp"

namespace {

namespace g = fasa::test::gguf;
using fasa::error;
using namespace fasa::model;

std::span<const char> chars(const fasa::fuzz::bytes& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace

TEST_CASE("fuzz seeds: every generated GGUF seed is a whole model with a tokenizer") {
  struct seed {
    std::uint32_t type;
    int dim;
    bool all_bytes, tied;
  };
  for (const seed s : {seed{g::tt_f32, 8, false, true}, seed{g::tt_f16, 8, false, false},
                       seed{g::tt_q8_0, 32, false, true}, seed{g::tt_f32, 8, true, true}}) {
    INFO("type ", s.type, " dim ", s.dim, " all_bytes ", s.all_bytes, " tied ", s.tied);
    const auto bytes = fasa::fuzz::tiny_llama_gguf(s.type, s.dim, s.all_bytes, s.tied);
    const gguf_file f(bytes, "seed.gguf");
    const auto w = read_gguf_llama(f);
    CHECK(w.config.dim == s.dim);
    CHECK(w.config.n_layers == 1);
    CHECK(w.config.n_heads == 2);
    CHECK(w.config.n_kv_heads == 1);
    CHECK(w.config.tied_output == s.tied);
    const auto tok = bpe_tokenizer::from_gguf(f);
    CHECK(tok.vocab_size() == w.config.vocab_size);
    // The merges are used: " the" is one token (Ġ t -> Ġt, h e -> he, Ġt he -> Ġthe).
    CHECK(tok.encode(" the").size() == 1);
    if (s.all_bytes)
      for (const auto& text : fasa::fuzz::encode_texts())
        CHECK(tok.decode(tok.encode(text)) == text);
  }
}

TEST_CASE("fuzz seeds: llama2.c checkpoint, tokenizer and calibration seeds read back") {
  for (const bool tied : {true, false}) {
    const auto b = fasa::fuzz::tiny_llama2c(tied);
    const auto w = read_llama2c(std::vector<char>(b.begin(), b.end()), "seed.bin");
    CHECK(w.config.tied_output == tied);
    CHECK(w.config.vocab_size == 6);
  }
  for (const bool with_bytes : {false, true}) {
    const auto tok = llama2c_tokenizer::from_bytes(
        chars(fasa::fuzz::tiny_llama2c_tokenizer(with_bytes)), "seed.bin");
    CHECK(tok.vocab_size() == (with_bytes ? 3 + 256 + 11 : 3 + 11));
    if (with_bytes) CHECK(tok.decode(tok.encode("Once upon the")) == "Once upon the");
  }
  for (const bool query_head : {true, false}) {
    std::istringstream in(fasa::fuzz::tiny_calibration(
        query_head ? 4 : 3, query_head ? 2 : 1,
        query_head ? fasa::selection_granularity::query_head : fasa::selection_granularity::kv_head,
        query_head));
    const auto c = fasa::calib::read_calibration(in, "seed.json");
    CHECK(c.num_layers == 2);
    CHECK(c.num_units() == (query_head ? 4 : 1));
  }
}

TEST_CASE("calib: calibration file with a number too large for JSON is refused (fuzz finding)") {
  // nlohmann's parser throws out_of_range (406), not parse_error, for such a number; it escaped
  // read_calibration as a foreign exception before.
  std::istringstream in("{\"format\": 1" + std::string(400, '0') + "}");
  CHECK_THROWS_WITH_AS(fasa::calib::read_calibration(in, "big.json"),
                       doctest::Contains("big.json: not a calibration file"), error);
}

TEST_CASE("llama: llama2.c reader refuses a vocab_size of INT_MIN (fuzz finding)") {
  // run.c reads a negative vocab size as "untied classifier" and negates it; -INT_MIN overflowed.
  auto b = fasa::fuzz::tiny_llama2c(true);
  const std::int32_t min = std::numeric_limits<std::int32_t>::min();
  std::memcpy(b.data() + 5 * 4, &min, 4);
  CHECK_THROWS_WITH_AS(read_llama2c(std::vector<char>(b.begin(), b.end()), "min.bin"),
                       doctest::Contains("min.bin: llama2.c header has vocab_size=-2147483648"),
                       error);
}
