// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// backend::cpu_offload: FASA-M's traffic model on the CPU. A layout's near tier (for
// storage::split_offload the dominant-dim key slab: what stays on the GPU) and its far tier (the
// other key dims and all values: what lives in host memory) are two buffers here. A decode step:
//   1. select: the selector scores from the near tier (TIP on split_offload reads nothing else;
//      a selector that needs far dims reads them and each read is counted);
//   2. fetch: each unit's kept rows have their far elements copied into a staging buffer, the
//      full rows rebuilt there (every copied element counted: the bus traffic). With the tag's
//      row_pool (the CUDA backend's scheme, kernels/offload.cuh), each KV head holds a pool of
//      P = (units per KV head) x (tokens a unit keeps) rows (the most kept so far; the GPU sizes
//      it once, for the capacity's budget): the union of its units' kept tokens
//      is looked up there, only the tokens it lacks cross (each once), and the m-th of them
//      takes the m-th slot (in slot order) no kept token holds;
//   3. attend: exact attention over the staged rows, with the reference backend's arithmetic
//      (cpu::attend_rows), so outputs equal the reference's on the same layout bit for bit.
// Dense attention (a budget that covers the cache, prefill) stages every row once per call.
// A layout without tiers is all near: nothing crosses.

#include <algorithm>
#include <cstdint>
#include <vector>

#include "fasa/backends/cpu/host_common.hpp"
#include "fasa/compose/selection.hpp"
#include "fasa/core/topk.hpp"
#include "fasa/policies/backend/tags.hpp"
#include "fasa/policies/concepts.hpp"
#include "fasa/policies/storage/split_offload.hpp"

namespace fasa {

namespace cpu {

// What crossed between the tiers, in elements (a GPU backend's bytes are these times the
// element size).
struct offload_traffic {
  std::int64_t fetches = 0;               // calls that copied far rows (decode steps, prefills)
  std::int64_t last_rows = 0;             // rows copied by the last call, over all its units
  std::int64_t last_elements = 0;         // far elements copied by the last call
  std::int64_t total_elements = 0;        // far elements copied since init
  std::int64_t scoring_far_elements = 0;  // far elements selectors read to score, since init
  std::int64_t written_far_elements = 0;  // far elements appended (tokens written to the host)
};

struct offload_state {
  std::vector<float> near, far;       // the two tiers of the layout's buffer
  std::vector<float> key, value;      // staged rows of one unit: [rows, head_dim], natural dims
  std::vector<float> scores;          // [t]
  std::vector<std::int32_t> scratch;  // [t]
  // The row pool (backend::cpu_offload::row_pool): per KV head, the token each slot holds (-1:
  // none). Its rows are the far tier's, unchanged since fetched (append empties a rewritten
  // token's slot), so only the token ids are kept.
  std::vector<std::vector<std::int32_t>> pool;
  offload_traffic traffic;
};

// Element `index` of the layout's buffer, from whichever tier holds it; far reads add to
// `*far_reads`.
struct tier_view {
  const offload_state* s;
  std::int64_t near_count;
  std::int64_t* far_reads;
  float operator()(std::int64_t index) const {
    if (index < near_count) return s->near[static_cast<std::size_t>(index)];
    ++*far_reads;
    return s->far[static_cast<std::size_t>(index - near_count)];
  }
};

template <KVStorage St>
struct tier_key_reader {
  const St* st;
  tier_view tiers;
  int kv_head;
  float operator()(std::int64_t token, int dim) const {
    return tiers(st->key_index(kv_head, token, dim));
  }
};

}  // namespace cpu

template <>
struct backend_impl<backend::cpu_offload> {
  using is_implemented = void;
  using state = cpu::offload_state;
  using tag = backend::cpu_offload;

  template <KVStorage St>
  static void init(const tag&, const St& st, state& s) {
    const std::int64_t near = storage::near_elements(st);
    s = state{};
    s.near.assign(static_cast<std::size_t>(near), 0.0f);
    s.far.assign(static_cast<std::size_t>(st.buffer_elements() - near), 0.0f);
  }

