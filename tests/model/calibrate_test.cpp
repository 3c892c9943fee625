// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
// Calibration on a real model (stories260K): measuring both granularities in one pass equals
// measuring each alone; several samples average their steps; a prefill in blocks measures what
// one block does; progress is reported; bad runs throw. The CA arithmetic itself is tested in
// tests/calib/.

#include <cmath>
#include <filesystem>
#include <vector>

#include "fasa/backends/cpu/eigen.hpp"
#include "fasa/calib/dominant_sets.hpp"
#include "fasa/model/calibrate.hpp"
#include "fasa/model/layers.hpp"
#include "fasa/model/llama2c.hpp"
#include "support.hpp"

using namespace fasa;
using namespace fasa::model;
namespace fs = std::filesystem;

namespace {

fs::path stories_model() {
  return fs::path(test::shared_data_dir()) / "models" / "stories260K" / "stories260K.bin";
}

#define SKIP_WITHOUT_STORIES()                                            \
  if (!fs::exists(stories_model())) {                                     \
    MESSAGE("skipped: ", stories_model().string(),                        \
            " is missing (../shared/data is not beside the repository)"); \
    return;                                                               \
  }

// A fixed pseudo-random token sequence from the vocabulary (ids 3.. skip BOS/EOS/UNK).
std::vector<std::int32_t> tokens_of(std::uint32_t seed, std::size_t n, int vocab) {
  std::vector<std::int32_t> t(n);
  std::uint32_t x = seed;
  for (auto& id : t) {
    x = x * 1664525u + 1013904223u;
    id = 3 + static_cast<std::int32_t>((x >> 8) % static_cast<std::uint32_t>(vocab - 3));
  }
  return t;
}

calibration_run small_run() {
  calibration_run run;
  run.prefill = 40;
  run.decode_steps = 12;
  run.k_values = {4, 8, 16, 32};
  return run;
}

double max_abs_diff(const calib::ca_table& a, const calib::ca_table& b) {
  REQUIRE(a.values.size() == b.values.size());
  double d = 0;
  for (std::size_t i = 0; i < a.values.size(); ++i)
    d = std::max(d, std::abs(a.values[i] - b.values[i]));
  return d;
}

}  // namespace

TEST_CASE("calibrate: both granularities in one pass equal each measured alone") {
  SKIP_WITHOUT_STORIES();
  const auto w = read_llama2c(stories_model());
  llama_model m(w, dense_layers<backend::cpu_eigen>(w.config, 100));
  const auto tokens = tokens_of(7, 60, w.config.vocab_size);
  calibration_run run = small_run();
  calibrator both(w.config, run,
                  {selection_granularity::kv_head, selection_granularity::query_head});
  both.add_sample(m, tokens);
  CHECK(both.samples() == 1);
  for (auto g : {selection_granularity::query_head, selection_granularity::kv_head}) {
    run.granularity = g;
    const auto alone = calibrate(m, tokens, run);
    const auto& joint = both.accumulator(g);
    CHECK(joint.uniform_steps() == run.decode_steps);
    CHECK(joint.num_units() == (g == selection_granularity::query_head ? 8 : 4));
    // the same CA values, summed in another thread order
    CHECK(max_abs_diff(joint.mean(), alone.mean()) < 1e-12);
  }
  // a real map: not every FC agrees fully, not every FC fails
  const auto mean = both.accumulator(selection_granularity::query_head).mean();
  const auto [lo, hi] = std::minmax_element(mean.values.begin(), mean.values.end());
  CHECK(*lo < 0.9);
  CHECK(*hi > 0.5);
}

TEST_CASE("calibrate: several samples average over all their decode steps") {
  SKIP_WITHOUT_STORIES();
  const auto w = read_llama2c(stories_model());
  llama_model m(w, dense_layers<backend::cpu_eigen>(w.config, 100));
  const calibration_run run = small_run();
  const std::vector<std::vector<std::int32_t>> samples{tokens_of(1, 52, w.config.vocab_size),
                                                       tokens_of(2, 70, w.config.vocab_size)};
  const auto a = calibrate(m, samples[0], run).mean();
  const auto b = calibrate(m, samples[1], run).mean();
  const auto ab = calibrate(m, std::span<const std::vector<std::int32_t>>(samples), run);
  CHECK(ab.uniform_steps() == 2 * run.decode_steps);
  const auto mean = ab.mean();
  double worst = 0;
  for (std::size_t i = 0; i < mean.values.size(); ++i)
    worst = std::max(worst, std::abs(mean.values[i] - 0.5 * (a.values[i] + b.values[i])));
  CHECK(worst < 1e-12);
  CHECK(max_abs_diff(a, b) > 0.05);  // the samples differ, so the check above can fail
  // the merge is the calibrator's too
  calibrator cal(w.config, run);
  for (const auto& s : samples) cal.add_sample(m, s);
  CHECK(cal.samples() == 2);
  CHECK(max_abs_diff(cal.accumulator(run.granularity).mean(), mean) < 1e-12);
}

