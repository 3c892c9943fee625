// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// The Llama-family forward pass on the CPU, written to be read next to llama2.c's run.c:
// embedding -> for each layer { RMSNorm, q/k/v projections, attention (the layer's
// SparseAttention composition: RoPE, KV cache, selection, exact attention), output projection,
// residual; RMSNorm, SwiGLU feed-forward, residual } -> final RMSNorm -> output head.
//
// prefill(tokens) pushes a block of tokens through every layer at once (matrix-matrix products,
// dense causal attention: the paper compresses nothing during prefill) and returns the logits
// of the last one. decode(token) runs one token with each layer's selector. Matrix products use
// Eigen; single-token products are split over output rows with OpenMP.

#include "fasa/backends/cpu/eigen_core.hpp"

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "fasa/core/error.hpp"
#include "fasa/model/layer_attention.hpp"
#include "fasa/model/llama_weights.hpp"

namespace fasa::model {

namespace detail {

// y = W x for row-major W [rows, cols]: output rows split over threads (Eigen's own
// matrix-vector product is single-threaded).
inline void matvec(const row_matrix& w, const float* x, float* y) {
  const Eigen::Index rows = w.rows(), cols = w.cols();
  const Eigen::Map<const Eigen::VectorXf> xv(x, cols);
  constexpr Eigen::Index kBlock = 64;
  const Eigen::Index blocks = (rows + kBlock - 1) / kBlock;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 16))
#endif
  for (Eigen::Index b = 0; b < blocks; ++b) {
    const Eigen::Index r0 = b * kBlock, n = std::min(kBlock, rows - r0);
    Eigen::Map<Eigen::VectorXf>(y + r0, n).noalias() = w.middleRows(r0, n) * xv;
  }
}

// Y = X W^T for X [T, in] and row-major W [out, in]; one token goes through matvec.
inline void project(const row_matrix& x, const row_matrix& w, row_matrix& y) {
  y.resize(x.rows(), w.rows());
  if (x.rows() == 1)
    matvec(w, x.data(), y.data());
  else
    y.noalias() = x * w.transpose();
}

// RMSNorm of each row: y = x / sqrt(mean(x^2) + eps) * weight.
inline void rms_norm(const row_matrix& x, const Eigen::VectorXf& weight, float eps, row_matrix& y) {
  y.resize(x.rows(), x.cols());
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    const float mean_sq = x.row(r).squaredNorm() / static_cast<float>(x.cols());
    const float inv = 1.0f / std::sqrt(mean_sq + eps);
    y.row(r) = (x.row(r) * inv).cwiseProduct(weight.transpose());
  }
}

}  // namespace detail

// The keys and values a dense prefill put into every layer's cache (pre-RoPE, as the layers take
// them), with the logits of its last token. Every composition prefills densely, so one captured
// prefix can start any number of compositions at the same place without recomputing it: an
// evaluation prefills a 7,000-token window once and decodes it under each selector.
struct kv_prefix {
  std::vector<std::int32_t> tokens;      // what was prefilled
  std::vector<std::vector<float>> k, v;  // per layer: [tokens, n_kv_heads, head_dim]
  std::vector<float> logits;             // of the last prefilled token: [vocab_size]

  std::int64_t size() const { return static_cast<std::int64_t>(tokens.size()); }
  std::size_t bytes() const {
    std::size_t b = tokens.size() * sizeof(std::int32_t) + logits.size() * sizeof(float);
    for (std::size_t l = 0; l < k.size(); ++l) b += (k[l].size() + v[l].size()) * sizeof(float);
    return b;
  }
};

class llama_model {
 public:
  // Called after each layer's attention at a decode step: the layer, the step's pre-RoPE query
  // [n_heads, head_dim], its position, and the layer's attention, whose cache then holds every
  // token up to and including this one (the paper's code appends the current key before
  // scoring). Calibration uses it to read queries and keys.
  using decode_observer = std::function<void(int layer, std::span<const float> q, std::int64_t pos,
                                             const layer_attention& attn)>;

