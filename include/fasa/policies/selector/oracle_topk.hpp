// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// oracle_topk: the exact top-k of the full attention logits at every step (the paper's
// "Oracle", a look-ahead upper bound for ranking). It reads every key in full, so it saves no
// bandwidth; it exists to measure how close a real selector comes to perfect ranking.

#include <cstdint>

#include "fasa/policies/concepts.hpp"

namespace fasa::selector {

struct oracle_topk {
  using policy_tag = token_selector_tag;
  static constexpr score_kind kind = score_kind::dot_all_dims;

  token_budget budget = token_budget::tokens(256);
  selection_granularity mode = selection_granularity::query_head;
  forced_tokens force = {};

  FASA_HOST_DEVICE selection_granularity granularity() const { return mode; }
  FASA_HOST_DEVICE std::int64_t keep(std::int64_t t) const { return budget.keep(t); }
  FASA_HOST_DEVICE forced_tokens forced() const { return force; }

  // Raw logit of token j summed over the unit's queries: sum_g q_g . k_j (no 1/sqrt(d): ranking
  // only). For a query-head unit this is exactly that head's attention logit times sqrt(d).
  template <class Keys>
  FASA_HOST_DEVICE float score(const unit_queries& uq, const Keys& keys, std::int64_t j) const {
    float s = 0.0f;
    for (int g = 0; g < uq.count; ++g)
      for (int d = 0; d < uq.head_dim; ++d) s += uq.q[g * uq.head_dim + d] * keys(j, d);
    return s;
  }
  void validate(const attention_shape& shape) const {
    shape.validate();
    force.validate();
  }
};

static_assert(TokenSelector<oracle_topk>);

}  // namespace fasa::selector
