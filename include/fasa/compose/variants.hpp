// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// The canonical compositions. Each is an alias, not a class: a variant is its four policies.
//   dense<B>   every token, contiguous cache (the paper's FKV baseline)
//   oracle<B>  exact top-k of the full logits, contiguous cache (ranking upper bound)
//   fasa_c<B>  TIP over a dominant-dim slab, then exact attention over the kept rows (FASA-C)
//   fasa_m<B>  FASA-C's math on a two-tier cache: the slab near, the rest and the values far
//              (host memory), the kept rows fetched each step (FASA-M; backend::cpu_offload
//              counts the traffic, backend::cuda runs it on the GPU)

#include "fasa/compose/dominant_plan.hpp"
#include "fasa/compose/sparse_attention.hpp"
#include "fasa/policies/positional/rope.hpp"
#include "fasa/policies/selector/dense.hpp"
#include "fasa/policies/selector/fasa_tip.hpp"
#include "fasa/policies/selector/oracle_topk.hpp"
#include "fasa/policies/storage/contiguous.hpp"
#include "fasa/policies/storage/split_dominant.hpp"
#include "fasa/policies/storage/split_offload.hpp"

namespace fasa {

template <class Backend, class PE = positional::rope>
using dense = SparseAttention<PE, selector::dense, storage::contiguous, Backend>;

template <class Backend, class PE = positional::rope>
using oracle = SparseAttention<PE, selector::oracle_topk, storage::contiguous, Backend>;

template <class Backend, class PE = positional::rope>
using fasa_c = SparseAttention<PE, selector::fasa_tip, storage::split_dominant, Backend>;

template <class Backend, class PE = positional::rope>
using fasa_m = SparseAttention<PE, selector::fasa_tip, storage::split_offload, Backend>;

template <class Backend, class PE>
dense<Backend, PE> make_dense(const attention_shape& shape, const PE& pe, Backend be = {}) {
  return dense<Backend, PE>(shape, pe, selector::dense{}, storage::contiguous::for_shape(shape),
                            be);
}

template <class Backend, class PE>
oracle<Backend, PE> make_oracle(const attention_shape& shape, const PE& pe,
                                selector::oracle_topk sel, Backend be = {}) {
  return oracle<Backend, PE>(shape, pe, sel, storage::contiguous::for_shape(shape), be);
}

// The plan must outlive the returned object (its selector and storage view the plan's tables).
template <class Backend, class PE>
fasa_c<Backend, PE> make_fasa_c(const dominant_plan& plan, const PE& pe, token_budget budget,
                                forced_tokens force = {}, Backend be = {}) {
  return fasa_c<Backend, PE>(plan.shape(), pe, plan.tip(budget, force), plan.storage(), be);
}

// The plan must outlive the returned object, as for make_fasa_c.
template <class Backend, class PE>
fasa_m<Backend, PE> make_fasa_m(const dominant_plan& plan, const PE& pe, token_budget budget,
                                forced_tokens force = {}, Backend be = {}) {
  return fasa_m<Backend, PE>(plan.shape(), pe, plan.tip(budget, force), plan.offload_storage(), be);
}

}  // namespace fasa
