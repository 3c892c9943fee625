// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Token budgets (N_fac): an absolute count or a fraction of the current length (FASA Sec. 4.1;
// the official code reads a budget below 1 as a fraction).

#include <cmath>
#include <cstdint>

#include "fasa/config.hpp"
#include "fasa/core/error.hpp"

namespace fasa {

class token_budget {
 public:
  // Keeps at most n tokens per selection unit; n >= 1.
  static token_budget tokens(std::int64_t n) {
    FASA_CHECK(n >= 1, "token budget must be at least 1 token, got ", n);
    return token_budget(n, 0.0);
  }
  // Keeps ceil(f * t) tokens of t (at least one); 0 < f <= 1.
  static token_budget fraction(double f) {
    FASA_CHECK(f > 0.0 && f <= 1.0 && std::isfinite(f),
               "fractional token budget must lie in (0, 1], got ", f);
    return token_budget(0, f);
  }
  // Everything: the budget of dense attention.
  static constexpr token_budget all() { return token_budget(-1, 0.0); }

  // How many of t cached tokens to keep; returns t when the budget covers the whole cache.
  FASA_HOST_DEVICE constexpr std::int64_t keep(std::int64_t t) const {
    if (tokens_ < 0) return t;
    std::int64_t k = tokens_;
    if (tokens_ == 0) {
      const double want = fraction_ * static_cast<double>(t);
      k = static_cast<std::int64_t>(want);
      if (static_cast<double>(k) < want) ++k;  // ceil without <cmath> on the device
      if (k < 1) k = 1;
    }
    return k < t ? k : t;
  }
  constexpr bool is_fraction() const { return tokens_ == 0; }
  constexpr bool is_all() const { return tokens_ < 0; }
  constexpr std::int64_t count() const { return tokens_; }
  constexpr double fraction_value() const { return fraction_; }

 private:
  constexpr token_budget(std::int64_t n, double f) : tokens_(n), fraction_(f) {}
  std::int64_t tokens_;  // > 0 absolute, 0 fractional, < 0 all
  double fraction_;
};

// Tokens forced into every selection, off by default because the paper forces none (FASA.md
// Sec. 3). Forced tokens take budget slots, in the order: current token, sinks, recent window.
struct forced_tokens {
  int sinks = 0;         // the first `sinks` tokens of the sequence
  int recent = 0;        // the last `recent` tokens (the current one included)
  bool current = false;  // the token being decoded

  FASA_HOST_DEVICE constexpr bool any() const { return sinks > 0 || recent > 0 || current; }
  void validate() const {
    FASA_CHECK(sinks >= 0 && recent >= 0, "forced token counts must be >= 0, got sinks=", sinks,
               " recent=", recent);
  }
};

}  // namespace fasa
