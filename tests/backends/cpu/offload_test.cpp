// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
// backend::cpu_offload and storage::split_offload (FASA-M's CPU model): the same answers as FASA-C
// on the reference backend, bit for bit; the near tier holds exactly the slab; and the traffic
// counted per step is the model computed here from the shape and the selections alone: without
// the row pool each unit's kept rows cross with their (head_dim - slab_width) rest dims and
// head_dim value dims; with it, each KV head's kept tokens that earlier steps did not fetch cross
// once (between what the last step kept and what was ever fetched); TIP reads nothing far.

#include <cstring>
#include <numeric>
#include <random>
#include <set>

#include "fasa/fasa.hpp"
#include "support.hpp"

using namespace fasa;
using positional::rope;

namespace {

std::vector<std::vector<int>> random_fc_sets(int units, int fcs, int n_tip, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<std::vector<int>> sets;
  for (int u = 0; u < units; ++u) {
    std::vector<int> all(static_cast<std::size_t>(fcs));
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), gen);
    sets.emplace_back(all.begin(), all.begin() + n_tip);
  }
  return sets;
}

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("cpu_offload: FASA-M equals FASA-C bit for bit and its traffic follows the model") {
  const attention_shape shape{8, 2, 64, 200};
  const auto pe = rope::interleaved(shape.head_dim, 10000.0);
  const std::size_t qrow = static_cast<std::size_t>(shape.num_q_heads * shape.head_dim);
  const std::size_t kvrow = static_cast<std::size_t>(shape.num_kv_heads * shape.head_dim);
  for (auto g : {selection_granularity::query_head, selection_granularity::kv_head})
    for (auto budget : {token_budget::tokens(16), token_budget::fraction(0.25)}) {
      INFO(to_string(g), " budget ",
           budget.is_fraction() ? budget.fraction_value() : static_cast<double>(budget.count()));
      const int units = num_selection_units(shape, g);
      const dominant_plan plan(pe, shape, g, random_fc_sets(units, 32, 4, 7), 1);
      auto m = make_fasa_m<backend::cpu_offload>(plan, pe, budget);  // with the row pool
      auto w = make_fasa_m<backend::cpu_offload>(plan, pe, budget, {}, backend::cpu_offload{false});
      auto c = make_fasa_c<backend::cpu_reference>(plan, pe, budget);
      const std::int64_t sw = plan.slab_width();
      const std::int64_t far_per_row = (shape.head_dim - sw) + shape.head_dim;
      REQUIRE(sw < shape.head_dim);

      // The near tier is the slab alone: kv_heads x capacity x slab_width.
      CHECK(m.backend_state().near.size() ==
            static_cast<std::size_t>(shape.num_kv_heads * shape.capacity * sw));
      CHECK(m.backend_state().far.size() ==
            static_cast<std::size_t>(shape.num_kv_heads * shape.capacity * far_per_row));

      const int n0 = 150;
      const auto q = test::random_vector(n0 * qrow, 11), k = test::random_vector(n0 * kvrow, 12),
                 v = test::random_vector(n0 * kvrow, 13);
      std::vector<float> om(q.size()), oc(q.size());
      m.prefill(q, k, v, om);
      c.prefill(q, k, v, oc);
      CHECK(same_bits(om, oc));
      w.prefill(q, k, v, om);
      CHECK(same_bits(om, oc));
      // A prefill stages each KV head's rows once.
      CHECK(m.backend_state().traffic.last_elements == shape.num_kv_heads * n0 * far_per_row);
      CHECK(m.backend_state().traffic.written_far_elements ==
            shape.num_kv_heads * n0 * far_per_row);

      // The slab in the near tier holds each KV head's slab dims of the rotated keys.
      {
        std::vector<float> kr(k.begin(), k.begin() + static_cast<std::ptrdiff_t>(kvrow));
        for (int h = 0; h < shape.num_kv_heads; ++h) pe.rotate(kr.data() + h * shape.head_dim, 0);
        const auto st = plan.storage();
        for (int h = 0; h < shape.num_kv_heads; ++h)
          for (int j = 0; j < sw; ++j)
            CHECK(m.backend_state().near[static_cast<std::size_t>(h * shape.capacity * sw + j)] ==
                  kr[static_cast<std::size_t>(h * shape.head_dim + st.dim_at(h, j))]);
      }

      // Per KV head: the union of its units' kept tokens at the last step, and every token
      // fetched so far.
      const int per_kv = g == selection_granularity::query_head ? shape.group_size() : 1;
      std::vector<std::set<std::int32_t>> last(static_cast<std::size_t>(shape.num_kv_heads)),
          fetched = last;
      for (int step = 0; step < 12; ++step) {
        INFO("step ", step);
        const auto qs = test::random_vector(qrow, 100u + 3u * step),
                   ks = test::random_vector(kvrow, 101u + 3u * step),
                   vs = test::random_vector(kvrow, 102u + 3u * step);
        std::vector<float> a(qrow), b(qrow);
        const std::int64_t before = m.backend_state().traffic.scoring_far_elements;
        m.decode(qs, ks, vs, a);
        c.decode(qs, ks, vs, b);
        CHECK(same_bits(a, b));
        CHECK(m.last_selection().tokens == c.last_selection().tokens);
        w.decode(qs, ks, vs, a);
        CHECK(same_bits(a, b));
        const std::int64_t t = m.size();
        const std::int64_t keep = budget.keep(t);
        // Without the pool: every unit's kept rows.
        const auto& tw = w.backend_state().traffic;
        CHECK(tw.last_rows == std::int64_t{units} * keep);
        CHECK(tw.last_elements == std::int64_t{units} * keep * far_per_row);
        // With it: each KV head's kept tokens the pool lacks. It holds at least the last step's
        // union (it has room for it) and at most everything fetched, so the count lies between
        // the two; at the first step, and under kv_head with a token budget (no spare slot),
        // it is exactly the tokens the last step did not keep.
        std::int64_t new_vs_last = 0, new_vs_fetched = 0;
        for (int kv = 0; kv < shape.num_kv_heads; ++kv) {
          std::set<std::int32_t> now;
          for (int j = 0; j < per_kv; ++j) {
            const auto list = m.last_selection().unit_tokens(per_kv > 1 ? kv * per_kv + j : kv);
            now.insert(list.begin(), list.end());
          }
          auto& l = last[static_cast<std::size_t>(kv)];
          auto& f = fetched[static_cast<std::size_t>(kv)];
          for (std::int32_t tok : now) {
            new_vs_last += l.count(tok) == 0 ? 1 : 0;
            new_vs_fetched += f.count(tok) == 0 ? 1 : 0;
          }
          l = now;
          f.insert(now.begin(), now.end());
        }
        const auto& tr = m.backend_state().traffic;
        CHECK(tr.last_rows <= new_vs_last);
        CHECK(tr.last_rows >= new_vs_fetched);
        if (step == 0 || (per_kv == 1 && !budget.is_fraction())) CHECK(tr.last_rows == new_vs_last);
        CHECK(tr.last_elements == tr.last_rows * far_per_row);
        CHECK(tr.scoring_far_elements == before);  // TIP reads the slab only
      }
      CHECK(m.backend_state().traffic.fetches == 13);
      CHECK(m.backend_state().traffic.total_elements < w.backend_state().traffic.total_elements);
    }
}

