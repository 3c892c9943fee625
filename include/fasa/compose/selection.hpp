// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// The result of one selection step and the per-step accounting of bytes read.

#include <cstdint>
#include <span>
#include <vector>

#include "fasa/core/shape.hpp"

namespace fasa {

// Which tokens each selection unit attends to at one decode step.
struct selection {
  bool all = true;  // every cached token (dense, or a budget covering the cache)
  selection_granularity granularity = selection_granularity::kv_head;
  int units = 0;
  std::int64_t per_unit = 0;         // tokens per unit when !all
  std::vector<std::int32_t> tokens;  // [units, per_unit], each row ascending

  std::span<const std::int32_t> unit_tokens(int u) const {
    return {tokens.data() + static_cast<std::size_t>(u) * static_cast<std::size_t>(per_unit),
            static_cast<std::size_t>(per_unit)};
  }
  std::span<std::int32_t> unit_tokens(int u) {
    return {tokens.data() + static_cast<std::size_t>(u) * static_cast<std::size_t>(per_unit),
            static_cast<std::size_t>(per_unit)};
  }
};

// What one decode step read, counted from the algorithm (not measured): keys read to rank the
// tokens and K/V rows read by attention. A row shared by a group is counted once per unit that
// reads it, as a per-unit gather does.
struct step_stats {
  std::int64_t context = 0;       // tokens in the cache, the new one included
  std::int64_t kept = 0;          // tokens attended per selection unit
  std::int64_t score_bytes = 0;   // key bytes read by the selector
  std::int64_t attend_bytes = 0;  // K and V bytes read by attention
  std::int64_t dense_bytes = 0;   // K and V bytes dense attention reads at this length

  std::int64_t bytes_read() const { return score_bytes + attend_bytes; }
  double fraction_of_dense() const {
    return dense_bytes == 0 ? 0.0 : static_cast<double>(bytes_read()) / dense_bytes;
  }
};

}  // namespace fasa
