// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// dominant_plan: turns the dominant FCs of one layer (from calibration, FASA Alg. 1) into the
// tables that fasa_tip and split_dominant view. It owns those tables: keep the plan alive as
// long as any selector or storage made from it.
//
// For each selection unit u the selector gets the dims of u's FCs, [units, 2*N_tip]. For each
// KV head h the storage's slab holds the union of the dims of the units that read h: under
// kv_head granularity exactly h's 2*N_tip dims; under query_head granularity the union over the
// group, which is wider when the group's heads disagree (the memory/bandwidth price of the
// paper's per-query-head mode; see docs/architecture.md). All slabs get the widest union's
// width, short ones padded with their lowest remaining dims. `slab_multiple` rounds that width
// up to a multiple (capped at head_dim): the CUDA backend asks for 8 so that a slab row splits
// into whole 16-byte vectors of bf16/fp16 and no vector straddles the slab and the rest.

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "fasa/core/error.hpp"
#include "fasa/policies/concepts.hpp"
#include "fasa/policies/selector/fasa_tip.hpp"
#include "fasa/policies/storage/split_dominant.hpp"
#include "fasa/policies/storage/split_offload.hpp"

namespace fasa {

class dominant_plan {
 public:
  // fcs: one list of N_tip distinct FC indices per selection unit (units = query heads or KV
  // heads according to `granularity`).
  template <PositionalEncoding PE>
  dominant_plan(const PE& pe, const attention_shape& shape, selection_granularity granularity,
                const std::vector<std::vector<int>>& fcs, int slab_multiple = 1)
      : shape_(shape), granularity_(granularity) {
    shape.validate();
    FASA_CHECK(slab_multiple >= 1, "dominant_plan: slab_multiple must be >= 1, got ",
               slab_multiple);
    FASA_CHECK(pe.head_dim() == shape.head_dim, "dominant_plan: positional encoding head_dim (",
               pe.head_dim(), ") differs from the attention shape's (", shape.head_dim, ")");
    const int units = num_selection_units(shape, granularity);
    FASA_CHECK(static_cast<int>(fcs.size()) == units, "dominant_plan: got ", fcs.size(),
               " dominant FC sets but ", to_string(granularity), " granularity has ", units,
               " units");
    n_tip_ = fcs.empty() ? 0 : static_cast<int>(fcs[0].size());
    FASA_CHECK(n_tip_ >= 1 && n_tip_ <= pe.num_fcs(), "dominant_plan: N_tip (", n_tip_,
               ") must be between 1 and head_dim/2 (", pe.num_fcs(), ")");
    dims_.reserve(static_cast<std::size_t>(units) * 2 * n_tip_);
    for (int u = 0; u < units; ++u) {
      const auto& set = fcs[static_cast<std::size_t>(u)];
      FASA_CHECK(static_cast<int>(set.size()) == n_tip_, "dominant_plan: unit ", u, " has ",
                 set.size(), " dominant FCs but unit 0 has ", n_tip_,
                 " (N_tip is the same for every head)");
      std::vector<bool> seen(static_cast<std::size_t>(pe.num_fcs()), false);
      for (int fc : set) {
        FASA_CHECK(fc >= 0 && fc < pe.num_fcs(), "dominant_plan: unit ", u, " names FC ", fc,
                   " outside [0, ", pe.num_fcs(), ")");
        FASA_CHECK(!seen[static_cast<std::size_t>(fc)], "dominant_plan: unit ", u, " names FC ", fc,
                   " twice");
        seen[static_cast<std::size_t>(fc)] = true;
        const dim_pair d = pe.fc_dims(fc);
        dims_.push_back(d.first);
        dims_.push_back(d.second);
      }
    }
    build_storage_tables(slab_multiple);
  }

  // Every FC dominant for every unit: TIP then ranks by the full logits.
  template <PositionalEncoding PE>
  static dominant_plan all_fcs(const PE& pe, const attention_shape& shape,
                               selection_granularity granularity) {
    std::vector<int> every(static_cast<std::size_t>(pe.num_fcs()));
    std::iota(every.begin(), every.end(), 0);
    return dominant_plan(
        pe, shape, granularity,
        std::vector<std::vector<int>>(
            static_cast<std::size_t>(num_selection_units(shape, granularity)), every));
  }