  // The model views `weights` (keep them alive); layers[l] is layer l's attention.
  llama_model(const llama_weights& weights, std::vector<std::unique_ptr<layer_attention>> layers)
      : w_(weights), layers_(std::move(layers)) {
    const auto& c = w_.config;
    c.validate();
    FASA_CHECK(static_cast<int>(layers_.size()) == c.n_layers, "llama_model: got ", layers_.size(),
               " layer attentions for a model of ", c.n_layers, " layers");
    for (int l = 0; l < c.n_layers; ++l) {
      FASA_CHECK(layers_[static_cast<std::size_t>(l)] != nullptr, "llama_model: layer ", l,
                 " has no attention");
      const auto& s = layers_[static_cast<std::size_t>(l)]->shape();
      FASA_CHECK(
          s.num_q_heads == c.n_heads && s.num_kv_heads == c.n_kv_heads && s.head_dim == c.head_dim,
          "llama_model: layer ", l, "'s attention has ", s.num_q_heads, "/", s.num_kv_heads,
          " heads of dim ", s.head_dim, ", the model ", c.n_heads, "/", c.n_kv_heads, " of dim ",
          c.head_dim);
    }
    stats_.resize(layers_.size());
  }

  const llama_config& config() const { return w_.config; }
  const llama_weights& weights() const { return w_; }
  std::int64_t position() const { return position_; }
  std::int64_t capacity() const { return layers_.front()->shape().capacity; }
  layer_attention& layer(int l) { return *layers_.at(static_cast<std::size_t>(l)); }
  const layer_attention& layer(int l) const { return *layers_.at(static_cast<std::size_t>(l)); }
  // Per-layer accounting of the last decode step.
  const std::vector<step_stats>& last_step_stats() const { return stats_; }
  void set_decode_observer(decode_observer f) { observer_ = std::move(f); }

  void reset() {
    for (auto& l : layers_) l->reset();
    position_ = 0;
  }

  // Runs tokens at positions position() .. position()+T-1 with dense attention; returns the
  // logits of the last token: [vocab_size].
  std::span<const float> prefill(std::span<const std::int32_t> tokens) {
    FASA_CHECK(!tokens.empty(), "llama_model::prefill: no tokens");
    return forward(tokens, false);
  }

  // One token at position(), through each layer's selector; returns its logits [vocab_size].
  std::span<const float> decode(std::int32_t token) { return forward({&token, 1}, true); }

  // reset() and prefill(tokens), keeping a copy of what the prefill cached in every layer.
  kv_prefix prefill_captured(std::span<const std::int32_t> tokens) {
    FASA_CHECK(!tokens.empty(), "llama_model::prefill_captured: no tokens");
    reset();
    kv_prefix p;
    p.tokens.assign(tokens.begin(), tokens.end());
    p.k.resize(layers_.size());
    p.v.resize(layers_.size());
    capture_ = &p;
    try {
      forward(tokens, false);
    } catch (...) {
      capture_ = nullptr;
      throw;
    }
    capture_ = nullptr;
    p.logits = logits_;
    return p;
  }