TEST_CASE("calibrate: a prefill in blocks measures what one block does, and reports progress") {
  SKIP_WITHOUT_STORIES();
  const auto w = read_llama2c(stories_model());
  llama_model m(w, dense_layers<backend::cpu_eigen>(w.config, 100));
  const auto tokens = tokens_of(3, 60, w.config.vocab_size);
  calibration_run run = small_run();
  const auto one = calibrate(m, tokens, run).mean();
  run.prefill_chunk = 16;
  std::vector<std::int64_t> prefilled, steps;
  run.prefill_progress = [&](std::int64_t d, std::int64_t n) {
    CHECK(n == run.prefill);
    prefilled.push_back(d);
  };
  run.progress = [&](std::int64_t d, std::int64_t n) {
    CHECK(n == run.decode_steps);
    steps.push_back(d);
  };
  const auto blocks = calibrate(m, tokens, run).mean();
  CHECK(prefilled == std::vector<std::int64_t>{16, 32, 40});
  REQUIRE(steps.size() == 12);
  CHECK(steps.front() == 1);
  CHECK(steps.back() == 12);
  // set_progress replaces both callbacks (an empty one reports nothing)
  calibrator cal(w.config, run);
  int replaced = 0;
  cal.set_progress({}, [&](std::int64_t, std::int64_t) { ++replaced; });
  prefilled.clear();
  steps.clear();
  cal.add_sample(m, tokens);
  CHECK(replaced == 12);
  CHECK(prefilled.empty());
  CHECK(steps.empty());
  // Blocked matrix products round differently, which may swap two nearly equal scores at a top-K
  // boundary: at most a few 1/K steps of CA, and the dominant FCs stay the same.
  const double diff = max_abs_diff(one, blocks);
  INFO("max |CA(blocks) - CA(one block)| = ", diff);
  CHECK(diff <= 0.5 / 4);
  CHECK(calib::choose_dominant_fcs(one, 16, 2) == calib::choose_dominant_fcs(blocks, 16, 2));
}

TEST_CASE("calibrate: bad runs throw fasa::error") {
  SKIP_WITHOUT_STORIES();
  const auto w = read_llama2c(stories_model());
  llama_model m(w, dense_layers<backend::cpu_eigen>(w.config, 100));
  const calibration_run run = small_run();
  const auto tokens = tokens_of(5, 60, w.config.vocab_size);
  CHECK_THROWS_WITH_AS(calibrate(m, std::span(tokens).first(51), run),
                       doctest::Contains("has 51 tokens, fewer than prefill (40) + decode_steps "
                                         "(12)"),
                       fasa::error);
  CHECK_THROWS_WITH_AS(calibrate(m, std::span<const std::vector<std::int32_t>>(), run),
                       doctest::Contains("no calibration sample"), fasa::error);
  CHECK_THROWS_WITH_AS(calibrator(w.config, run, {}), doctest::Contains("no granularity"),
                       fasa::error);
  CHECK_THROWS_WITH_AS(
      calibrator(w.config, run, {selection_granularity::kv_head, selection_granularity::kv_head}),
      doctest::Contains("granularity kv_head is listed twice"), fasa::error);
  calibration_run bad = run;
  bad.prefill_chunk = -1;
  CHECK_THROWS_WITH_AS(calibrator(w.config, bad), doctest::Contains("prefill_chunk must be >= 0"),
                       fasa::error);
  bad = run;
  bad.decode_steps = 0;
  CHECK_THROWS_WITH_AS(calibrator(w.config, bad), doctest::Contains("must be at least 1"),
                       fasa::error);
  const calibrator q(w.config, run);
  CHECK_THROWS_WITH_AS(q.accumulator(selection_granularity::kv_head),
                       doctest::Contains("granularity kv_head was not measured"), fasa::error);
  llama_model small(w, dense_layers<backend::cpu_eigen>(w.config, 50));
  CHECK_THROWS_WITH_AS(
      calibrate(small, tokens, run),
      doctest::Contains("cache (50 tokens) cannot hold prefill + decode_steps = 52"), fasa::error);
}