  selector::fasa_tip tip(token_budget budget, forced_tokens force = {}) const {
    selector::fasa_tip s;
    s.dims = dims_.data();
    s.num_units = num_selection_units(shape_, granularity_);
    s.n_tip = n_tip_;
    s.budget = budget;
    s.mode = granularity_;
    s.force = force;
    return s;
  }

  storage::split_dominant storage() const {
    storage::split_dominant s;
    s.kv_heads = shape_.num_kv_heads;
    s.dim = shape_.head_dim;
    s.cap = shape_.capacity;
    s.slab_width = slab_width_;
    s.perm = perm_.data();
    s.slot = slot_.data();
    return s;
  }

  // The same layout in two tiers for FASA-M: the slab near (on the GPU), the rest far (host).
  storage::split_offload offload_storage() const { return storage::split_offload::of(storage()); }

  const attention_shape& shape() const { return shape_; }
  selection_granularity granularity() const { return granularity_; }
  int n_tip() const { return n_tip_; }
  int slab_width() const { return slab_width_; }
  // dims of unit u's dominant FCs, in FC order: [2 * N_tip]
  std::span<const std::int32_t> unit_dims(int u) const {
    return {dims_.data() + static_cast<std::size_t>(u) * 2 * n_tip_,
            static_cast<std::size_t>(2 * n_tip_)};
  }

  // The tables own memory that selectors and storages point into: moving keeps the pointers
  // valid (vector buffers move), copying would not, so copies are not allowed.
  dominant_plan(dominant_plan&&) noexcept = default;
  dominant_plan& operator=(dominant_plan&&) noexcept = default;
  dominant_plan(const dominant_plan&) = delete;
  dominant_plan& operator=(const dominant_plan&) = delete;

 private:
  void build_storage_tables(int slab_multiple) {
    const int d = shape_.head_dim;
    const int kv = shape_.num_kv_heads;
    const int per_kv = granularity_ == selection_granularity::query_head ? shape_.group_size() : 1;
    std::vector<std::vector<bool>> in_slab(static_cast<std::size_t>(kv),
                                           std::vector<bool>(static_cast<std::size_t>(d), false));
    slab_width_ = 0;
    for (int h = 0; h < kv; ++h) {
      for (int u = h * per_kv; u < (h + 1) * per_kv; ++u)
        for (std::int32_t dim : unit_dims(u)) in_slab[h][static_cast<std::size_t>(dim)] = true;
      slab_width_ = std::max<int>(
          slab_width_, static_cast<int>(std::count(in_slab[h].begin(), in_slab[h].end(), true)));
    }
    slab_width_ = std::min(d, (slab_width_ + slab_multiple - 1) / slab_multiple * slab_multiple);
    perm_.assign(static_cast<std::size_t>(kv) * d, 0);
    slot_.assign(static_cast<std::size_t>(kv) * d, 0);
    for (int h = 0; h < kv; ++h) {
      auto& mark = in_slab[static_cast<std::size_t>(h)];
      // pad this head's slab to the common width with its lowest remaining dims
      int width = static_cast<int>(std::count(mark.begin(), mark.end(), true));
      for (int dim = 0; dim < d && width < slab_width_; ++dim)
        if (!mark[static_cast<std::size_t>(dim)])
          mark[static_cast<std::size_t>(dim)] = true, ++width;
      int j = 0;
      for (int pass = 0; pass < 2; ++pass)  // slab dims first, then the rest, each ascending
        for (int dim = 0; dim < d; ++dim)
          if (mark[static_cast<std::size_t>(dim)] == (pass == 0)) {
            perm_[static_cast<std::size_t>(h) * d + j] = dim;
            slot_[static_cast<std::size_t>(h) * d + dim] = j;
            ++j;
          }
    }
  }

  attention_shape shape_;
  selection_granularity granularity_;
  int n_tip_ = 0;
  int slab_width_ = 0;
  std::vector<std::int32_t> dims_;  // [units, 2 * n_tip]
  std::vector<std::int32_t> perm_;  // [kv_heads, head_dim]
  std::vector<std::int32_t> slot_;  // [kv_heads, head_dim]
};

}  // namespace fasa
