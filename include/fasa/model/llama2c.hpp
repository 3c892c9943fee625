// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Reader for llama2.c checkpoints (Karpathy's run.c "version 0" format): a header of seven
// int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative
// vocab_size means the output head is stored separately), then float32 tensors in a fixed
// order, each [out, in] row-major and stacked over layers. RoPE rotates adjacent pairs
// (2i, 2i+1) with base 10000, as run.c does.

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "fasa/core/error.hpp"
#include "fasa/model/llama_weights.hpp"

namespace fasa::model {

namespace detail {

// A bounds-checked cursor over a checkpoint's floats.
class float_cursor {
 public:
  float_cursor(const std::vector<char>& bytes, std::size_t offset, std::string source)
      : bytes_(bytes), offset_(offset), source_(std::move(source)) {}

  // Copies n floats into a [rows, cols] row-major matrix.
  row_matrix matrix(const char* what, Eigen::Index rows, Eigen::Index cols) {
    row_matrix m(rows, cols);
    read(what, m.data(), static_cast<std::size_t>(rows * cols));
    return m;
  }
  Eigen::VectorXf vector(const char* what, Eigen::Index n) {
    Eigen::VectorXf v(n);
    read(what, v.data(), static_cast<std::size_t>(n));
    return v;
  }
  void skip(const char* what, std::size_t n) {
    need(what, n);
    offset_ += n * sizeof(float);
  }
  std::size_t offset() const { return offset_; }

 private:
  void need(const char* what, std::size_t n) const {
    FASA_CHECK(n <= (bytes_.size() - offset_) / sizeof(float), source_,
               ": llama2.c checkpoint is truncated: ", what, " needs ", n * sizeof(float),
               " bytes at byte offset ", offset_, " but the file has ", bytes_.size(), " bytes");
  }
  void read(const char* what, float* out, std::size_t n) {
    need(what, n);
    std::memcpy(out, bytes_.data() + offset_, n * sizeof(float));
    offset_ += n * sizeof(float);
  }
  const std::vector<char>& bytes_;
  std::size_t offset_;
  std::string source_;
};

inline std::vector<char> read_whole_file(const std::filesystem::path& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  FASA_CHECK(in.good(), "cannot open ", what, " '", path.string(), "'");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return bytes;
}

}  // namespace detail

// Reads a llama2.c checkpoint from memory. `source` names it in errors.
inline llama_weights read_llama2c(const std::vector<char>& bytes, const std::string& source) {
  constexpr std::size_t header = 7 * sizeof(std::int32_t);
  FASA_CHECK(bytes.size() >= header, source,
             ": llama2.c checkpoint is truncated: the header needs ", header,
             " bytes, the file has ", bytes.size());
  std::int32_t h[7];
  std::memcpy(h, bytes.data(), header);
  llama_weights w;
  auto& c = w.config;
  c.name = std::filesystem::path(source).filename().string();
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  // run.c's convention: a negative vocab size means an untied classifier (wcls follows).
  FASA_CHECK(h[5] != std::numeric_limits<std::int32_t>::min(), source,
             ": llama2.c header has vocab_size=", h[5]);
  c.vocab_size = h[5] < 0 ? -h[5] : h[5];
  c.tied_output = h[5] > 0;
  c.max_seq_len = h[6];
  FASA_CHECK(c.dim > 0 && c.n_heads > 0 && c.dim % c.n_heads == 0, source,
             ": llama2.c header has dim=", c.dim, " and n_heads=", c.n_heads,
             "; dim must be a positive multiple of n_heads");
  FASA_CHECK(c.max_seq_len > 0, source, ": llama2.c header has seq_len=", c.max_seq_len);
  c.head_dim = c.dim / c.n_heads;
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0;
  c.rope_layout = positional::rope_layout::interleaved;
  c.validate();
  // The sizes below multiply header fields: reject absurd headers before allocating.
  const double floats =
      static_cast<double>(c.vocab_size) * c.dim +
      static_cast<double>(c.n_layers) * c.dim * (2.0 * c.dim + 3.0 * c.hidden_dim);
  FASA_CHECK(floats * sizeof(float) <= static_cast<double>(bytes.size()), source,
             ": llama2.c checkpoint is truncated or not one: its header (dim=", c.dim,
             " hidden_dim=", c.hidden_dim, " n_layers=", c.n_layers, " vocab=", c.vocab_size,
             ") describes more weights than the file's ", bytes.size(), " bytes");

  detail::float_cursor cur(bytes, header, source);
  const int q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim;
  w.token_embedding = cur.matrix("token_embedding_table", c.vocab_size, c.dim);
  w.layers.resize(static_cast<std::size_t>(c.n_layers));
  // run.c stores each kind of tensor for all layers before the next kind.
  for (auto& l : w.layers) l.attn_norm = cur.vector("rms_att_weight", c.dim);
  for (auto& l : w.layers) l.wq = cur.matrix("wq", q, c.dim);
  for (auto& l : w.layers) l.wk = cur.matrix("wk", kv, c.dim);
  for (auto& l : w.layers) l.wv = cur.matrix("wv", kv, c.dim);
  for (auto& l : w.layers) l.wo = cur.matrix("wo", c.dim, q);
  for (auto& l : w.layers) l.ffn_norm = cur.vector("rms_ffn_weight", c.dim);
  for (auto& l : w.layers) l.w_gate = cur.matrix("w1", c.hidden_dim, c.dim);
  for (auto& l : w.layers) l.w_down = cur.matrix("w2", c.dim, c.hidden_dim);
  for (auto& l : w.layers) l.w_up = cur.matrix("w3", c.hidden_dim, c.dim);
  w.output_norm = cur.vector("rms_final_weight", c.dim);
  // two legacy RoPE tables (freq_cis_real, freq_cis_imag), unused
  cur.skip("freq_cis tables", static_cast<std::size_t>(c.max_seq_len) * c.head_dim);
  if (!c.tied_output) w.output = cur.matrix("wcls", c.vocab_size, c.dim);
  FASA_CHECK(cur.offset() == bytes.size(), source, ": llama2.c checkpoint has ",
             bytes.size() - cur.offset(), " bytes after the last tensor (at byte offset ",
             cur.offset(), "); is it another format?");
  w.validate();
  return w;
}

inline llama_weights read_llama2c(const std::filesystem::path& path) {
  return read_llama2c(detail::read_whole_file(path, "llama2.c checkpoint"), path.string());
}

}  // namespace fasa::model
