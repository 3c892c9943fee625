// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the host backends share: the cache buffer in host memory, the append of one token, and
// a key reader that any KVStorage layout serves.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "fasa/compose/selection.hpp"
#include "fasa/config.hpp"
#include "fasa/core/topk.hpp"
#include "fasa/policies/concepts.hpp"

namespace fasa::cpu {

struct host_state {
  std::vector<float> cache;           // storage.buffer_elements() values
  std::vector<float> scores;          // [t] scratch for one unit's scores
  std::vector<std::int32_t> scratch;  // [t] scratch for top-k
};

template <KVStorage St>
void host_init(const St& st, host_state& s) {
  s.cache.assign(static_cast<std::size_t>(st.buffer_elements()), 0.0f);
}

// Writes token `pos`: k_rot, v: [num_kv_heads, head_dim] (keys already rotated).
template <KVStorage St>
void host_append(const St& st, host_state& s, std::int64_t pos, const float* k_rot,
                 const float* v) {
  const int d = st.head_dim();
  for (int h = 0; h < st.num_kv_heads(); ++h)
    for (int i = 0; i < d; ++i) {
      s.cache[static_cast<std::size_t>(st.key_index(h, pos, i))] = k_rot[h * d + i];
      s.cache[static_cast<std::size_t>(st.value_index(h, pos, i))] = v[h * d + i];
    }
}

// keys(token, dim) of one KV head, through the storage's layout. Host memory only; marked
// host-device because the selectors' score() it is passed to is (so a reference backend
// instantiated in a .cu file compiles under nvcc's warnings-as-errors).
template <KVStorage St>
struct host_key_reader {
  const St* st;
  const float* cache;
  int kv_head;
  FASA_HOST_DEVICE float operator()(std::int64_t token, int dim) const {
    return cache[st->key_index(kv_head, token, dim)];
  }
};

// Exact attention of one query head over n rows, sums in double (the reference's arithmetic,
// shared by every host backend that must reproduce it bit for bit):
//   o = softmax(q K^T / sqrt(d)) V,  key(i, c), value(i, c): element c of row i (natural dims).
template <class Key, class Value>
void attend_rows(int d, const float* q, std::int64_t n, const Key& key, const Value& value,
                 float* out) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<double> logits(static_cast<std::size_t>(n));
  // Step 1: logits l_i = (q . k_i) / sqrt(d).
  double max_logit = -INFINITY;
  for (std::int64_t i = 0; i < n; ++i) {
    double dot = 0.0;
    for (int c = 0; c < d; ++c) dot += static_cast<double>(q[c]) * key(i, c);
    logits[static_cast<std::size_t>(i)] = dot * scale;
    max_logit = std::max(max_logit, logits[static_cast<std::size_t>(i)]);
  }
  // Step 2: softmax, shifted by the max logit so exp() cannot overflow.
  double denom = 0.0;
  for (auto& l : logits) denom += (l = std::exp(l - max_logit));
  // Step 3: o = sum_i p_i v_i with p_i = exp(l_i - max) / denom.
  for (int c = 0; c < d; ++c) {
    double acc = 0.0;
    for (std::int64_t i = 0; i < n; ++i) acc += logits[static_cast<std::size_t>(i)] * value(i, c);
    out[c] = static_cast<float>(acc / denom);
  }
}

// The queries a selection unit scores with. q_rot: [num_q_heads, head_dim].
inline unit_queries make_unit_queries(const attention_shape& shape, selection_granularity g,
                                      const float* q_rot, int unit) {
  unit_queries uq;
  uq.head_dim = shape.head_dim;
  uq.unit = unit;
  if (g == selection_granularity::query_head) {
    uq.q = q_rot + static_cast<std::int64_t>(unit) * shape.head_dim;
    uq.count = 1;
    uq.kv_head = shape.kv_head_of(unit);
  } else {
    uq.q = q_rot + static_cast<std::int64_t>(unit) * shape.group_size() * shape.head_dim;
    uq.count = shape.group_size();
    uq.kv_head = unit;
  }
  return uq;
}

// The reference's selection (FASA Eq. 6-7 for TIP, any selector alike), shared by the host
// backends that must select exactly as it does: per unit, step 1 scores every cached token with
// the selector's own score() over the keys reader_of(kv_head) reads, step 2 keeps TopK-I
// (forced tokens first, then the highest scores). q_rot: [num_q_heads, head_dim].
template <TokenSelector Sel, class ReaderOf>
void select_by_scores(const Sel& sel, const attention_shape& shape, const float* q_rot,
                      std::int64_t t, std::vector<float>& scores,
                      std::vector<std::int32_t>& scratch, const ReaderOf& reader_of,
                      selection& out) {
  const selection_granularity g = sel.granularity();
  out.all = false;
  out.granularity = g;
  out.units = num_selection_units(shape, g);
  out.per_unit = sel.keep(t);
  out.tokens.resize(static_cast<std::size_t>(out.units * out.per_unit));
  scores.resize(static_cast<std::size_t>(t));
  std::vector<std::int32_t> chosen;
  for (int u = 0; u < out.units; ++u) {
    const unit_queries uq = make_unit_queries(shape, g, q_rot, u);
    const auto keys = reader_of(uq.kv_head);
    // Step 1: one ranking score per cached token, S_j = sel.score(q, k_j).
    for (std::int64_t j = 0; j < t; ++j)
      scores[static_cast<std::size_t>(j)] = sel.score(uq, keys, j);
    // Step 2: TopK-I(S, keep): forced tokens first, then the highest scores.
    select_top_k(scores, out.per_unit, sel.forced(), chosen, scratch);
    std::copy(chosen.begin(), chosen.end(), out.unit_tokens(u).begin());
  }
}

}  // namespace fasa::cpu
