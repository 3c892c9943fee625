// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// layer_attention: one model layer's attention with its KV cache, behind a virtual interface,
// so that a model can hold a different composition in each layer (the paper keeps layer 0
// dense) and tools can choose compositions at run time. The virtual call happens once per layer
// per step, next to megabytes of memory traffic; inside, everything stays a compile-time
// composition (SparseAttention<...>).

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "fasa/compose/selection.hpp"
#include "fasa/compose/sparse_attention.hpp"
#include "fasa/policies/storage/contiguous.hpp"

namespace fasa::model {

// Post-RoPE keys (and the values) of a cache laid out [num_kv_heads, capacity, head_dim] in host
// memory.
struct host_keys_view {
  const float* data = nullptr;      // the keys; null when the layout is not contiguous host memory
  const float* values = nullptr;    // the values, same layout; null with the keys
  std::int64_t kv_head_stride = 0;  // floats between KV heads (capacity * head_dim)
};

class layer_attention {
 public:
  virtual ~layer_attention() = default;
  // q: [T, n_heads, head_dim], k, v: [T, n_kv_heads, head_dim] (pre-RoPE); out like q.
  virtual void prefill(std::span<const float> q, std::span<const float> k, std::span<const float> v,
                       std::span<float> out) = 0;
  // One token: q [n_heads, head_dim], k, v [n_kv_heads, head_dim]; out like q.
  virtual step_stats decode(std::span<const float> q, std::span<const float> k,
                            std::span<const float> v, std::span<float> out) = 0;
  // Caches T more tokens without attending: k, v [T, n_kv_heads, head_dim] (pre-RoPE), at
  // positions size() .. size()+T-1. Loading a captured prefill prefix goes through this.
  virtual void append(std::span<const float> k, std::span<const float> v) = 0;
  virtual std::int64_t size() const = 0;
  virtual void reset() = 0;
  virtual const selection& last_selection() const = 0;
  virtual const attention_shape& shape() const = 0;
  // What this layer runs, e.g. "fasa_c on cpu_eigen".
  virtual const std::string& description() const = 0;
  // The cached post-RoPE keys, when this layer keeps them contiguously in host memory.
  virtual host_keys_view keys() const = 0;
};

template <class Attn>
class layer_attention_of final : public layer_attention {
 public:
  // keep_alive holds whatever the policies view (a dominant_plan) for the layer's lifetime.
  layer_attention_of(Attn attn, std::string description, std::shared_ptr<const void> keep_alive)
      : attn_(std::move(attn)),
        description_(std::move(description)),
        keep_alive_(std::move(keep_alive)) {}

  void prefill(std::span<const float> q, std::span<const float> k, std::span<const float> v,
               std::span<float> out) override {
    attn_.prefill(q, k, v, out);
  }
  step_stats decode(std::span<const float> q, std::span<const float> k, std::span<const float> v,
                    std::span<float> out) override {
    return attn_.decode(q, k, v, out);
  }
  void append(std::span<const float> k, std::span<const float> v) override { attn_.append(k, v); }
  std::int64_t size() const override { return attn_.size(); }
  void reset() override { attn_.reset(); }
  const selection& last_selection() const override { return attn_.last_selection(); }
  const attention_shape& shape() const override { return attn_.shape(); }
  const std::string& description() const override { return description_; }
  host_keys_view keys() const override {
    if constexpr (std::is_same_v<typename Attn::storage_type, storage::contiguous> &&
                  requires { attn_.backend_state().cache.data(); }) {
      const float* cache = attn_.backend_state().cache.data();
      return {cache + attn_.storage().key_row(0, 0), cache + attn_.storage().value_row(0, 0),
              attn_.shape().capacity * attn_.shape().head_dim};
    } else {
      return {};
    }
  }
  Attn& attention() { return attn_; }

 private:
  Attn attn_;
  std::string description_;
  std::shared_ptr<const void> keep_alive_;
};

template <class Attn>
std::unique_ptr<layer_attention> make_layer_attention(Attn attn, std::string description,
                                                      std::shared_ptr<const void> keep_alive = {}) {
  return std::make_unique<layer_attention_of<Attn>>(std::move(attn), std::move(description),
                                                    std::move(keep_alive));
}

}  // namespace fasa::model
