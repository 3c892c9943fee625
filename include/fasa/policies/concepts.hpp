// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// The four policy contracts of fasa, documented here and nowhere else.
//
// A policy is a small trivially-copyable value (runtime parameters, tables held as views) that
// opts in with `using policy_tag = <kind>_tag;`, so a type that merely has matching member names
// is not accepted by accident. SparseAttention<PosEnc, Selector, Storage, Backend> composes one
// of each at compile time (fasa/compose/sparse_attention.hpp).

#include <concepts>
#include <cstdint>
#include <type_traits>

#include "fasa/core/budget.hpp"
#include "fasa/core/shape.hpp"

namespace fasa {

struct positional_encoding_tag {};
struct token_selector_tag {};
struct kv_storage_tag {};
struct attention_backend_tag {};

template <class P, class Tag>
concept policy_of_kind = std::is_trivially_copyable_v<P> && requires {
  typename P::policy_tag;
  requires std::same_as<typename P::policy_tag, Tag>;
};

// ---------------------------------------------------------------------------------------------
// PositionalEncoding: rotates q/k head vectors by position and owns the map from frequency
// chunk (FC) to the two dims it occupies.
//   head_dim()      dims per head
//   num_fcs()       FCs per head (head_dim / 2)
//   fc_dims(i)      the dim pair of FC i; the pairs of all FCs partition [0, head_dim)
//   rotate(x, pos)  x: [head_dim], rotated in place for absolute position pos
template <class P>
concept PositionalEncoding = policy_of_kind<P, positional_encoding_tag> &&
    requires(const P& p, float* x, std::int64_t pos, int fc) {
  { p.head_dim() } -> std::same_as<int>;
  { p.num_fcs() } -> std::same_as<int>;
  { p.fc_dims(fc) } -> std::same_as<dim_pair>;
  { p.rotate(x, pos) } -> std::same_as<void>;
};

// ---------------------------------------------------------------------------------------------
// TokenSelector: decides which cached tokens each selection unit (a query head, or a KV head
// with its group) attends to at a decode step.
//
// What a selector sees of one unit when it scores tokens.
struct unit_queries {
  const float* q = nullptr;  // [count, head_dim]: the unit's post-RoPE queries
  int count = 0;             // 1 for query_head granularity, the group size for kv_head
  int head_dim = 0;
  int unit = 0;     // index of the unit: a query head or a KV head
  int kv_head = 0;  // the KV head whose cache the unit reads
};

// How a selector scores, so that fast backends can run the same math as whole-matrix products.
// `score` below stays the definition: the reference backend calls it for every token, and the
// cross-backend tests check that each fast path agrees with it.
enum class score_kind : std::uint8_t {
  none,            // keeps every token; never scores (dense)
  dot_all_dims,    // sum over the unit's queries of q . k over all dims (oracle top-k)
  dot_dim_subset,  // the same over score_dims(unit) only (TIP)
  custom,          // anything else: backends call score() per token
};

// A stand-in key accessor used to check the contract: keys(token, dim) -> post-RoPE key value.
struct key_reader_archetype {
  float operator()(std::int64_t token, int dim) const;
};

//   granularity()        query_head or kv_head (see core/shape.hpp)
//   keep(t)              tokens to keep out of t cached; >= t means keep all
//   forced()             tokens forced in before ranking (taking budget slots)
//   score(uq, keys, j)   ranking score of token j (higher is kept first); raw, unscaled
//   kind                 static constexpr score_kind, see above
//   validate(shape)      throws fasa::error if the selector's tables do not fit the shape
template <class S>
concept TokenSelector = policy_of_kind<S, token_selector_tag> &&
    requires(const S& s, const unit_queries& uq, const key_reader_archetype& keys, std::int64_t t,
             const attention_shape& shape) {
  { S::kind } -> std::convertible_to<score_kind>;
  { s.granularity() } -> std::same_as<selection_granularity>;
  { s.keep(t) } -> std::same_as<std::int64_t>;
  { s.forced() } -> std::same_as<forced_tokens>;
  { s.score(uq, keys, t) } -> std::same_as<float>;
  s.validate(shape);
};

// A selector of kind dot_dim_subset also names the dims it scores on.
template <class S>
concept DimSubsetSelector = TokenSelector<S> &&
                            S::kind == score_kind::dot_dim_subset&& requires(const S& s, int unit) {
  { s.score_dims(unit) } -> std::same_as<index_span>;
};

// ---------------------------------------------------------------------------------------------
// KVStorage: the layout of the key/value cache of one layer. The backend owns the memory (one
// buffer of buffer_elements() values); the storage says where each element lives in it.
//   key_index(h, t, dim), value_index(h, t, dim)   element offsets; keys are post-RoPE
//   scoring_row_bytes(h, dims, elem)  bytes of one token's key that scoring on `dims` reads,
//                                     at cache-line granularity (what the layout forces)
template <class S>
concept KVStorage = policy_of_kind<S, kv_storage_tag> &&
    requires(const S& s, int h, std::int64_t t, int dim, index_span dims,
             const attention_shape& shape) {
  { s.num_kv_heads() } -> std::same_as<int>;
  { s.head_dim() } -> std::same_as<int>;
  { s.capacity() } -> std::same_as<std::int64_t>;
  { s.buffer_elements() } -> std::same_as<std::int64_t>;
  { s.key_index(h, t, dim) } -> std::same_as<std::int64_t>;
  { s.value_index(h, t, dim) } -> std::same_as<std::int64_t>;
  { s.scoring_row_bytes(h, dims, 4) } -> std::same_as<std::int64_t>;
  s.validate(shape);
};

// ---------------------------------------------------------------------------------------------
// AttentionBackend: a tag (with runtime knobs such as a thread count) naming where and how the
// loops run. Its implementation is fasa::backend_impl<Tag>, specialised in the backend's own
// header under fasa/backends/; SparseAttention refuses a tag whose implementation is not visible.
template <class B>
concept AttentionBackend = policy_of_kind<B, attention_backend_tag> && requires {
  { B::name } -> std::convertible_to<const char*>;
};

// The implementation of a backend; specialised by each backend header.
template <class Backend>
struct backend_impl;

template <class Backend>
concept ImplementedBackend = AttentionBackend<Backend> && requires {
  typename backend_impl<Backend>::is_implemented;
};

}  // namespace fasa
