// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// split_dominant: the FASA-C key layout. Each KV head's dominant key dims live in one contiguous
// slab, [capacity, slab_width], so TIP streams only 2*N_tip/head_dim of the keys; the other key
// dims and the values live apart and are read only for the N_fac selected rows (FASA Sec. 4.3).
//
// Buffer: slab [kv_heads, capacity, slab_width], rest [kv_heads, capacity, head_dim - slab_width],
//         values [kv_heads, capacity, head_dim].
// perm: [kv_heads, head_dim] int32, a permutation of the dims per KV head; its first slab_width
//       entries are the slab's dims in slab order, the others the rest's.
// slot: [kv_heads, head_dim] int32, its inverse: slot[h][dim] = position of dim in perm[h].
// Every KV head has the same slab width (a dominant_plan pads short sets with the lowest
// remaining dims), which keeps the layout a plain strided array for kernels.

#include <cstdint>

#include "fasa/core/error.hpp"
#include "fasa/policies/concepts.hpp"

namespace fasa::storage {

struct split_dominant {
  using policy_tag = kv_storage_tag;

  int kv_heads = 0;
  int dim = 0;
  std::int64_t cap = 0;
  int slab_width = 0;
  const std::int32_t* perm = nullptr;  // [kv_heads, head_dim]
  const std::int32_t* slot = nullptr;  // [kv_heads, head_dim]

  FASA_HOST_DEVICE int num_kv_heads() const { return kv_heads; }
  FASA_HOST_DEVICE int head_dim() const { return dim; }
  FASA_HOST_DEVICE std::int64_t capacity() const { return cap; }
  FASA_HOST_DEVICE int rest_width() const { return dim - slab_width; }
  FASA_HOST_DEVICE std::int64_t buffer_elements() const { return 2 * kv_heads * cap * dim; }

  FASA_HOST_DEVICE std::int64_t slab_row(int h, std::int64_t t) const {
    return (static_cast<std::int64_t>(h) * cap + t) * slab_width;
  }
  FASA_HOST_DEVICE std::int64_t rest_row(int h, std::int64_t t) const {
    return static_cast<std::int64_t>(kv_heads) * cap * slab_width +
           (static_cast<std::int64_t>(h) * cap + t) * rest_width();
  }
  FASA_HOST_DEVICE std::int64_t value_row(int h, std::int64_t t) const {
    return static_cast<std::int64_t>(kv_heads) * cap * dim +
           (static_cast<std::int64_t>(h) * cap + t) * dim;
  }
  // Dim stored at position j of KV head h (j < slab_width: slab, else rest).
  FASA_HOST_DEVICE int dim_at(int h, int j) const { return perm[h * dim + j]; }
  // Position of dim d of KV head h in perm (< slab_width when d is in the slab).
  FASA_HOST_DEVICE int slot_of(int h, int d) const { return slot[h * dim + d]; }

  FASA_HOST_DEVICE std::int64_t key_index(int h, std::int64_t t, int d) const {
    const int j = slot_of(h, d);
    return j < slab_width ? slab_row(h, t) + j : rest_row(h, t) + (j - slab_width);
  }
  FASA_HOST_DEVICE std::int64_t value_index(int h, std::int64_t t, int d) const {
    return value_row(h, t) + d;
  }
  // Scoring on dims that all sit in the slab reads only the slab row; otherwise whole rows.
  FASA_HOST_DEVICE std::int64_t scoring_row_bytes(int h, index_span dims, int elem_bytes) const {
    for (std::int32_t d : dims)
      if (slot_of(h, d) >= slab_width) return static_cast<std::int64_t>(dim) * elem_bytes;
    return static_cast<std::int64_t>(slab_width) * elem_bytes;
  }

  void validate(const attention_shape& s) const {
    FASA_CHECK(kv_heads == s.num_kv_heads && dim == s.head_dim && cap == s.capacity,
               "split_dominant storage was made for kv_heads=", kv_heads, " head_dim=", dim,
               " capacity=", cap, " but the attention shape has kv_heads=", s.num_kv_heads,
               " head_dim=", s.head_dim, " capacity=", s.capacity);
    FASA_CHECK(perm != nullptr && slot != nullptr,
               "split_dominant storage has no dim tables (build them with dominant_plan)");
    FASA_CHECK(slab_width >= 1 && slab_width <= dim, "split_dominant slab width ", slab_width,
               " must be in [1, head_dim=", dim, "]");
    for (int h = 0; h < kv_heads; ++h)
      for (int j = 0; j < dim; ++j) {
        const int d = dim_at(h, j);
        FASA_CHECK(d >= 0 && d < dim && slot_of(h, d) == j, "split_dominant tables of KV head ", h,
                   " are not a permutation and its inverse (position ", j, ")");
      }
  }
};

static_assert(KVStorage<split_dominant>);

}  // namespace fasa::storage
