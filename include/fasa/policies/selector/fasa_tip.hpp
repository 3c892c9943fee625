// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// fasa_tip: FASA's Token Importance Predictor (FASA Sec. 4.1, Eq. 6-7). Every decode step it
// scores every cached token on the unit's dominant FCs only,
//     S_j = sum_{i in I_dom} q^[i] . k_j^[i]        (raw post-RoPE dot products of FC i's dims;
//                                                    no 1/sqrt(d), no softmax: ranking only)
// and keeps the top N_fac tokens. Nothing is evicted: the next step scores the whole cache again.
//
// The dominant dims of each unit come from calibration (fasa/calib) through a dominant_plan
// (fasa/compose/dominant_plan.hpp), which owns the table this selector views.

#include <cstdint>

#include "fasa/core/error.hpp"
#include "fasa/policies/concepts.hpp"

namespace fasa::selector {

struct fasa_tip {
  using policy_tag = token_selector_tag;
  static constexpr score_kind kind = score_kind::dot_dim_subset;

  // dims: [num_units, 2 * n_tip] int32: unit u's dominant FCs as dim pairs (first, second).
  const std::int32_t* dims = nullptr;
  int num_units = 0;
  int n_tip = 0;  // dominant FCs per unit
  token_budget budget = token_budget::tokens(256);
  selection_granularity mode = selection_granularity::query_head;
  forced_tokens force = {};

  FASA_HOST_DEVICE selection_granularity granularity() const { return mode; }
  FASA_HOST_DEVICE std::int64_t keep(std::int64_t t) const { return budget.keep(t); }
  FASA_HOST_DEVICE forced_tokens forced() const { return force; }
  FASA_HOST_DEVICE index_span score_dims(int unit) const {
    return {dims + static_cast<std::int64_t>(unit) * 2 * n_tip, 2 * n_tip};
  }

  // FASA Eq. 6: S_j = sum over the unit's queries g and dominant dims d of q_g[d] * k_j[d].
  // Under kv_head granularity this is (sum_g q_g) . k_j on the dominant dims.
  template <class Keys>
  FASA_HOST_DEVICE float score(const unit_queries& uq, const Keys& keys, std::int64_t j) const {
    const index_span ds = score_dims(uq.unit);
    float s = 0.0f;
    for (int g = 0; g < uq.count; ++g)
      for (int i = 0; i < ds.size; ++i) s += uq.q[g * uq.head_dim + ds[i]] * keys(j, ds[i]);
    return s;
  }

  void validate(const attention_shape& shape) const {
    shape.validate();
    force.validate();
    FASA_CHECK(n_tip >= 1 && 2 * n_tip <= shape.head_dim, "fasa_tip: N_tip (", n_tip,
               ") must be between 1 and head_dim/2 (", shape.head_dim / 2, ")");
    FASA_CHECK(dims != nullptr, "fasa_tip: no dominant-dim table (build one with dominant_plan)");
    const int units = num_selection_units(shape, mode);
    FASA_CHECK(num_units == units, "fasa_tip: the dominant-dim table has ", num_units,
               " units but ", to_string(mode), " granularity needs ", units);
    for (int u = 0; u < num_units; ++u)
      for (std::int32_t d : score_dims(u))
        FASA_CHECK(d >= 0 && d < shape.head_dim, "fasa_tip: unit ", u, " has dominant dim ", d,
                   " outside [0, ", shape.head_dim, ")");
  }
};

static_assert(DimSubsetSelector<fasa_tip>);

}  // namespace fasa::selector
