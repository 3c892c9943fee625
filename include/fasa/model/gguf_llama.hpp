// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Llama-family weights from a GGUF file (architecture "llama": Llama 2/3, SmolLM2, TinyLlama,
// Mistral-style checkpoints converted by llama.cpp). The configuration comes from the file's
// metadata, never from assumptions about a model; every tensor is dequantised to float32 on
// load. The GGUF converter permutes the rows of Q and K so that RoPE rotates adjacent pairs
// (2i, 2i+1): the interleaved layout, whatever the original checkpoint used.

#include <filesystem>
#include <string>

#include "fasa/core/error.hpp"
#include "fasa/model/gguf.hpp"
#include "fasa/model/llama_weights.hpp"

namespace fasa::model {

namespace detail {

// Dequantises tensor `name`, which must be a [rows, cols] matrix (ggml dims {cols, rows}).
inline row_matrix gguf_matrix(const gguf_file& f, const std::string& name, Eigen::Index rows,
                              Eigen::Index cols) {
  const gguf_tensor_info& t = f.tensor(name);
  FASA_CHECK(t.dims.size() == 2 && t.dims[0] == static_cast<std::uint64_t>(cols) &&
                 t.dims[1] == static_cast<std::uint64_t>(rows),
             f.source(), ": tensor '", name, "' has dims ", t.dims_text(), ", expected [", cols,
             ", ", rows, "] (ggml order) for this model's configuration");
  row_matrix m(rows, cols);
  dequantize(t, std::span<float>(m.data(), static_cast<std::size_t>(m.size())));
  return m;
}

inline Eigen::VectorXf gguf_vector(const gguf_file& f, const std::string& name, Eigen::Index n) {
  const gguf_tensor_info& t = f.tensor(name);
  FASA_CHECK(t.n_elements == static_cast<std::uint64_t>(n) && t.dims.size() == 1, f.source(),
             ": tensor '", name, "' has dims ", t.dims_text(), ", expected [", n, "]");
  Eigen::VectorXf v(n);
  dequantize(t, std::span<float>(v.data(), static_cast<std::size_t>(n)));
  return v;
}

}  // namespace detail

// The configuration a GGUF file describes (metadata only; no tensor is read).
inline llama_config read_gguf_llama_config(const gguf_file& f) {
  const std::string arch = f.get_string("general.architecture");
  FASA_CHECK(arch == "llama", f.source(), ": architecture '", arch,
             "' is not one fasa runs; known: llama (Llama-family decoders)");
  const auto key = [&](const char* suffix) { return arch + "." + suffix; };
  llama_config c;
  c.name = f.has("general.name") ? f.get_string("general.name")
                                 : std::filesystem::path(f.source()).filename().string();
  c.n_layers = f.get_int<int>(key("block_count"));
  c.dim = f.get_int<int>(key("embedding_length"));
  c.hidden_dim = f.get_int<int>(key("feed_forward_length"));
  c.n_heads = f.get_int<int>(key("attention.head_count"));
  c.n_kv_heads = f.has(key("attention.head_count_kv"))
                     ? f.get_int<int>(key("attention.head_count_kv"))
                     : c.n_heads;
  FASA_CHECK(c.n_heads > 0, f.source(), ": ", key("attention.head_count"), " is ", c.n_heads);
  c.head_dim = f.has(key("attention.key_length")) ? f.get_int<int>(key("attention.key_length"))
                                                  : c.dim / c.n_heads;
  c.max_seq_len = f.has(key("context_length")) ? f.get_int<int>(key("context_length")) : 0;
  c.norm_eps = static_cast<float>(f.get_float(key("attention.layer_norm_rms_epsilon")));
  c.rope_theta = f.has(key("rope.freq_base")) ? f.get_float(key("rope.freq_base")) : 10000.0;
  c.rope_layout = positional::rope_layout::interleaved;
  c.rotary_dim =
      f.has(key("rope.dimension_count")) ? f.get_int<int>(key("rope.dimension_count")) : 0;
  if (f.has(key("rope.scaling.type"))) {
    const std::string type = f.get_string(key("rope.scaling.type"));
    FASA_CHECK(type == "none" || type == "linear", f.source(), ": RoPE scaling type '", type,
               "' is not supported; known: none, linear");
    if (type == "linear")
      c.rope_scaling = positional::rope_scaling::linear(f.get_float(key("rope.scaling.factor")));
  }
  // Llama 3.1 files carry their frequency factors as a tensor; refusing beats a silent error.
  FASA_CHECK(f.find_tensor("rope_freqs.weight") == nullptr, f.source(),
             ": per-frequency RoPE factors (tensor 'rope_freqs.weight', Llama 3.1 scaling) are "
             "not read from GGUF yet");
  const gguf_tensor_info& emb = f.tensor("token_embd.weight");
  FASA_CHECK(emb.dims.size() == 2, f.source(), ": token_embd.weight has dims ", emb.dims_text(),
             ", expected 2");
  c.vocab_size = static_cast<int>(emb.dims[1]);
  c.tied_output = f.find_tensor("output.weight") == nullptr;
  c.validate();
  FASA_CHECK(c.rotary_dim == 0 || (c.rotary_dim % 2 == 0 && c.rotary_dim <= c.head_dim), f.source(),
             ": ", key("rope.dimension_count"), " (", c.rotary_dim,
             ") must be even and at most head_dim (", c.head_dim, ")");
  return c;
}

inline llama_weights read_gguf_llama(const gguf_file& f) {
  llama_weights w;
  w.config = read_gguf_llama_config(f);
  const auto& c = w.config;
  const int q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim;
  w.token_embedding = detail::gguf_matrix(f, "token_embd.weight", c.vocab_size, c.dim);
  w.output_norm = detail::gguf_vector(f, "output_norm.weight", c.dim);
  if (!c.tied_output) w.output = detail::gguf_matrix(f, "output.weight", c.vocab_size, c.dim);
  w.layers.resize(static_cast<std::size_t>(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    auto& lw = w.layers[static_cast<std::size_t>(l)];
    const std::string p = "blk." + std::to_string(l) + ".";
    lw.attn_norm = detail::gguf_vector(f, p + "attn_norm.weight", c.dim);
    lw.wq = detail::gguf_matrix(f, p + "attn_q.weight", q, c.dim);
    lw.wk = detail::gguf_matrix(f, p + "attn_k.weight", kv, c.dim);
    lw.wv = detail::gguf_matrix(f, p + "attn_v.weight", kv, c.dim);
    lw.wo = detail::gguf_matrix(f, p + "attn_output.weight", c.dim, q);
    lw.ffn_norm = detail::gguf_vector(f, p + "ffn_norm.weight", c.dim);
    lw.w_gate = detail::gguf_matrix(f, p + "ffn_gate.weight", c.hidden_dim, c.dim);
    lw.w_up = detail::gguf_matrix(f, p + "ffn_up.weight", c.hidden_dim, c.dim);
    lw.w_down = detail::gguf_matrix(f, p + "ffn_down.weight", c.dim, c.hidden_dim);
  }
  w.validate();
  return w;
}

inline llama_weights read_gguf_llama(const std::filesystem::path& path) {
  return read_gguf_llama(gguf_file(path));
}

}  // namespace fasa::model