  template <KVStorage St>
  static void append(const tag&, const St& st, state& s, std::int64_t pos, const float* k_rot,
                     const float* v) {
    const std::int64_t near = storage::near_elements(st);
    const int d = st.head_dim();
    const auto put = [&](std::int64_t index, float x) {
      if (index < near) {
        s.near[static_cast<std::size_t>(index)] = x;
      } else {
        s.far[static_cast<std::size_t>(index - near)] = x;
        ++s.traffic.written_far_elements;
      }
    };
    for (int h = 0; h < st.num_kv_heads(); ++h)
      for (int i = 0; i < d; ++i) {
        put(st.key_index(h, pos, i), k_rot[h * d + i]);
        put(st.value_index(h, pos, i), v[h * d + i]);
      }
    for (auto& slots : s.pool) std::replace(slots.begin(), slots.end(), std::int32_t(pos), -1);
  }

  // Step 1: the reference's selection, with the keys read by tier (far reads counted).
  template <TokenSelector Sel, KVStorage St>
  static void select(const tag&, const Sel& sel, const St& st, const attention_shape& shape,
                     state& s, const float* q_rot, std::int64_t t, selection& out) {
    const cpu::tier_view tiers{&s, storage::near_elements(st), &s.traffic.scoring_far_elements};
    cpu::select_by_scores(
        sel, shape, q_rot, t, s.scores, s.scratch,
        [&](int kv) {
          return cpu::tier_key_reader<St>{&st, tiers, kv};
        },
        out);
  }

  // Steps 2-3 for each unit: its rows staged (far elements counted), then attention over them
  // for each of the unit's query heads (every token when sel.all).
  template <KVStorage St>
  static void attend(const tag& be, const St& st, const attention_shape& shape, state& s,
                     const float* q_rot, std::int64_t t, const selection& sel, float* out) {
    begin_fetch(s);
    const int d = shape.head_dim;
    const bool per_query = !sel.all && sel.granularity == selection_granularity::query_head;
    const int units = per_query ? shape.num_q_heads : shape.num_kv_heads;
    const bool pooled = be.row_pool && !sel.all;
    if (pooled) fetch_misses(st, shape, s, sel, per_query);
    for (int u = 0; u < units; ++u) {
      const int kv = per_query ? shape.kv_head_of(u) : u;
      const std::int64_t n = sel.all ? t : sel.per_unit;
      // From the pool (already counted as it was filled), or straight over the bus.
      stage_rows(st, s, kv, n, !pooled, [&](std::int64_t i) -> std::int64_t {
        return sel.all ? i : sel.unit_tokens(u)[static_cast<std::size_t>(i)];
      });
      const int first = per_query ? u : u * shape.group_size();
      const int count = per_query ? 1 : shape.group_size();
      for (int h = first; h < first + count; ++h)
        attend_staged(s, d, n, q_rot + h * d, out + h * d);
    }
  }

  // Dense causal attention of `count` new tokens: each KV head's rows 0 .. start+count-1 staged
  // once for the call.
  template <KVStorage St>
  static void prefill(const tag&, const St& st, const attention_shape& shape, state& s,
                      const float* q_rot, std::int64_t start, std::int64_t count, float* out) {
    begin_fetch(s);
    const int d = shape.head_dim;
    const std::int64_t row = static_cast<std::int64_t>(shape.num_q_heads) * d;
    for (int kv = 0; kv < shape.num_kv_heads; ++kv) {
      stage_rows(st, s, kv, start + count, true, [](std::int64_t i) { return i; });
      for (std::int64_t i = 0; i < count; ++i)
        for (int h = kv * shape.group_size(); h < (kv + 1) * shape.group_size(); ++h)
          attend_staged(s, d, start + i + 1, q_rot + i * row + h * d, out + i * row + h * d);
    }
  }

 private:
  static void begin_fetch(state& s) {
    ++s.traffic.fetches;
    s.traffic.last_rows = 0;
    s.traffic.last_elements = 0;
  }

