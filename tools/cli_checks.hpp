// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// CLI11 checks the tools share: every numeric flag of every tool takes one, so that a
// non-number, a negative, a zero where zero means nothing and an absurd size are each refused
// while the flags are parsed, in one line that CLI11 starts with the flag's name
// ("--prefill: must be a whole number in [1, 16777216], got 0"). A check sees each value of a
// list flag as typed, before CLI11 converts it, so it parses the text itself: "1e3", "4k", "0x10"
// and a number too large for its type are named rather than converted into something else.

#include <CLI/CLI.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>

namespace fasa::tools {

// Largest token count any flag takes (context lengths, prefill, decode steps, budgets, sinks):
// 2^24 = 16.8M tokens, beyond every model fasa runs; a larger value is a typo.
inline constexpr long long max_tokens_flag = 1LL << 24;

namespace detail {

// "" when `v` is a whole number (into n), else why not.
inline std::string parse_whole(const std::string& v, long long& n) {
  const char* end = v.data() + v.size();
  const auto [at, ec] = std::from_chars(v.data(), end, n);
  if (ec == std::errc::result_out_of_range) return "'" + v + "' is far too large";
  if (ec != std::errc() || at != end) return "'" + v + "' is not a whole number";
  return {};
}

inline std::string text(double x) {
  std::ostringstream os;
  os.precision(12);
  os << x;
  return os.str();
}

inline bool parse_real(const std::string& v, double& x) {
  const char* end = v.data() + v.size();
  const auto [at, ec] = std::from_chars(v.data(), end, x);
  return ec == std::errc() && at == end && std::isfinite(x);
}

}  // namespace detail

// A whole number of at least `min`: else `rule` + ", got VALUE". `name`: the placeholder --help
// shows.
inline CLI::Validator whole_at_least(long long min, const std::string& rule,
                                     const std::string& name) {
  return CLI::Validator(
      [min, rule](std::string& v) {
        long long n = 0;
        if (std::string why = detail::parse_whole(v, n); !why.empty()) return why;
        return n >= min ? std::string() : rule + ", got " + v;
      },
      name);
}

// A whole number in [lo, hi].
inline CLI::Validator whole_in(long long lo, long long hi) {
  const std::string range = "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  return CLI::Validator(
      [lo, hi, range](std::string& v) {
        long long n = 0;
        if (std::string why = detail::parse_whole(v, n); !why.empty()) return why;
        if (n < lo || n > hi) return "must be a whole number in " + range + ", got " + v;
        return std::string();
      },
      "INT in " + range);
}

// A token count: a whole number in [min, max_tokens_flag].
inline CLI::Validator tokens_at_least(long long min) { return whole_in(min, max_tokens_flag); }

// A finite number in [lo, hi], or in (lo, hi] where `open_low`.
inline CLI::Validator real_in(double lo, double hi, bool open_low = false) {
  const std::string range =
      std::string(open_low ? "(" : "[") + detail::text(lo) + ", " + detail::text(hi) + "]";
  return CLI::Validator(
      [lo, hi, open_low, range](std::string& v) {
        double x = 0;
        if (!detail::parse_real(v, x)) return "'" + v + "' is not a finite number";
        if (x < lo || x > hi || (open_low && x == lo))
          return "must be a number in " + range + ", got " + v;
        return std::string();
      },
      "NUMBER in " + range);
}

// A token budget N_fac: a whole number of tokens in [1, max_tokens_flag], or a fraction of the
// context in (0, 1). 1.5 tokens is neither (it was truncated to 1 before).
inline CLI::Validator budget_check() {
  return CLI::Validator(
      [](std::string& v) {
        double x = 0;
        if (!detail::parse_real(v, x)) return "'" + v + "' is not a number";
        if (x > 0 && x < 1) return std::string();
        if (x >= 1 && x <= static_cast<double>(max_tokens_flag) && x == std::floor(x))
          return std::string();
        return "a budget is a whole number of tokens in [1, " + std::to_string(max_tokens_flag) +
               "] or a fraction of the context in (0, 1), got " + v;
      },
      "BUDGET");
}

// A seed: any whole number in [0, 2^64).
inline CLI::Validator seed_check() {
  return CLI::Validator(
      [](std::string& v) {
        std::uint64_t n = 0;
        const char* end = v.data() + v.size();
        const auto [at, ec] = std::from_chars(v.data(), end, n);
        if (ec != std::errc() || at != end) return "'" + v + "' is not a whole number >= 0";
        return std::string();
      },
      "SEED");
}

}  // namespace fasa::tools
