// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// SparseAttention<PosEnc, Selector, Storage, Backend>: one attention layer of one sequence
// with its KV cache, composed from four policies (fasa/policies/concepts.hpp).
//
//   prefill(q, k, v, out)  dense causal attention over a block of new tokens (the paper keeps
//                          prefill dense for every method), appending their keys and values
//   decode(q, k, v, out)   one new token: append its k/v, select tokens, attend over them
//   append(k, v)           add tokens to the cache without attention (e.g. to fill a benchmark)
//
// Inputs are pre-RoPE; the positional encoding rotates q and k at their absolute positions
// (0, 1, 2, ... in append order) and the cache keeps post-RoPE keys.

#include <cmath>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "fasa/compose/selection.hpp"
#include "fasa/core/error.hpp"
#include "fasa/policies/concepts.hpp"

namespace fasa {

template <class PE, class Sel, class St, class Be>
class SparseAttention {
  static_assert(PositionalEncoding<PE>,
                "SparseAttention: the first policy must model fasa::PositionalEncoding: a "
                "trivially copyable type with `using policy_tag = fasa::positional_encoding_tag;`, "
                "head_dim(), num_fcs(), fc_dims(i) and rotate(x, pos)");
  static_assert(TokenSelector<Sel>,
                "SparseAttention: the second policy must model fasa::TokenSelector: a trivially "
                "copyable type with `using policy_tag = fasa::token_selector_tag;`, a static "
                "score_kind `kind`, granularity(), keep(t), forced(), score(uq, keys, j) and "
                "validate(shape)");
  static_assert(KVStorage<St>,
                "SparseAttention: the third policy must model fasa::KVStorage: a trivially "
                "copyable type with `using policy_tag = fasa::kv_storage_tag;`, sizes, "
                "buffer_elements(), key_index(), value_index(), scoring_row_bytes() and "
                "validate(shape)");
  static_assert(AttentionBackend<Be>,
                "SparseAttention: the fourth policy must be a backend tag from "
                "fasa/policies/backend/tags.hpp (or one of your own with `using policy_tag = "
                "fasa::attention_backend_tag;` and a static `name`)");
  static_assert(ImplementedBackend<Be>,
                "SparseAttention: this backend's implementation is not visible here; include its "
                "header: fasa/backends/cpu/reference.hpp, fasa/backends/cpu/eigen.hpp or the CUDA "
                "bridge");

  using impl = backend_impl<Be>;

 public:
  using positional_type = PE;
  using selector_type = Sel;
  using storage_type = St;
  using backend_type = Be;

  SparseAttention(const attention_shape& shape, PE pe, Sel sel, St st, Be be = {})
      : shape_(shape), pe_(pe), sel_(sel), st_(st), be_(be) {
    shape_.validate();
    FASA_CHECK(pe_.head_dim() == shape_.head_dim, "SparseAttention: positional encoding head_dim (",
               pe_.head_dim(), ") differs from the attention shape's head_dim (", shape_.head_dim,
               ")");
    sel_.validate(shape_);
    st_.validate(shape_);
    impl::init(be_, st_, state_);
    q_rot_.resize(static_cast<std::size_t>(shape_.num_q_heads * shape_.head_dim));
    k_rot_.resize(static_cast<std::size_t>(shape_.num_kv_heads * shape_.head_dim));
  }

  // One decode step for the token at position size().
  // q: [num_q_heads, head_dim], k, v: [num_kv_heads, head_dim] (pre-RoPE);
  // out: [num_q_heads, head_dim].
  step_stats decode(std::span<const float> q, std::span<const float> k, std::span<const float> v,
                    std::span<float> out) {
    check_size("decode", "q", q.size(), q_values());
    check_size("decode", "k", k.size(), kv_values());
    check_size("decode", "v", v.size(), kv_values());
    check_size("decode", "out", out.size(), q_values());
    check_room("decode", 1);
    const std::int64_t pos = size_;
    append_rotated(k.data(), v.data());
    rotate_rows(q.data(), q_rot_.data(), shape_.num_q_heads, pos);
    const std::int64_t t = size_;

    const std::int64_t keep = sel_.keep(t);
    if constexpr (Sel::kind == score_kind::none) {
      selection_.all = true;
    } else if (keep >= t) {
      selection_.all = true;
    } else {
      impl::select(be_, sel_, st_, shape_, state_, q_rot_.data(), t, selection_);
    }
    if (selection_.all) selection_.granularity = sel_.granularity();
    impl::attend(be_, st_, shape_, state_, q_rot_.data(), t, selection_, out.data());
    return stats(t);
  }

  // Dense causal attention for T new tokens at positions size() .. size()+T-1.
  // q: [T, num_q_heads, head_dim], k, v: [T, num_kv_heads, head_dim]; out like q.
  void prefill(std::span<const float> q, std::span<const float> k, std::span<const float> v,
               std::span<float> out) {
    const std::int64_t count = rows_of("prefill", k.size(), kv_values());
    check_size("prefill", "q", q.size(), count * q_values());
    check_size("prefill", "v", v.size(), count * kv_values());
    check_size("prefill", "out", out.size(), count * q_values());
    check_room("prefill", count);
    const std::int64_t start = size_;
    std::vector<float> q_rot(q.size());
    for (std::int64_t i = 0; i < count; ++i) {
      append_rotated(k.data() + i * kv_values(), v.data() + i * kv_values());
      rotate_rows(q.data() + i * q_values(), q_rot.data() + i * q_values(), shape_.num_q_heads,
                  start + i);
    }
    impl::prefill(be_, st_, shape_, state_, q_rot.data(), start, count, out.data());
  }