  // The row pool's step: for each KV head, the union of its units' kept tokens; those no slot
  // holds are the misses, whose far elements cross (counted), and each takes a slot no kept
  // token holds, in slot order.
  template <KVStorage St>
  static void fetch_misses(const St& st, const attention_shape& shape, state& s,
                           const selection& sel, bool per_query) {
    const int per_kv = per_query ? shape.group_size() : 1;
    const auto slots = static_cast<std::size_t>(per_kv * sel.per_unit);
    s.pool.resize(static_cast<std::size_t>(shape.num_kv_heads));
    const int d = st.head_dim();
    std::int64_t moved = 0;
    const cpu::tier_view tiers{&s, storage::near_elements(st), &moved};
    for (int kv = 0; kv < shape.num_kv_heads; ++kv) {
      std::vector<std::int32_t>& pool = s.pool[static_cast<std::size_t>(kv)];
      if (pool.size() < slots) pool.resize(slots, -1);  // a fraction's budget grows with t
      std::vector<std::int32_t> kept;
      for (int j = 0; j < per_kv; ++j) {
        const auto list = sel.unit_tokens(per_query ? kv * per_kv + j : kv);
        kept.insert(kept.end(), list.begin(), list.end());
      }
      std::sort(kept.begin(), kept.end());
      kept.erase(std::unique(kept.begin(), kept.end()), kept.end());
      std::vector<char> used(pool.size(), 0);
      std::vector<std::int32_t> held(pool.begin(), pool.end());
      std::sort(held.begin(), held.end());
      std::vector<std::int32_t> misses;
      for (std::int32_t tok : kept)
        if (!std::binary_search(held.begin(), held.end(), tok)) misses.push_back(tok);
      for (std::size_t slot = 0; slot < pool.size(); ++slot)
        used[slot] = pool[slot] >= 0 && std::binary_search(kept.begin(), kept.end(), pool[slot]);
      std::size_t m = 0;
      for (std::size_t slot = 0; slot < pool.size() && m < misses.size(); ++slot)
        if (!used[slot]) pool[slot] = misses[m++];
      for (std::int32_t tok : misses)  // what crosses: the row's far elements
        for (int c = 0; c < d; ++c) {
          (void)tiers(st.key_index(kv, tok, c));
          (void)tiers(st.value_index(kv, tok, c));
        }
      s.traffic.last_rows += static_cast<std::int64_t>(misses.size());
    }
    s.traffic.last_elements += moved;
    s.traffic.total_elements += moved;
  }

  // Rebuilds rows token(0) .. token(n-1) of KV head kv in the staging buffers, natural dim
  // order; their far elements are what crosses the bus when `counted`.
  template <KVStorage St, class TokenAt>
  static void stage_rows(const St& st, state& s, int kv, std::int64_t n, bool counted,
                         const TokenAt& token) {
    const int d = st.head_dim();
    std::int64_t moved = 0;
    const cpu::tier_view tiers{&s, storage::near_elements(st), &moved};
    s.key.resize(static_cast<std::size_t>(n * d));
    s.value.resize(static_cast<std::size_t>(n * d));
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t t = token(i);
      for (int c = 0; c < d; ++c) {
        s.key[static_cast<std::size_t>(i * d + c)] = tiers(st.key_index(kv, t, c));
        s.value[static_cast<std::size_t>(i * d + c)] = tiers(st.value_index(kv, t, c));
      }
    }
    if (!counted) return;
    s.traffic.last_rows += n;
    s.traffic.last_elements += moved;
    s.traffic.total_elements += moved;
  }

  static void attend_staged(const state& s, int d, std::int64_t n, const float* q, float* out) {
    cpu::attend_rows(
        d, q, n, [&](std::int64_t i, int c) { return s.key[static_cast<std::size_t>(i * d + c)]; },
        [&](std::int64_t i, int c) { return s.value[static_cast<std::size_t>(i * d + c)]; }, out);
  }
};

}  // namespace fasa