  // reset(), then puts a captured prefix into every layer's cache as if this model had
  // prefilled it; returns the prefix's last logits. The prefix must come from a model with the
  // same weights (checked: layer count, KV shape and vocabulary).
  std::span<const float> load_prefix(const kv_prefix& p) {
    const auto& c = w_.config;
    const auto row = static_cast<std::size_t>(c.n_kv_heads * c.head_dim);
    FASA_CHECK(p.size() >= 1 && p.k.size() == layers_.size() && p.v.size() == layers_.size() &&
                   p.logits.size() == static_cast<std::size_t>(c.vocab_size),
               "llama_model::load_prefix: the prefix was captured on a different model (",
               p.k.size(), " layers, ", p.logits.size(), " logits; this model has ", layers_.size(),
               " and ", c.vocab_size, ")");
    FASA_CHECK(p.size() <= capacity(), "llama_model::load_prefix: a prefix of ", p.size(),
               " tokens exceeds the cache capacity of ", capacity(), " tokens");
    reset();
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      FASA_CHECK(p.k[l].size() == row * p.tokens.size() && p.v[l].size() == p.k[l].size(),
                 "llama_model::load_prefix: layer ", l, "'s keys/values do not match ",
                 p.tokens.size(), " tokens of ", c.n_kv_heads, " KV heads of dim ", c.head_dim);
      layers_[l]->append(p.k[l], p.v[l]);
    }
    position_ = p.size();
    logits_ = p.logits;
    return {logits_.data(), logits_.size()};
  }

 private:
  std::span<const float> forward(std::span<const std::int32_t> tokens, bool decoding) {
    const auto& c = w_.config;
    const auto t = static_cast<Eigen::Index>(tokens.size());
    FASA_CHECK(position_ + t <= capacity(), "llama_model: ", t, " more tokens at position ",
               position_, " exceed the cache capacity of ", capacity(), " tokens");
    // Step 1: token embeddings, x: [T, dim].
    x_.resize(t, c.dim);
    for (Eigen::Index i = 0; i < t; ++i) {
      const std::int32_t id = tokens[static_cast<std::size_t>(i)];
      FASA_CHECK(id >= 0 && id < c.vocab_size, "llama_model: token id ", id,
                 " is outside the vocabulary [0, ", c.vocab_size, ")");
      x_.row(i) = w_.token_embedding.row(id);
    }
    for (int l = 0; l < c.n_layers; ++l) {
      const auto& lw = w_.layers[static_cast<std::size_t>(l)];
      auto& attn = *layers_[static_cast<std::size_t>(l)];
      // Step 2: attention block. RMSNorm, then q, k, v = W x (RoPE happens inside attn).
      detail::rms_norm(x_, lw.attn_norm, c.norm_eps, xn_);
      detail::project(xn_, lw.wq, q_);
      detail::project(xn_, lw.wk, k_);
      detail::project(xn_, lw.wv, v_);
      att_.resize(t, c.n_heads * c.head_dim);
      const std::span<const float> q(q_.data(), static_cast<std::size_t>(q_.size()));
      const std::span<const float> k(k_.data(), static_cast<std::size_t>(k_.size()));
      const std::span<const float> v(v_.data(), static_cast<std::size_t>(v_.size()));
      const std::span<float> out(att_.data(), static_cast<std::size_t>(att_.size()));
      if (decoding) {
        stats_[static_cast<std::size_t>(l)] = attn.decode(q, k, v, out);
        if (observer_) observer_(l, q, position_, attn);
      } else {
        attn.prefill(q, k, v, out);
        if (capture_) {
          capture_->k[static_cast<std::size_t>(l)].assign(k.begin(), k.end());
          capture_->v[static_cast<std::size_t>(l)].assign(v.begin(), v.end());
        }
      }
      // Step 3: output projection and residual, x += W_o att.
      detail::project(att_, lw.wo, tmp_);
      x_ += tmp_;
      // Step 4: feed-forward block. RMSNorm, then SwiGLU: W_down (silu(W_gate x) * W_up x).
      detail::rms_norm(x_, lw.ffn_norm, c.norm_eps, xn_);
      detail::project(xn_, lw.w_gate, gate_);
      detail::project(xn_, lw.w_up, up_);
      gate_ = gate_.array() / (1.0f + (-gate_.array()).exp()) * up_.array();  // silu(g) * u
      detail::project(gate_, lw.w_down, tmp_);
      x_ += tmp_;
    }
    position_ += t;
    // Step 5: final RMSNorm of the last token and the output head: logits = W_out x.
    last_ = x_.row(t - 1);
    detail::rms_norm(last_, w_.output_norm, c.norm_eps, xn_);
    logits_.resize(c.vocab_size);
    detail::matvec(w_.output_head(), xn_.data(), logits_.data());
    return {logits_.data(), logits_.size()};
  }

  const llama_weights& w_;
  std::vector<std::unique_ptr<layer_attention>> layers_;
  std::vector<step_stats> stats_;
  decode_observer observer_;
  kv_prefix* capture_ = nullptr;  // set during prefill_captured
  std::int64_t position_ = 0;
  row_matrix x_, xn_, q_, k_, v_, att_, tmp_, gate_, up_, last_;  // activations, reused
  std::vector<float> logits_;
};

}  // namespace fasa::model
