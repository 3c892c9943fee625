// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Test support shared by every test file: fixed-seed inputs, per-dtype tolerances, an
// element-wise closeness check that prints the first mismatches, and tie-aware comparison of
// token selections.

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <vector>

namespace fasa::test {

// |x - ref| <= atol + rtol * |ref| per element.
struct tolerance {
  double atol;
  double rtol;
};
// fp32 results computed in a different order than the double-accumulating reference.
inline constexpr tolerance fp32_tol{1e-5, 1e-4};
// bf16 storage (CUDA backend).
inline constexpr tolerance bf16_tol{1e-2, 1e-2};

inline std::vector<float> random_vector(std::size_t n, std::uint32_t seed, float scale = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

// max |x - ref| / max |ref| over the arrays; NaN anywhere gives +inf.
inline double relative_error(std::span<const float> x, std::span<const float> ref) {
  double num = 0.0, den = 0.0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    if (std::isnan(x[i]) || std::isnan(ref[i])) return INFINITY;
    num = std::max(num, std::abs(static_cast<double>(x[i]) - ref[i]));
    den = std::max(den, std::abs(static_cast<double>(ref[i])));
  }
  return den == 0.0 ? num : num / den;
}

// Checks every element against the tolerance; on failure reports the first mismatches and the
// relative error. NaN is always a mismatch.
inline void check_close(std::span<const float> x, std::span<const float> ref, tolerance tol,
                        const std::string& what = "") {
  REQUIRE(x.size() == ref.size());
  std::ostringstream first;
  std::size_t bad = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double diff = std::abs(static_cast<double>(x[i]) - ref[i]);
    const bool ok = !std::isnan(x[i]) && !std::isnan(ref[i]) &&
                    diff <= tol.atol + tol.rtol * std::abs(static_cast<double>(ref[i]));
    if (!ok && bad++ < 5) first << "  [" << i << "] got " << x[i] << " want " << ref[i] << '\n';
  }
  INFO(what, ": ", bad, " of ", ref.size(), " elements off; relative error ",
       relative_error(x, ref), "\n", first.str());
  CHECK(bad == 0);
}

// True when `got` is a valid top-k of `scores` allowing ties: it has k distinct indices, every
// index outside it scores no higher than the lowest score inside it.
inline bool is_valid_topk(std::span<const float> scores, std::span<const std::int32_t> got,
                          std::size_t k, std::string* why = nullptr) {
  std::set<std::int32_t> in(got.begin(), got.end());
  auto fail = [&](const std::string& m) {
    if (why) *why = m;
    return false;
  };
  if (got.size() != k || in.size() != k) return fail("wrong count or duplicates");
  float lowest_in = INFINITY;
  for (auto i : got) {
    if (i < 0 || static_cast<std::size_t>(i) >= scores.size()) return fail("index out of range");
    lowest_in = std::min(lowest_in, scores[static_cast<std::size_t>(i)]);
  }
  for (std::size_t j = 0; j < scores.size(); ++j)
    if (!in.count(static_cast<std::int32_t>(j)) && scores[j] > lowest_in) {
      std::ostringstream os;
      os << "token " << j << " (score " << scores[j] << ") left out while a kept token scores "
         << lowest_in;
      return fail(os.str());
    }
  return true;
}

// Path of ../shared/data, or empty when it is missing (tests then skip, saying why).
inline std::string shared_data_dir() {
  if (const char* env = std::getenv("FASA_DATA_DIR")) return env;
#ifdef FASA_SHARED_DATA_DIR
  return FASA_SHARED_DATA_DIR;
#else
  return {};
#endif
}

// The default model (scripts/fetch-model.sh caches it): $FASA_MODEL, else
// ${FASA_CACHE_DIR:-$HOME/.cache/fasa}/models/SmolLM2-135M-Instruct.Q4_1.gguf.
inline std::string default_model_path() {
  if (const char* env = std::getenv("FASA_MODEL")) return env;
  std::string cache;
  if (const char* dir = std::getenv("FASA_CACHE_DIR"))
    cache = dir;
  else if (const char* home = std::getenv("HOME"))
    cache = std::string(home) + "/.cache/fasa";
  return cache + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

// The Python interpreter the reference scripts run under: $FASA_PYTHON, else the one CMake found.
inline std::string python_executable() {
  if (const char* env = std::getenv("FASA_PYTHON")) return env;
#ifdef FASA_PYTHON
  return FASA_PYTHON;
#else
  return "python3";
#endif
}

// When FASA_REQUIRE_MODEL_TESTS=1 (CI sets it), a missing model or Python reference is a
// failure, not a skip, so a broken install step cannot pass silently.
inline bool model_tests_required() {
  const char* env = std::getenv("FASA_REQUIRE_MODEL_TESTS");
  return env != nullptr && std::string(env) == "1";
}

}  // namespace fasa::test

// Skips the rest of a test case (with a message saying why) when `cond` is false, or fails it
// when model tests are required.
#define FASA_SKIP_UNLESS(cond, why)                                    \
  if (!(cond)) {                                                       \
    if (::fasa::test::model_tests_required()) FAIL("required: ", why); \
    MESSAGE("skipped: ", why);                                         \
    return;                                                            \
  }
