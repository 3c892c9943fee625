// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// The configuration and float32 weights of a Llama-family decoder (Llama 2/3, SmolLM2,
// TinyLlama, llama2.c checkpoints): RMSNorm, RoPE attention with GQA, SwiGLU feed-forward, tied
// or separate output head. Every projection is a row-major [out, in] matrix, so y = W x.
// Readers for GGUF files and llama2.c checkpoints fill these (fasa/model/gguf_llama.hpp,
// fasa/model/llama2c.hpp); fasa/model/llama.hpp runs them.

#include "fasa/backends/cpu/eigen_core.hpp"

#include <cstdint>
#include <string>
#include <vector>

#include "fasa/core/error.hpp"
#include "fasa/core/shape.hpp"
#include "fasa/policies/positional/rope.hpp"

namespace fasa::model {

using row_matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct llama_config {
  std::string name;    // for messages and calibration files
  int dim = 0;         // residual width
  int hidden_dim = 0;  // feed-forward width
  int n_layers = 0;
  int n_heads = 0;     // query heads
  int n_kv_heads = 0;  // key/value heads (GQA)
  int head_dim = 0;    // dim / n_heads unless the file says otherwise
  int vocab_size = 0;
  int max_seq_len = 0;     // the context the model was trained for
  float norm_eps = 1e-5f;  // RMSNorm epsilon
  double rope_theta = 10000.0;
  positional::rope_layout rope_layout = positional::rope_layout::interleaved;
  positional::rope_scaling rope_scaling = {};
  int rotary_dim = 0;       // 0: head_dim
  bool tied_output = true;  // the output head reuses the token embedding

  // The attention shape of one layer for a cache of `capacity` tokens.
  attention_shape attention(std::int64_t capacity) const {
    return {n_heads, n_kv_heads, head_dim, capacity};
  }
  // RoPE as the model applies it, with the given FC map (the paper's pairs by default).
  positional::rope rope(
      positional::fc_mapping mapping = positional::fc_mapping::rotation_pairs) const {
    return positional::rope(head_dim, rope_theta, rope_layout, mapping, rope_scaling, rotary_dim);
  }

  void validate() const {
    FASA_CHECK(dim > 0 && hidden_dim > 0 && n_layers > 0 && n_heads > 0 && n_kv_heads > 0 &&
                   head_dim > 0 && vocab_size > 0,
               "model '", name, "' has a non-positive size: dim=", dim, " hidden_dim=", hidden_dim,
               " n_layers=", n_layers, " n_heads=", n_heads, " n_kv_heads=", n_kv_heads,
               " head_dim=", head_dim, " vocab_size=", vocab_size);
    FASA_CHECK(n_heads % n_kv_heads == 0, "model '", name, "': n_heads (", n_heads,
               ") is not a multiple of n_kv_heads (", n_kv_heads, ")");
    FASA_CHECK(head_dim % 2 == 0, "model '", name, "': head_dim (", head_dim,
               ") must be even for RoPE");
    FASA_CHECK(norm_eps > 0.0f, "model '", name, "': RMSNorm epsilon must be positive, got ",
               norm_eps);
  }
};

struct llama_layer_weights {
  Eigen::VectorXf attn_norm;  // [dim]
  row_matrix wq;              // [n_heads * head_dim, dim]
  row_matrix wk;              // [n_kv_heads * head_dim, dim]
  row_matrix wv;              // [n_kv_heads * head_dim, dim]
  row_matrix wo;              // [dim, n_heads * head_dim]
  Eigen::VectorXf ffn_norm;   // [dim]
  row_matrix w_gate;          // [hidden_dim, dim]   (w1)
  row_matrix w_up;            // [hidden_dim, dim]   (w3)
  row_matrix w_down;          // [dim, hidden_dim]   (w2)
};

struct llama_weights {
  llama_config config;
  row_matrix token_embedding;  // [vocab_size, dim]
  std::vector<llama_layer_weights> layers;
  Eigen::VectorXf output_norm;  // [dim]
  row_matrix output;            // [vocab_size, dim]; empty when config.tied_output

  const row_matrix& output_head() const { return config.tied_output ? token_embedding : output; }

  // Checks every tensor against the configuration, naming the first that does not fit.
  void validate() const {
    const auto& c = config;
    c.validate();
    auto check = [&](const char* what, int layer, Eigen::Index rows, Eigen::Index cols,
                     Eigen::Index want_rows, Eigen::Index want_cols) {
      FASA_CHECK(rows == want_rows && cols == want_cols, "model '", c.name, "': ", what,
                 layer >= 0 ? " of layer " : "", layer >= 0 ? std::to_string(layer) : "", " is [",
                 rows, ", ", cols, "], expected [", want_rows, ", ", want_cols, "]");
    };
    const int q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim;
    check("token embedding", -1, token_embedding.rows(), token_embedding.cols(), c.vocab_size,
          c.dim);
    check("output norm", -1, output_norm.size(), 1, c.dim, 1);
    if (!c.tied_output) check("output head", -1, output.rows(), output.cols(), c.vocab_size, c.dim);
    FASA_CHECK(static_cast<int>(layers.size()) == c.n_layers, "model '", c.name, "' has ",
               layers.size(), " layers of weights, expected ", c.n_layers);
    for (int l = 0; l < c.n_layers; ++l) {
      const auto& w = layers[static_cast<std::size_t>(l)];
      check("attention norm", l, w.attn_norm.size(), 1, c.dim, 1);
      check("wq", l, w.wq.rows(), w.wq.cols(), q, c.dim);
      check("wk", l, w.wk.rows(), w.wk.cols(), kv, c.dim);
      check("wv", l, w.wv.rows(), w.wv.cols(), kv, c.dim);
      check("wo", l, w.wo.rows(), w.wo.cols(), c.dim, q);
      check("ffn norm", l, w.ffn_norm.size(), 1, c.dim, 1);
      check("w_gate", l, w.w_gate.rows(), w.w_gate.cols(), c.hidden_dim, c.dim);
      check("w_up", l, w.w_up.rows(), w.w_up.cols(), c.hidden_dim, c.dim);
      check("w_down", l, w.w_down.rows(), w.w_down.cols(), c.dim, c.hidden_dim);
    }
  }

  // Bytes of weights one decode step reads (every matrix once; the embedding row is negligible).
  std::int64_t decode_weight_bytes() const {
    std::int64_t n = output_head().size() + output_norm.size();
    for (const auto& w : layers)
      n += w.attn_norm.size() + w.wq.size() + w.wk.size() + w.wv.size() + w.wo.size() +
           w.ffn_norm.size() + w.w_gate.size() + w.w_up.size() + w.w_down.size();
    return n * static_cast<std::int64_t>(sizeof(float));
  }
};

}  // namespace fasa::model