TEST_CASE(
    "cpu_offload: a selector that scores far dims pays for them; all-near layouts move nothing") {
  const attention_shape shape{4, 2, 32, 64};
  const auto pe = rope::interleaved(shape.head_dim, 10000.0);
  const std::size_t qrow = static_cast<std::size_t>(shape.num_q_heads * shape.head_dim);
  const std::size_t kvrow = static_cast<std::size_t>(shape.num_kv_heads * shape.head_dim);
  const dominant_plan plan(pe, shape, selection_granularity::kv_head,
                           random_fc_sets(shape.num_kv_heads, 16, 2, 3), 1);
  selector::oracle_topk oracle;
  oracle.budget = token_budget::tokens(8);
  oracle.mode = selection_granularity::kv_head;
  SparseAttention<rope, selector::oracle_topk, storage::split_offload, backend::cpu_offload> far(
      shape, pe, oracle, plan.offload_storage());
  SparseAttention<rope, selector::oracle_topk, storage::contiguous, backend::cpu_offload> near(
      shape, pe, oracle, storage::contiguous::for_shape(shape));
  auto ref = make_oracle<backend::cpu_reference>(shape, pe, oracle);
  const int n0 = 40;
  const auto q = test::random_vector(n0 * qrow, 1), k = test::random_vector(n0 * kvrow, 2),
             v = test::random_vector(n0 * kvrow, 3);
  std::vector<float> o1(q.size()), o2(q.size()), o3(q.size());
  far.prefill(q, k, v, o1);
  near.prefill(q, k, v, o2);
  ref.prefill(q, k, v, o3);
  CHECK(same_bits(o2, o3));
  const auto qs = test::random_vector(qrow, 4), ks = test::random_vector(kvrow, 5),
             vs = test::random_vector(kvrow, 6);
  std::vector<float> a(qrow), b(qrow), r(qrow);
  far.decode(qs, ks, vs, a);
  near.decode(qs, ks, vs, b);
  ref.decode(qs, ks, vs, r);
  CHECK(same_bits(b, r));
  test::check_close(a, r, test::fp32_tol, "oracle on split_offload");
  CHECK(far.backend_state().traffic.scoring_far_elements > 0);
  CHECK(near.backend_state().traffic.total_elements == 0);
  CHECK(near.backend_state().traffic.scoring_far_elements == 0);
  CHECK(near.backend_state().far.empty());
}

TEST_CASE("split_offload: a slab of every key dim is refused with a reason") {
  const attention_shape shape{2, 1, 8, 16};
  const auto pe = rope::interleaved(shape.head_dim, 10000.0);
  const auto plan = dominant_plan::all_fcs(pe, shape, selection_granularity::kv_head);
  CHECK_THROWS_WITH_AS(plan.offload_storage().validate(shape),
                       doctest::Contains("nothing but the values would leave the GPU"),
                       fasa::error);
}
