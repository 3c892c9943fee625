// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Shapes and small trivially-copyable vocabulary types shared by every policy and backend.

#include <cstdint>

#include "fasa/config.hpp"
#include "fasa/core/error.hpp"

namespace fasa {

// The two dimensions of one frequency chunk (FC): one 2-D RoPE rotation pair (FASA Sec. 3.1).
struct dim_pair {
  int first;
  int second;
  friend constexpr bool operator==(dim_pair, dim_pair) = default;
};

// A non-owning list of int32 indices (dims, FCs or tokens). Trivially copyable, so it travels
// into kernels by value; the owner keeps the storage alive.
struct index_span {
  const std::int32_t* data = nullptr;
  int size = 0;
  FASA_HOST_DEVICE constexpr std::int32_t operator[](int i) const { return data[i]; }
  FASA_HOST_DEVICE constexpr const std::int32_t* begin() const { return data; }
  FASA_HOST_DEVICE constexpr const std::int32_t* end() const { return data + size; }
};

// One attention layer of one sequence: query heads share KV heads in groups (GQA).
struct attention_shape {
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  std::int64_t capacity = 0;  // the most tokens the cache will hold

  FASA_HOST_DEVICE constexpr int group_size() const { return num_q_heads / num_kv_heads; }
  FASA_HOST_DEVICE constexpr int kv_head_of(int q_head) const { return q_head / group_size(); }

  void validate() const {
    FASA_CHECK(num_q_heads > 0 && num_kv_heads > 0 && head_dim > 0 && capacity > 0,
               "attention_shape needs positive sizes, got num_q_heads=", num_q_heads,
               " num_kv_heads=", num_kv_heads, " head_dim=", head_dim, " capacity=", capacity);
    FASA_CHECK(num_q_heads % num_kv_heads == 0, "num_q_heads (", num_q_heads,
               ") must be a multiple of num_kv_heads (", num_kv_heads, ") for GQA");
  }
  friend constexpr bool operator==(const attention_shape&, const attention_shape&) = default;
};

// Which heads own a token selection under GQA.
//  - query_head: the paper's mode. Each query head has its own dominant FCs and its own tokens;
//    a KV row chosen by several heads of a group is read once per head.
//  - kv_head: one dominant set per KV head; the group's queries are summed before scoring, so
//    TIP is one dot product per token and one top-k per KV head, and each selected row is read
//    once for the whole group. See docs/architecture.md for the trade-off.
enum class selection_granularity : std::uint8_t { query_head, kv_head };

constexpr const char* to_string(selection_granularity g) {
  return g == selection_granularity::query_head ? "query_head" : "kv_head";
}

// Number of selection units of a shape under a granularity.
FASA_HOST_DEVICE constexpr int num_selection_units(const attention_shape& s,
                                                   selection_granularity g) {
  return g == selection_granularity::query_head ? s.num_q_heads : s.num_kv_heads;
}

}  // namespace fasa
