// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0

// FASA-M's host gather (fasa/backends/cuda/host_gather.hpp, plain C++): the staging rows it
// writes against a loop that reads each missing token's far dims one element at a time through
// the layout's key_index / value_index, and the thread team it runs on.

#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "fasa/backends/cuda/host_gather.hpp"
#include "fasa/compose/dominant_plan.hpp"
#include "fasa/policies/positional/rope.hpp"
#include "support.hpp"

namespace {

using fasa::attention_shape;

TEST_CASE("gather_team runs a job once on every thread, job after job") {
  for (int workers : {0, 1, 3, 7}) {
    fasa::cuda::gather_team team(workers);
    CHECK(team.size() == workers + 1);
    for (int round = 0; round < 20; ++round) {
      std::vector<std::atomic<int>> hits(static_cast<std::size_t>(team.size()));
      std::atomic<int> bad{0};
      team.run([&](int i, int n) {
        if (n != team.size() || i < 0 || i >= n)
          ++bad;
        else
          ++hits[static_cast<std::size_t>(i)];
      });
      CHECK(bad.load() == 0);
      for (auto& h : hits) CHECK(h.load() == 1);
    }
  }
  CHECK_THROWS_WITH_AS(fasa::cuda::gather_team(-1), doctest::Contains("threads must be"),
                       fasa::error);
}

TEST_CASE("far_gather: each miss's rest dims then its value, in pair order") {
  const attention_shape shape{8, 4, 64, 50};
  const auto pe = fasa::positional::rope::interleaved(64, 10000.0);
  // dominant FCs differing per KV head, so the rest dims are a different set per head
  std::vector<std::vector<int>> fcs;
  for (int h = 0; h < 4; ++h) fcs.push_back({h, 3 + 2 * h, 30 - h, 17});
  const fasa::dominant_plan plan(pe, shape, fasa::selection_granularity::kv_head, fcs, 8);
  const auto st = plan.offload_storage();
  const int batch = 3;
  std::vector<float> far(static_cast<std::size_t>(batch * st.far_elements()));
  for (std::size_t i = 0; i < far.size(); ++i) far[i] = static_cast<float>(i) * 0.5f + 1.0f;
  const std::int64_t pool = 6;
  const std::int64_t pairs = std::int64_t{batch} * shape.num_kv_heads;
  std::vector<std::int32_t> tok(static_cast<std::size_t>(pairs * pool), -7);  // -7: unused
  std::vector<int> count(static_cast<std::size_t>(pairs));
  for (std::int64_t p = 0; p < pairs; ++p) {
    count[static_cast<std::size_t>(p)] = static_cast<int>((p * 5) % (pool + 1));  // 0 .. 6
    for (int m = 0; m < count[static_cast<std::size_t>(p)]; ++m)
      tok[static_cast<std::size_t>(p * pool + m)] =
          static_cast<std::int32_t>((p * 13 + m * 7) % 50);
  }
  const std::int64_t row = st.rest_width() + st.head_dim();
  for (int workers : {0, 2, 5}) {
    INFO("workers ", workers);
    std::vector<float> stage(static_cast<std::size_t>(pairs * pool * row), -1.0f);
    std::vector<std::int64_t> offsets(static_cast<std::size_t>(pairs + 1), -1);
    fasa::cuda::far_gather<float> g;
    g.st = st;
    g.far = far.data();
    g.far_stride = st.far_elements();
    g.batch = batch;
    g.pool = pool;
    g.tok = tok.data();
    g.count = count.data();
    g.stage = stage.data();
    g.offsets = offsets.data();
    CHECK(g.row_elements() == 2 * 64 - plan.slab_width());
    fasa::cuda::gather_team team(workers);
    g.run(team);
    std::int64_t r = 0;
    for (std::int64_t p = 0; p < pairs; ++p) {
      CHECK(offsets[static_cast<std::size_t>(p)] == r);
      const int b = static_cast<int>(p / shape.num_kv_heads);
      const int kv = static_cast<int>(p % shape.num_kv_heads);
      for (int m = 0; m < count[static_cast<std::size_t>(p)]; ++m, ++r) {
        const std::int64_t t = tok[static_cast<std::size_t>(p * pool + m)];
        // the independent walk: storage position j >= slab_width holds dim dim_at(kv, j)
        for (int j = st.slab_width; j < st.head_dim(); ++j) {
          const std::int64_t at = st.far_offset(st.key_index(kv, t, st.dim_at(kv, j)));
          CHECK(stage[static_cast<std::size_t>(r * row + (j - st.slab_width))] ==
                far[static_cast<std::size_t>(b * st.far_elements() + at)]);
        }
        for (int d = 0; d < st.head_dim(); ++d) {
          const std::int64_t at = st.far_offset(st.value_index(kv, t, d));
          CHECK(stage[static_cast<std::size_t>(r * row + st.rest_width() + d)] ==
                far[static_cast<std::size_t>(b * st.far_elements() + at)]);
        }
      }
    }
    CHECK(offsets[static_cast<std::size_t>(pairs)] == r);
    // nothing written past the gathered rows
    for (std::size_t i = static_cast<std::size_t>(r * row); i < stage.size(); ++i)
      REQUIRE(stage[i] == -1.0f);
  }
}

}  // namespace
