// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0

// The tools' table from selector names to layers (tools/layer_request.hpp): what a request asks
// for reaches the layers it builds. Forced tokens are checked in the selections the layers make.

#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include "../tools/layer_request.hpp"
#include "fasa/backends/cpu/eigen.hpp"
#include "fasa/backends/cpu/reference.hpp"
#include "support.hpp"

namespace {

using fasa::attention_shape;
using fasa::selection_granularity;
using fasa::token_budget;

// Two layers (layer 0 dense, as the tools' default), GQA 2, d 16: prefill 40 tokens, decode one.
template <class Backend>
void check_forced(const std::string& selector, selection_granularity g) {
  const attention_shape shape{4, 2, 16, 64};
  fasa::tools::layers_request r(
      fasa::model::layer_stack{2, shape, fasa::positional::rope::interleaved(16, 10000.0)});
  r.selector = selector;
  r.plan.capacity = shape.capacity;
  r.budget = token_budget::tokens(8);
  r.granularity = g;
  r.force = fasa::forced_tokens{3, 2, false};
  const int units = fasa::num_selection_units(shape, g);
  r.dominant.assign(2, std::vector<std::vector<int>>(static_cast<std::size_t>(units), {0, 5}));
  auto layers = fasa::tools::build_layers_for<Backend>(r);
  REQUIRE(layers.size() == 2);
  const std::size_t q_row = 4 * 16, kv_row = 2 * 16;
  const int t = 40;
  std::vector<float> out(t * q_row);
  for (auto& l : layers)
    l->prefill(fasa::test::random_vector(t * q_row, 1), fasa::test::random_vector(t * kv_row, 2),
               fasa::test::random_vector(t * kv_row, 3), out);
  std::vector<float> out1(q_row);
  for (auto& l : layers)
    l->decode(fasa::test::random_vector(q_row, 4), fasa::test::random_vector(kv_row, 5),
              fasa::test::random_vector(kv_row, 6), out1);
  CHECK(layers[0]->last_selection().all);  // the dense layer
  const auto& s = layers[1]->last_selection();
  REQUIRE_FALSE(s.all);
  REQUIRE(s.units == units);
  REQUIRE(s.per_unit == 8);
  for (int u = 0; u < units; ++u) {
    const auto kept = s.unit_tokens(u);
    for (std::int32_t f : {0, 1, 2, t - 1, t})  // 3 sinks, 2 recent (the decoded token is t)
      CHECK_MESSAGE(std::find(kept.begin(), kept.end(), f) != kept.end(), "unit ", u,
                    " lacks forced token ", f);
  }
}

}  // namespace

TEST_CASE("tools: a layers_request's forced tokens reach the oracle's and FASA's selections") {
  for (auto g : {selection_granularity::query_head, selection_granularity::kv_head}) {
    INFO(fasa::to_string(g));
    check_forced<fasa::backend::cpu_reference>("oracle", g);
    check_forced<fasa::backend::cpu_reference>("fasa", g);
    check_forced<fasa::backend::cpu_eigen>("oracle", g);
    check_forced<fasa::backend::cpu_eigen>("fasa", g);
  }
}

TEST_CASE("tools: an unknown selector name is refused") {
  fasa::tools::layers_request r(fasa::model::layer_stack{
      1, attention_shape{2, 1, 16, 8}, fasa::positional::rope::interleaved(16, 10000.0)});
  r.selector = "h2o";
  CHECK_THROWS_WITH_AS(fasa::tools::build_layers_for<fasa::backend::cpu_reference>(r),
                       doctest::Contains("unknown selector 'h2o'"), fasa::error);
}