  // Appends T tokens without attention. k, v: [T, num_kv_heads, head_dim] (pre-RoPE).
  void append(std::span<const float> k, std::span<const float> v) {
    const std::int64_t count = rows_of("append", k.size(), kv_values());
    check_size("append", "v", v.size(), count * kv_values());
    check_room("append", count);
    for (std::int64_t i = 0; i < count; ++i)
      append_rotated(k.data() + i * kv_values(), v.data() + i * kv_values());
  }

  std::int64_t size() const { return size_; }
  void reset() { size_ = 0; }
  const attention_shape& shape() const { return shape_; }
  const PE& positional() const { return pe_; }
  const Sel& selector() const { return sel_; }
  // Swaps the selector between steps (a new budget, say); the cache stays.
  void set_selector(const Sel& sel) {
    sel.validate(shape_);
    sel_ = sel;
  }
  const St& storage() const { return st_; }
  const Be& backend() const { return be_; }
  // The tokens chosen at the last decode step.
  const selection& last_selection() const { return selection_; }
  // Backend state (for a host backend, the cache buffer laid out by the storage).
  const typename impl::state& backend_state() const { return state_; }

 private:
  std::int64_t q_values() const { return std::int64_t{shape_.num_q_heads} * shape_.head_dim; }
  std::int64_t kv_values() const { return std::int64_t{shape_.num_kv_heads} * shape_.head_dim; }

  static void check_size(const char* call, const char* what, std::size_t got,
                         std::int64_t expected) {
    FASA_CHECK(static_cast<std::int64_t>(got) == expected, "SparseAttention::", call, ": ", what,
               " has ", got, " values, expected ", expected);
  }
  std::int64_t rows_of(const char* call, std::size_t got, std::int64_t row) const {
    FASA_CHECK(got > 0 && static_cast<std::int64_t>(got) % row == 0, "SparseAttention::", call,
               ": k has ", got,
               " values, expected a positive multiple of num_kv_heads*head_dim = ", row);
    return static_cast<std::int64_t>(got) / row;
  }
  void check_room(const char* call, std::int64_t count) const {
    FASA_CHECK(size_ + count <= shape_.capacity, "SparseAttention::", call, ": the cache holds ",
               size_, " of ", shape_.capacity, " tokens and cannot take ", count, " more");
  }
  void rotate_rows(const float* in, float* out, int rows, std::int64_t pos) const {
    const int d = shape_.head_dim;
    std::copy(in, in + std::int64_t{rows} * d, out);
    for (int r = 0; r < rows; ++r) pe_.rotate(out + r * d, pos);
  }
  void append_rotated(const float* k, const float* v) {
    rotate_rows(k, k_rot_.data(), shape_.num_kv_heads, size_);
    impl::append(be_, st_, state_, size_, k_rot_.data(), v);
    ++size_;
  }

  step_stats stats(std::int64_t t) const {
    constexpr int elem = sizeof(float);
    const std::int64_t row = std::int64_t{shape_.head_dim} * elem;
    step_stats s;
    s.context = t;
    s.dense_bytes = std::int64_t{shape_.num_kv_heads} * t * 2 * row;
    if (selection_.all) {
      s.kept = t;
      s.attend_bytes = s.dense_bytes;
      return s;
    }
    s.kept = selection_.per_unit;
    s.attend_bytes = std::int64_t{selection_.units} * selection_.per_unit * 2 * row;
    // A KV head's keys are streamed once for all units that read it (the fast backends score a
    // whole group in one pass), at the widest row any of them needs.
    for (int h = 0; h < shape_.num_kv_heads; ++h) {
      std::int64_t widest = 0;
      for (int u = 0; u < selection_.units; ++u) {
        const int kv =
            selection_.granularity == selection_granularity::query_head ? shape_.kv_head_of(u) : u;
        if (kv != h) continue;
        if constexpr (Sel::kind == score_kind::dot_dim_subset)
          widest = std::max(widest, st_.scoring_row_bytes(h, sel_.score_dims(u), elem));
        else if constexpr (Sel::kind == score_kind::dot_all_dims)
          widest = std::max(widest, row);
      }
      s.score_bytes += widest * t;
    }
    return s;
  }

  attention_shape shape_;
  [[no_unique_address]] PE pe_;
  [[no_unique_address]] Sel sel_;
  [[no_unique_address]] St st_;
  [[no_unique_address]] Be be_;
  typename impl::state state_;
  std::int64_t size_ = 0;
  selection selection_;
  std::vector<float> q_rot_;  // [num_q_heads, head_dim]
  std::vector<float> k_rot_;  // [num_kv_heads, head_dim]
};

}  // namespace fasa
