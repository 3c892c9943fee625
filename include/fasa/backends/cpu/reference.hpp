// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// The reference backend: naive loops, one comment per formula step, sums in double. It is the
// oracle every other backend and every new policy is tested against, so it favours being
// obviously right over being fast. It reads keys only through the storage's key_index(), so it
// checks every layout too.

#include <cmath>
#include <cstdint>
#include <vector>

#include "fasa/backends/cpu/host_common.hpp"
#include "fasa/compose/selection.hpp"
#include "fasa/core/topk.hpp"
#include "fasa/policies/backend/tags.hpp"
#include "fasa/policies/concepts.hpp"

namespace fasa {

template <>
struct backend_impl<backend::cpu_reference> {
  using is_implemented = void;
  using state = cpu::host_state;
  using tag = backend::cpu_reference;

  template <KVStorage St>
  static void init(const tag&, const St& st, state& s) {
    cpu::host_init(st, s);
  }

  template <KVStorage St>
  static void append(const tag&, const St& st, state& s, std::int64_t pos, const float* k_rot,
                     const float* v) {
    cpu::host_append(st, s, pos, k_rot, v);
  }

  // TIP / oracle / any selector: score every cached token with the selector's own score(),
  // then keep the top keep(t) per unit (FASA Eq. 7). q_rot: [num_q_heads, head_dim].
  template <TokenSelector Sel, KVStorage St>
  static void select(const tag&, const Sel& sel, const St& st, const attention_shape& shape,
                     state& s, const float* q_rot, std::int64_t t, selection& out) {
    cpu::select_by_scores(
        sel, shape, q_rot, t, s.scores, s.scratch,
        [&](int kv) {
          return cpu::host_key_reader<St>{&st, s.cache.data(), kv};
        },
        out);
  }

  // FAC (FASA Eq. 8) or dense attention: for each query head h,
  //   o_h = softmax(q_h K_T^T / sqrt(d)) V_T over the unit's tokens T (all t when sel.all).
  // q_rot: [num_q_heads, head_dim]; out: [num_q_heads, head_dim].
  template <KVStorage St>
  static void attend(const tag&, const St& st, const attention_shape& shape, const state& s,
                     const float* q_rot, std::int64_t t, const selection& sel, float* out) {
    for (int h = 0; h < shape.num_q_heads; ++h) {
      const int kv = shape.kv_head_of(h);
      const int unit = sel.granularity == selection_granularity::query_head ? h : kv;
      const std::int64_t n = sel.all ? t : sel.per_unit;
      const auto token = [&](std::int64_t i) -> std::int64_t {
        return sel.all ? i : sel.unit_tokens(unit)[static_cast<std::size_t>(i)];
      };
      attend_one_head(st, s, shape.head_dim, kv, q_rot + h * shape.head_dim, n, token,
                      out + h * shape.head_dim);
    }
  }

  // Dense causal attention for a block of T new tokens at positions start .. start+T-1, whose
  // keys are already in the cache. q_rot: [T, num_q_heads, head_dim]; out likewise.
  template <KVStorage St>
  static void prefill(const tag&, const St& st, const attention_shape& shape, const state& s,
                      const float* q_rot, std::int64_t start, std::int64_t count, float* out) {
    const std::int64_t row = static_cast<std::int64_t>(shape.num_q_heads) * shape.head_dim;
    for (std::int64_t i = 0; i < count; ++i)
      for (int h = 0; h < shape.num_q_heads; ++h) {
        // causal: the token at position start+i sees positions 0 .. start+i
        const auto token = [](std::int64_t j) { return j; };
        attend_one_head(st, s, shape.head_dim, shape.kv_head_of(h),
                        q_rot + i * row + h * shape.head_dim, start + i + 1, token,
                        out + i * row + h * shape.head_dim);
      }
  }

 private:
  template <KVStorage St, class TokenAt>
  static void attend_one_head(const St& st, const state& s, int d, int kv, const float* q,
                              std::int64_t n, const TokenAt& token, float* out) {
    cpu::attend_rows(
        d, q, n,
        [&](std::int64_t i, int c) {
          return s.cache[static_cast<std::size_t>(st.key_index(kv, token(i), c))];
        },
        [&](std::int64_t i, int c) {
          return s.cache[static_cast<std::size_t>(st.value_index(kv, token(i), c))];
        },
        out);
  }
};

}  // namespace fasa
