// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// split_offload: the FASA-M layout (FASA Sec. 4.3, Alg. 2). The same element map as
// split_dominant, cut into two tiers:
//   near [0, near_elements()):              the dominant-dim key slab, [kv_heads, capacity,
//                                           slab_width]: what TIP streams every step; it stays
//                                           in fast memory (the GPU's);
//   far  [near_elements(), buffer_elements()): the other key dims [kv_heads, capacity,
//                                           head_dim - slab_width], then all values [kv_heads,
//                                           capacity, head_dim]: in slow, large memory (pinned
//                                           host memory), read only for the rows a step keeps,
//                                           which are copied over the bus just in time.
// A backend that knows tiers (backend::cpu_offload, the CUDA batch decoder) keeps them in two
// buffers; one that does not (the reference backend) sees one buffer laid out as split_dominant's,
// which is why FASA-M's answer equals FASA-C's: the placement changes, the arithmetic does not.

#include <cstdint>

#include "fasa/core/error.hpp"
#include "fasa/policies/concepts.hpp"
#include "fasa/policies/storage/split_dominant.hpp"

namespace fasa::storage {

struct split_offload : split_dominant {
  using policy_tag = kv_storage_tag;

  // The same tables and sizes as a split_dominant layout (a dominant_plan's storage()).
  static split_offload of(const split_dominant& s) {
    split_offload o;
    static_cast<split_dominant&>(o) = s;
    return o;
  }

  // Elements of the near tier (the slab) and of the far tier (the rest and the values).
  FASA_HOST_DEVICE std::int64_t near_elements() const {
    return static_cast<std::int64_t>(kv_heads) * cap * slab_width;
  }
  FASA_HOST_DEVICE std::int64_t far_elements() const { return buffer_elements() - near_elements(); }
  // Where a far element sits in the far tier's own buffer.
  FASA_HOST_DEVICE std::int64_t far_offset(std::int64_t index) const {
    return index - near_elements();
  }

  void validate(const attention_shape& s) const {
    split_dominant::validate(s);
    FASA_CHECK(slab_width < dim, "split_offload: the slab holds all ", dim,
               " key dims, so nothing but the values would leave the GPU; use split_dominant (or "
               "fewer dominant FCs)");
  }
};

static_assert(KVStorage<split_offload>);

// A layout in two tiers: near_elements() elements of fast memory first, the rest far.
template <class S>
concept TieredStorage = KVStorage<S> && requires(const S& s) {
  { s.near_elements() } -> std::same_as<std::int64_t>;
};

// Elements of a layout's near tier: all of them for a layout without tiers.
template <KVStorage S>
FASA_HOST_DEVICE std::int64_t near_elements(const S& s) {
  if constexpr (TieredStorage<S>)
    return s.near_elements();
  else
    return s.buffer_elements();
}

}  // namespace fasa::storage
