// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Small valid inputs for the fuzz targets' seed corpora, written from the formats'
// descriptions (the GGUF writer of the reader's tests, llama2.c's run.c layout, the calibration
// writer): tiny models with made-up weights, never a real model's. fasa_fuzz_seeds writes them
// into one folder per target (tests/fuzz/CMakeLists.txt), so nothing binary is kept in git.

#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "fasa/calib/calibration_file.hpp"
#include "fasa/model/tokenizer_bpe.hpp"
#include "model/gguf_writer.hpp"

namespace fasa::fuzz {

namespace g = fasa::test::gguf;
using bytes = std::vector<std::uint8_t>;

// A byte-level BPE vocabulary in GPT-2's notation: the 256 byte tokens, a few merged ones and
// SmolLM2's control tokens; `merges` builds every merged token from two earlier ones.
struct tiny_vocab {
  std::vector<std::string> tokens;
  std::vector<std::string> merges;
  std::vector<std::int32_t> types;  // 1 normal, 3 control
};

inline tiny_vocab make_tiny_vocab(bool all_bytes = true) {
  tiny_vocab v;
  if (all_bytes) {
    for (int b = 0; b < 256; ++b)
      v.tokens.push_back(model::gpt2_bytes_to_text(std::string(1, static_cast<char>(b))));
  } else {
    for (const char* t : {" ", "t", "h", "e", "a", "n", "d", "o", "1", "2", "\n"})
      v.tokens.push_back(model::gpt2_bytes_to_text(t));
  }
  v.types.assign(v.tokens.size(), 1);
  const std::pair<const char*, const char*> merged[] = {
      {"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"a", "n"}, {"an", "d"}, {"Ġ", "and"}, {"1", "2"}};
  for (const auto& [a, b] : merged) {
    v.merges.push_back(std::string(a) + " " + b);
    v.tokens.push_back(std::string(a) + b);
    v.types.push_back(1);
  }
  for (const char* s : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
    v.tokens.push_back(s);
    v.types.push_back(3);
  }
  return v;
}

inline bytes string_array(const std::vector<std::string>& items) {
  bytes e;
  for (const auto& s : items) g::put_str(e, s);
  return g::array(g::vt_string, items.size(), e);
}

inline bytes int32_array(const std::vector<std::int32_t>& items) {
  bytes e;
  for (const auto x : items) g::put_u32(e, static_cast<std::uint32_t>(x));
  return g::array(g::vt_int32, items.size(), e);
}

// The tokenizer keys of a GGUF file (llama.cpp's names).
inline void add_tokenizer(g::builder& b, const tiny_vocab& v) {
  b.kv("tokenizer.ggml.model", g::vt_string, g::str("gpt2"));
  b.kv("tokenizer.ggml.pre", g::vt_string, g::str("smollm"));
  b.kv("tokenizer.ggml.tokens", g::vt_array, string_array(v.tokens));
  b.kv("tokenizer.ggml.merges", g::vt_array, string_array(v.merges));
  b.kv("tokenizer.ggml.token_type", g::vt_array, int32_array(v.types));
  const auto eos = static_cast<std::uint32_t>(v.tokens.size() - 3);
  b.kv("tokenizer.ggml.bos_token_id", g::vt_uint32, g::le(eos + 1, 4));
  b.kv("tokenizer.ggml.eos_token_id", g::vt_uint32, g::le(eos + 2, 4));
  b.kv("tokenizer.ggml.add_bos_token", g::vt_bool, g::le(0, 1));
}

// `n` values of tensor type `type` (F32, F16 or Q8_0; Q8_0 needs n % 32 == 0), pseudo-random.
inline bytes tensor_data(std::uint32_t type, std::size_t n, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  bytes d;
  if (type == g::tt_f32) {
    for (std::size_t i = 0; i < n; ++i) g::put_f32(d, u(gen));
  } else if (type == g::tt_f16) {
    for (std::size_t i = 0; i < n; ++i)
      g::put_u16(d, static_cast<std::uint16_t>(0x3000 + gen() % 0x0c00));
  } else {  // Q8_0: {fp16 scale, int8[32]} per block
    for (std::size_t blk = 0; blk < n / 32; ++blk) {
      g::put_u16(d, 0x2000);  // 2^-7
      for (int j = 0; j < 32; ++j) g::put_u8(d, static_cast<std::uint8_t>(gen()));
    }
  }
  return d;
}

// A complete Llama-family GGUF that read_gguf_llama and bpe_tokenizer::from_gguf accept:
// `dim` wide (a multiple of 32 for Q8_0), 2 query heads, 1 KV head, one layer.
inline bytes tiny_llama_gguf(std::uint32_t type, int dim, bool all_bytes, bool tied) {
  const tiny_vocab v = make_tiny_vocab(all_bytes);
  const auto vocab = static_cast<std::uint64_t>(v.tokens.size());
  const std::uint64_t d = static_cast<std::uint64_t>(dim), head = d / 2, hidden = 2 * d;
  g::builder b;
  b.kv("general.architecture", g::vt_string, g::str("llama"));
  b.kv("general.name", g::vt_string, g::str("fuzz-seed"));
  b.kv("llama.block_count", g::vt_uint32, g::le(1, 4));
  b.kv("llama.context_length", g::vt_uint32, g::le(64, 4));
  b.kv("llama.embedding_length", g::vt_uint32, g::le(d, 4));
  b.kv("llama.feed_forward_length", g::vt_uint32, g::le(hidden, 4));
  b.kv("llama.attention.head_count", g::vt_uint32, g::le(2, 4));
  b.kv("llama.attention.head_count_kv", g::vt_uint32, g::le(1, 4));
  b.kv("llama.attention.layer_norm_rms_epsilon", g::vt_float32, g::f32(1e-5f));
  b.kv("llama.rope.freq_base", g::vt_float32, g::f32(10000.0f));
  b.kv("llama.rope.dimension_count", g::vt_uint32, g::le(head, 4));
  add_tokenizer(b, v);
  std::uint32_t seed = 1;
  const auto matrix = [&](const std::string& name, std::uint64_t cols, std::uint64_t rows) {
    b.tensor(name, {cols, rows}, type, tensor_data(type, cols * rows, seed++));
  };
  const auto vector = [&](const std::string& name, std::uint64_t n) {
    b.tensor(name, {n}, g::tt_f32, tensor_data(g::tt_f32, n, seed++));
  };
  matrix("token_embd.weight", d, vocab);
  vector("output_norm.weight", d);
  if (!tied) matrix("output.weight", d, vocab);
  vector("blk.0.attn_norm.weight", d);
  matrix("blk.0.attn_q.weight", d, 2 * head);
  matrix("blk.0.attn_k.weight", d, head);
  matrix("blk.0.attn_v.weight", d, head);
  matrix("blk.0.attn_output.weight", 2 * head, d);
  vector("blk.0.ffn_norm.weight", d);
  matrix("blk.0.ffn_gate.weight", d, hidden);
  matrix("blk.0.ffn_up.weight", d, hidden);
  matrix("blk.0.ffn_down.weight", hidden, d);
  return b.build();
}

// A llama2.c checkpoint (run.c's layout: a 7-int header, then each kind of tensor for all
// layers) with head_dim 4; a negative vocab size in the header means an untied classifier.
inline bytes tiny_llama2c(bool tied) {
  const std::int32_t dim = 8, hidden = 16, layers = 1, heads = 2, kv_heads = 1, vocab = 6, seq = 4;
  bytes b;
  for (const std::int32_t h : {dim, hidden, layers, heads, kv_heads, tied ? vocab : -vocab, seq})
    g::put_u32(b, static_cast<std::uint32_t>(h));
  const std::int32_t head_dim = dim / heads, kv = kv_heads * head_dim;
  const std::size_t floats = static_cast<std::size_t>(
      vocab * dim + layers * (dim + dim * dim + 2 * kv * dim + dim * dim + dim + 3 * hidden * dim) +
      dim + seq * head_dim + (tied ? 0 : vocab * dim));
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  for (std::size_t i = 0; i < floats; ++i) g::put_f32(b, u(gen));
  return b;
}

// A llama2.c tokenizer file: int32 max_token_length, then {float score, int32 length, bytes}
// per token: <unk>, <s>, </s>, the 256 "<0xXX>" byte tokens and a few words.
inline bytes tiny_llama2c_tokenizer(bool with_bytes) {
  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>"};
  if (with_bytes)
    for (int b = 0; b < 256; ++b) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "<0x%02X>", b);
      pieces.push_back(hex);
    }
  for (const char* w : {" ", "e", "t", "h", "th", "he", " the", "a", " a", "Once", " upon"})
    pieces.push_back(w);
  std::size_t max_len = 0;
  for (const auto& p : pieces) max_len = std::max(max_len, p.size());
  bytes b;
  g::put_u32(b, static_cast<std::uint32_t>(max_len));
  float score = 0.0f;
  for (const auto& p : pieces) {
    g::put_f32(b, score);
    score -= 0.5f;
    g::put_u32(b, static_cast<std::uint32_t>(p.size()));
    b.insert(b.end(), p.begin(), p.end());
  }
  return b;
}

// A calibration file as fasa-calibrate writes it (the library's own writer), for 2 layers of
// `heads` query heads over `kv_heads` KV heads, head_dim 8, at one or two windows K.
inline std::string tiny_calibration(int heads, int kv_heads, selection_granularity granularity,
                                    bool two_windows) {
  calib::calibration c;
  c.model = {"fuzz-seed", std::string(64, 'a')};
  c.num_layers = 2;
  c.num_q_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = 8;
  c.rope.rotary_dim = 8;
  c.granularity = granularity;
  c.k_values = two_windows ? std::vector<int>{4, 16} : std::vector<int>{8};
  c.steps = 12;
  c.selection = {c.k_values.front(), 2};
  const int units = c.num_units(), fcs = c.num_fcs();
  for (std::size_t i = 0; i < c.k_values.size() * 2 * static_cast<std::size_t>(units * fcs); ++i)
    c.mean_ca.push_back(static_cast<double>(i % 7) / 8.0);
  c.dominant.assign(2, std::vector<std::vector<int>>(static_cast<std::size_t>(units), {1, 3}));
  std::ostringstream os;
  calib::write_calibration(c, os);
  return os.str();
}

// Texts for the tokenizers' encode(): plain words, control tokens, multi-byte and broken UTF-8,
// digits, whitespace runs and contractions (the pre-tokenizers' branches).
inline std::vector<std::string> encode_texts() {
  return {"Once upon a time, there was a little girl named Lily.",
          "<|im_start|>user\nWhat is 1234567 + 89?<|im_end|>\n<|im_start|>assistant\n",
          "caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 na\xc3\xafve",
          "broken \xc3 utf-8 \xff\xfe \xe2\x82 and \xf0\x9f\x98",
          "tabs\tand   spaces \n\n\r\n   trailing   ",
          "I'm sure they've said we'll don't 'quote' x's",
          std::string("nul\0byte", 8),
          "<|endoftext|><|im_end|><|im_start|"};
}

}  // namespace fasa::fuzz
