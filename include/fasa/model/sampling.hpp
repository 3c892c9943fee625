// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Choosing the next token from logits: greedy (temperature 0) or temperature with nucleus
// (top-p) sampling, seeded so runs repeat.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <span>
#include <vector>

#include "fasa/core/error.hpp"

namespace fasa::model {

// The index of the largest logit (the lowest index among equals).
inline std::int32_t argmax(std::span<const float> logits) {
  FASA_CHECK(!logits.empty(), "argmax of no logits");
  return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

class sampler {
 public:
  // temperature 0 means greedy; top_p in (0, 1] keeps the smallest set of tokens whose
  // probability reaches top_p.
  sampler(float temperature = 0.0f, float top_p = 1.0f, std::uint64_t seed = 0)
      : temperature_(temperature), top_p_(top_p), rng_(seed) {
    FASA_CHECK(temperature >= 0.0f && std::isfinite(temperature),
               "sampling temperature must be >= 0, got ", temperature);
    FASA_CHECK(top_p > 0.0f && top_p <= 1.0f, "top_p must lie in (0, 1], got ", top_p);
  }

  std::int32_t operator()(std::span<const float> logits) {
    if (temperature_ == 0.0f) return argmax(logits);
    // softmax(logits / T), shifted by the max for stability
    const float max = *std::max_element(logits.begin(), logits.end());
    probs_.resize(logits.size());
    double sum = 0;
    for (std::size_t i = 0; i < logits.size(); ++i)
      sum += probs_[i] = std::exp((logits[i] - max) / temperature_);
    order_.resize(logits.size());
    std::iota(order_.begin(), order_.end(), 0);
    std::sort(order_.begin(), order_.end(), [&](std::int32_t a, std::int32_t b) {
      return probs_[static_cast<std::size_t>(a)] > probs_[static_cast<std::size_t>(b)];
    });
    // the nucleus: the most likely tokens until their mass reaches top_p
    double mass = 0;
    std::size_t keep = 0;
    while (keep < order_.size() && mass < top_p_ * sum)
      mass += probs_[static_cast<std::size_t>(order_[keep++])];
    std::uniform_real_distribution<double> u(0.0, mass);
    double r = u(rng_);
    for (std::size_t i = 0; i < keep; ++i) {
      r -= probs_[static_cast<std::size_t>(order_[i])];
      if (r <= 0) return order_[i];
    }
    return order_[keep - 1];
  }

 private:
  float temperature_;
  float top_p_;
  std::mt19937_64 rng_;
  std::vector<double> probs_;
  std::vector<std::int32_t> order_;
};

}  // namespace fasa::model
