// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// contiguous: post-RoPE keys and values, one [capacity, head_dim] block per KV head.
// Buffer: keys [num_kv_heads, capacity, head_dim], then values [num_kv_heads, capacity, head_dim].

#include <cstdint>

#include "fasa/core/error.hpp"
#include "fasa/policies/concepts.hpp"

namespace fasa::storage {

struct contiguous {
  using policy_tag = kv_storage_tag;

  int kv_heads = 0;
  int dim = 0;
  std::int64_t cap = 0;

  static contiguous for_shape(const attention_shape& s) {
    s.validate();
    return {s.num_kv_heads, s.head_dim, s.capacity};
  }

  FASA_HOST_DEVICE int num_kv_heads() const { return kv_heads; }
  FASA_HOST_DEVICE int head_dim() const { return dim; }
  FASA_HOST_DEVICE std::int64_t capacity() const { return cap; }
  FASA_HOST_DEVICE std::int64_t buffer_elements() const { return 2 * kv_heads * cap * dim; }

  // Offset of row t of KV head h in the key block; the value block follows the keys.
  FASA_HOST_DEVICE std::int64_t key_row(int h, std::int64_t t) const {
    return (static_cast<std::int64_t>(h) * cap + t) * dim;
  }
  FASA_HOST_DEVICE std::int64_t value_row(int h, std::int64_t t) const {
    return static_cast<std::int64_t>(kv_heads) * cap * dim + key_row(h, t);
  }
  FASA_HOST_DEVICE std::int64_t key_index(int h, std::int64_t t, int d) const {
    return key_row(h, t) + d;
  }
  FASA_HOST_DEVICE std::int64_t value_index(int h, std::int64_t t, int d) const {
    return value_row(h, t) + d;
  }
  // Scoring on any subset of dims touches the whole row's cache lines here.
  FASA_HOST_DEVICE std::int64_t scoring_row_bytes(int, index_span, int elem_bytes) const {
    return static_cast<std::int64_t>(dim) * elem_bytes;
  }
  void validate(const attention_shape& s) const {
    FASA_CHECK(kv_heads == s.num_kv_heads && dim == s.head_dim && cap == s.capacity,
               "contiguous storage was made for kv_heads=", kv_heads, " head_dim=", dim,
               " capacity=", cap, " but the attention shape has kv_heads=", s.num_kv_heads,
               " head_dim=", s.head_dim, " capacity=", s.capacity);
  }
};

static_assert(KVStorage<contiguous>);

}  // namespace fasa::storage
