// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// dense: every cached token, every step (full KV, "FKV" in the paper). The baseline.

#include <cstdint>

#include "fasa/policies/concepts.hpp"

namespace fasa::selector {

struct dense {
  using policy_tag = token_selector_tag;
  static constexpr score_kind kind = score_kind::none;

  FASA_HOST_DEVICE selection_granularity granularity() const {
    return selection_granularity::kv_head;
  }
  FASA_HOST_DEVICE std::int64_t keep(std::int64_t t) const { return t; }
  FASA_HOST_DEVICE forced_tokens forced() const { return {}; }
  template <class Keys>
  FASA_HOST_DEVICE float score(const unit_queries&, const Keys&, std::int64_t) const {
    return 0.0f;
  }
  void validate(const attention_shape& shape) const { shape.validate(); }
};

static_assert(TokenSelector<dense>);

}  // namespace fasa::selector
