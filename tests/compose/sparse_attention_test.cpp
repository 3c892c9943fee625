// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
// SparseAttention on the reference backend against attention and TIP written independently in
// this file from the rotated inputs: dense, oracle and fasa_c, both GQA granularities, budgets,
// ties, prefill, byte accounting, and the errors of bad input.

#include <algorithm>
#include <numeric>

#include "fasa/fasa.hpp"
#include "support.hpp"

using namespace fasa;
using positional::rope;
using ref = backend::cpu_reference;

namespace {

// A sequence of random pre-RoPE tokens, with the post-RoPE keys and values kept here so the
// test can compute attention on its own.
struct sequence {
  attention_shape shape;
  rope pe;
  std::uint32_t seed;
  std::vector<std::vector<float>> q, k, v;  // per token, pre-RoPE
  std::vector<std::vector<float>> k_rot;    // per token [kv_heads, d]
  std::vector<std::vector<float>> q_rot;    // per token [q_heads, d]

  sequence(attention_shape s, rope p, std::int64_t n, std::uint32_t seed_)
      : shape(s), pe(p), seed(seed_) {
    const auto qd = static_cast<std::size_t>(s.num_q_heads * s.head_dim);
    const auto kd = static_cast<std::size_t>(s.num_kv_heads * s.head_dim);
    for (std::int64_t i = 0; i < n; ++i) {
      auto qi = test::random_vector(qd, seed + 3 * static_cast<std::uint32_t>(i));
      auto ki = test::random_vector(kd, seed + 3 * static_cast<std::uint32_t>(i) + 1);
      auto vi = test::random_vector(kd, seed + 3 * static_cast<std::uint32_t>(i) + 2);
      q.push_back(qi), k.push_back(ki), v.push_back(vi);
      auto kr = ki, qr = qi;
      for (int h = 0; h < s.num_kv_heads; ++h) pe.rotate(kr.data() + h * s.head_dim, i);
      for (int h = 0; h < s.num_q_heads; ++h) pe.rotate(qr.data() + h * s.head_dim, i);
      k_rot.push_back(kr), q_rot.push_back(qr);
    }
  }
  std::int64_t size() const { return static_cast<std::int64_t>(q.size()); }
  const float* key(std::int64_t j, int kv) const {
    return k_rot[static_cast<std::size_t>(j)].data() + kv * shape.head_dim;
  }
  const float* val(std::int64_t j, int kv) const {
    return v[static_cast<std::size_t>(j)].data() + kv * shape.head_dim;
  }

  // softmax(q K_T^T / sqrt(d)) V_T for query head h of token `at` over `tokens`.
  std::vector<float> attention(std::int64_t at, int h,
                               const std::vector<std::int32_t>& tokens) const {
    const int d = shape.head_dim, kv = shape.kv_head_of(h);
    const float* qh = q_rot[static_cast<std::size_t>(at)].data() + h * d;
    std::vector<double> w;
    for (auto j : tokens) {
      double s = 0;
      for (int c = 0; c < d; ++c) s += static_cast<double>(qh[c]) * key(j, kv)[c];
      w.push_back(s / std::sqrt(static_cast<double>(d)));
    }
    const double m = *std::max_element(w.begin(), w.end());
    double z = 0;
    for (auto& x : w) z += (x = std::exp(x - m));
    std::vector<float> o(static_cast<std::size_t>(d));
    for (int c = 0; c < d; ++c) {
      double acc = 0;
      for (std::size_t i = 0; i < tokens.size(); ++i) acc += w[i] * val(tokens[i], kv)[c];
      o[static_cast<std::size_t>(c)] = static_cast<float>(acc / z);
    }
    return o;
  }
  // Raw score of token j for a unit on `dims` (all dims when empty): sum_g q_g . k_j.
  float unit_score(std::int64_t at, selection_granularity g, int unit, std::int64_t j,
                   std::span<const std::int32_t> dims) const {
    const int d = shape.head_dim;
    const int first = g == selection_granularity::query_head ? unit : unit * shape.group_size();
    const int count = g == selection_granularity::query_head ? 1 : shape.group_size();
    const int kv = g == selection_granularity::query_head ? shape.kv_head_of(unit) : unit;
    double s = 0;
    for (int h = first; h < first + count; ++h) {
      const float* qh = q_rot[static_cast<std::size_t>(at)].data() + h * d;
      if (dims.empty())
        for (int c = 0; c < d; ++c) s += static_cast<double>(qh[c]) * key(j, kv)[c];
      else
        for (auto c : dims) s += static_cast<double>(qh[c]) * key(j, kv)[c];
    }
    return static_cast<float>(s);
  }
};

std::vector<std::int32_t> all_tokens(std::int64_t t) {
  std::vector<std::int32_t> a(static_cast<std::size_t>(t));
  std::iota(a.begin(), a.end(), 0);
  return a;
}

// Feeds tokens [0, n-1) with append and decodes the last one; returns its output.
template <class Attn>
std::vector<float> run_last(Attn& attn, const sequence& seq, step_stats* stats = nullptr) {
  const auto n = seq.size();
  for (std::int64_t i = 0; i + 1 < n; ++i)
    attn.append(seq.k[static_cast<std::size_t>(i)], seq.v[static_cast<std::size_t>(i)]);
  std::vector<float> out(static_cast<std::size_t>(seq.shape.num_q_heads * seq.shape.head_dim));
  const auto st = attn.decode(seq.q.back(), seq.k.back(), seq.v.back(), out);
  if (stats) *stats = st;
  return out;
}

std::vector<std::vector<int>> random_fc_sets(int units, int num_fcs, int n_tip,
                                             std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<std::vector<int>> sets(static_cast<std::size_t>(units));
  for (auto& s : sets) {
    std::vector<int> all(static_cast<std::size_t>(num_fcs));
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), gen);
    s.assign(all.begin(), all.begin() + n_tip);
  }
  return sets;
}

struct case_shape {
  int q_heads, kv_heads, d;
  std::int64_t t;
};
const case_shape kCases[] = {{4, 4, 64, 1},    {6, 2, 64, 7},    {8, 2, 128, 97},
                             {8, 1, 64, 1000}, {12, 4, 64, 333}, {4, 4, 128, 1031}};

}  // namespace

TEST_CASE("compose: dense decode on the reference backend equals attention over all tokens") {
  for (const auto& c : kCases) {
    const attention_shape shape{c.q_heads, c.kv_heads, c.d, c.t + 1};
    const sequence seq(shape, rope::interleaved(c.d, 10000.0), c.t,
                       100u + static_cast<std::uint32_t>(c.t));
    auto attn = make_dense<ref>(shape, seq.pe);
    const auto out = run_last(attn, seq);
    for (int h = 0; h < c.q_heads; ++h) {
      const auto want = seq.attention(c.t - 1, h, all_tokens(c.t));
      test::check_close(
          std::span(out).subspan(static_cast<std::size_t>(h * c.d), static_cast<std::size_t>(c.d)),
          want, test::fp32_tol, "dense head " + std::to_string(h));
    }
  }
}

TEST_CASE("compose: fasa_c with every FC dominant and budget >= t equals dense (rel < 1e-6)") {
  for (auto g : {selection_granularity::query_head, selection_granularity::kv_head})
    for (const auto& c : kCases) {
      const attention_shape shape{c.q_heads, c.kv_heads, c.d, c.t + 1};
      const sequence seq(shape, rope::rotate_half(c.d, 1e4), c.t, 7u);
      auto dense_attn = make_dense<ref>(shape, seq.pe);
      const auto plan = dominant_plan::all_fcs(seq.pe, shape, g);
      auto fasa_attn = make_fasa_c<ref>(plan, seq.pe, token_budget::tokens(c.t + 5));
      const auto want = run_last(dense_attn, seq);
      const auto got = run_last(fasa_attn, seq);
      INFO(to_string(g), " t=", c.t);
      CHECK(test::relative_error(got, want) < 1e-6);
    }
}

TEST_CASE("compose: fasa_c with every FC dominant selects what the oracle selects") {
  for (auto g : {selection_granularity::query_head, selection_granularity::kv_head}) {
    const attention_shape shape{8, 2, 64, 400};
    const sequence seq(shape, rope::interleaved(64, 1e4), 400, 3u);
    selector::oracle_topk o;
    o.budget = token_budget::tokens(50);
    o.mode = g;
    auto oracle_attn = make_oracle<ref>(shape, seq.pe, o);
    const auto plan = dominant_plan::all_fcs(seq.pe, shape, g);
    auto fasa_attn = make_fasa_c<ref>(plan, seq.pe, token_budget::tokens(50));
    const auto want = run_last(oracle_attn, seq);
    const auto got = run_last(fasa_attn, seq);
    CHECK(fasa_attn.last_selection().tokens == oracle_attn.last_selection().tokens);
    CHECK(test::relative_error(got, want) < 1e-6);
  }
}

TEST_CASE("compose: TIP keeps a top-k of the dominant-dim scores and FAC attends exactly") {
  for (auto g : {selection_granularity::query_head, selection_granularity::kv_head})
    for (const auto& c : kCases) {
      const attention_shape shape{c.q_heads, c.kv_heads, c.d, c.t + 1};
      const sequence seq(shape, rope::interleaved(c.d, 1e4), c.t, 40u);
      const int units = num_selection_units(shape, g);
      const dominant_plan plan(seq.pe, shape, g, random_fc_sets(units, c.d / 2, c.d / 8, 5u));
      for (const token_budget b : {token_budget::tokens(16), token_budget::fraction(0.1)}) {
        auto attn = make_fasa_c<ref>(plan, seq.pe, b);
        const auto out = run_last(attn, seq);
        const auto& sel = attn.last_selection();
        const std::int64_t k = b.keep(c.t);
        INFO(to_string(g), " t=", c.t, " k=", k);
        CHECK(sel.all == (k >= c.t));
        for (int h = 0; h < c.q_heads; ++h) {
          const int unit = g == selection_granularity::query_head ? h : shape.kv_head_of(h);
          std::vector<std::int32_t> kept = all_tokens(c.t);
          if (!sel.all) {
            kept.assign(sel.unit_tokens(unit).begin(), sel.unit_tokens(unit).end());
            std::vector<float> scores(static_cast<std::size_t>(c.t));
            for (std::int64_t j = 0; j < c.t; ++j)
              scores[static_cast<std::size_t>(j)] =
                  seq.unit_score(c.t - 1, g, unit, j, plan.unit_dims(unit));
            std::string why;
            CHECK_MESSAGE(test::is_valid_topk(scores, kept, static_cast<std::size_t>(k), &why),
                          why);
          }
          test::check_close(std::span(out).subspan(static_cast<std::size_t>(h * c.d),
                                                   static_cast<std::size_t>(c.d)),
                            seq.attention(c.t - 1, h, kept), test::fp32_tol, "FAC");
        }
      }
    }
}

namespace {
// No rotation at all: with coarse inputs, scores tie exactly. (Also shows that any type
// modelling PositionalEncoding composes.)
struct no_position {
  using policy_tag = positional_encoding_tag;
  int dim;
  int head_dim() const { return dim; }
  int num_fcs() const { return dim / 2; }
  dim_pair fc_dims(int i) const { return {2 * i, 2 * i + 1}; }
  void rotate(float*, std::int64_t) const {}
};
}  // namespace

TEST_CASE("compose: TIP selection with tied scores is a valid top-k") {
  const attention_shape shape{4, 2, 64, 300};
  const no_position pe{64};
  const dominant_plan plan(pe, shape, selection_granularity::query_head,
                           random_fc_sets(4, 32, 2, 1u));
  auto attn = make_fasa_c<ref>(plan, pe, token_budget::tokens(20));
  auto coarse = [](std::vector<float> x) {
    for (auto& e : x) e = std::round(e);
    return x;
  };
  std::vector<std::vector<float>> keys;
  for (int j = 0; j < 300; ++j) {
    keys.push_back(coarse(test::random_vector(2 * 64, 1000u + static_cast<std::uint32_t>(j))));
    if (j < 299) attn.append(keys.back(), keys.back());
  }
  const auto q = coarse(test::random_vector(4 * 64, 5u));
  std::vector<float> out(4 * 64);
  attn.decode(q, keys.back(), keys.back(), out);
  int ties = 0;
  for (int u = 0; u < 4; ++u) {
    std::vector<float> scores(300);
    for (std::size_t j = 0; j < 300; ++j) {
      double s = 0;
      for (auto c : plan.unit_dims(u))
        s += static_cast<double>(q[static_cast<std::size_t>(u * 64 + c)]) *
             keys[j][static_cast<std::size_t>(shape.kv_head_of(u) * 64 + c)];
      scores[j] = static_cast<float>(s);
    }
    auto sorted = scores;
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    ties += sorted[19] == sorted[20];
    std::string why;
    CHECK_MESSAGE(test::is_valid_topk(scores, attn.last_selection().unit_tokens(u), 20, &why), why);
  }
  CHECK(ties > 0);  // the case really has ties at the boundary
}

TEST_CASE("compose: prefill equals token-by-token dense decode") {
  const attention_shape shape{6, 3, 64, 64};
  const sequence seq(shape, rope::rotate_half(64, 1e4), 40, 77u);
  auto a = make_dense<ref>(shape, seq.pe);
  auto b = make_dense<ref>(shape, seq.pe);
  // a: 25 tokens in one prefill, then 15 decodes; b: 40 decodes
  std::vector<float> q, k, v;
  for (int i = 0; i < 25; ++i) {
    q.insert(q.end(), seq.q[static_cast<std::size_t>(i)].begin(),
             seq.q[static_cast<std::size_t>(i)].end());
    k.insert(k.end(), seq.k[static_cast<std::size_t>(i)].begin(),
             seq.k[static_cast<std::size_t>(i)].end());
    v.insert(v.end(), seq.v[static_cast<std::size_t>(i)].begin(),
             seq.v[static_cast<std::size_t>(i)].end());
  }
  std::vector<float> pre(25 * 6 * 64), step(6 * 64);
  a.prefill(q, k, v, pre);
  for (int i = 0; i < 40; ++i) {
    b.decode(seq.q[static_cast<std::size_t>(i)], seq.k[static_cast<std::size_t>(i)],
             seq.v[static_cast<std::size_t>(i)], step);
    if (i < 25) {
      test::check_close(std::span(pre).subspan(static_cast<std::size_t>(i * 384), 384), step,
                        test::fp32_tol, "prefill row");
    } else {
      std::vector<float> o(384);
      a.decode(seq.q[static_cast<std::size_t>(i)], seq.k[static_cast<std::size_t>(i)],
               seq.v[static_cast<std::size_t>(i)], o);
      test::check_close(o, step, test::fp32_tol, "decode after prefill");
    }
  }
}

TEST_CASE("compose: bytes read per step follow the cost model (FASA Sec. 4.4)") {
  const attention_shape shape{8, 2, 128, 2000};
  const sequence seq(shape, rope::interleaved(128, 1e4), 2000, 1u);
  const dominant_plan plan(seq.pe, shape, selection_granularity::kv_head,
                           random_fc_sets(2, 64, 16, 2u));
  auto attn = make_fasa_c<ref>(plan, seq.pe, token_budget::tokens(100));
  step_stats st;
  run_last(attn, seq, &st);
  CHECK(plan.slab_width() == 32);
  CHECK(st.dense_bytes == 2LL * 2000 * 2 * 128 * 4);
  CHECK(st.score_bytes == 2LL * 2000 * 32 * 4);       // the slab only
  CHECK(st.attend_bytes == 2LL * 100 * 2 * 128 * 4);  // kept rows, K and V
  CHECK(st.fraction_of_dense() == doctest::Approx(16.0 / 128 + 100.0 / 2000));
}

TEST_CASE("compose: per-query-head plans widen the KV head's slab to the group's union") {
  const attention_shape shape{4, 1, 64, 10};
  const rope pe = rope::interleaved(64, 1e4);
  const dominant_plan same(pe, shape, selection_granularity::query_head,
                           {{0, 1}, {1, 0}, {0, 1}, {1, 0}});
  CHECK(same.slab_width() == 4);
  const dominant_plan apart(pe, shape, selection_granularity::query_head,
                            {{0, 1}, {2, 3}, {4, 5}, {6, 7}});
  CHECK(apart.slab_width() == 16);
}

TEST_CASE("compose: slab_multiple rounds the slab to whole vectors and keeps the layout exact") {
  const attention_shape shape{4, 2, 64, 40};
  const sequence seq(shape, rope::interleaved(64, 1e4), 37, 5u);
  const auto fcs = random_fc_sets(2, 32, 3, 6u);  // 3 FCs: a 6-dim slab
  const dominant_plan tight(seq.pe, shape, selection_granularity::kv_head, fcs);
  const dominant_plan padded(seq.pe, shape, selection_granularity::kv_head, fcs, 8);
  CHECK(tight.slab_width() == 6);
  CHECK(padded.slab_width() == 8);
  CHECK(dominant_plan(seq.pe, shape, selection_granularity::kv_head, fcs, 100).slab_width() == 64);
  // The padded layout is a valid split_dominant and selects and attends exactly as the tight one.
  auto a = make_fasa_c<ref>(tight, seq.pe, token_budget::tokens(9));
  auto b = make_fasa_c<ref>(padded, seq.pe, token_budget::tokens(9));
  const auto out_a = run_last(a, seq);
  const auto out_b = run_last(b, seq);
  CHECK(a.last_selection().tokens == b.last_selection().tokens);
  test::check_close(out_b, out_a, test::fp32_tol, "padded vs tight slab");
  CHECK_THROWS_WITH_AS(dominant_plan(seq.pe, shape, selection_granularity::kv_head, fcs, 0),
                       doctest::Contains("slab_multiple must be >= 1, got 0"), error);
}

TEST_CASE("compose: bad input gets an error naming the problem") {
  const attention_shape shape{8, 2, 64, 16};
  const rope pe = rope::interleaved(64, 1e4);
  auto attn = make_dense<ref>(shape, pe);
  std::vector<float> q(8 * 64), kv(2 * 64), out(8 * 64), small(10);
  CHECK_THROWS_WITH_AS(attn.decode(small, kv, kv, out),
                       doctest::Contains("q has 10 values, expected 512"), error);
  CHECK_THROWS_WITH_AS(attn.decode(q, small, kv, out), doctest::Contains("k has 10 values"), error);
  CHECK_THROWS_WITH_AS(attn.decode(q, kv, kv, small), doctest::Contains("out has 10 values"),
                       error);
  CHECK_THROWS_WITH_AS(attn.append(small, small),
                       doctest::Contains("multiple of num_kv_heads*head_dim"), error);
  for (int i = 0; i < 16; ++i) attn.append(kv, kv);
  CHECK_THROWS_WITH_AS(attn.decode(q, kv, kv, out), doctest::Contains("holds 16 of 16 tokens"),
                       error);

  CHECK_THROWS_WITH_AS(make_dense<ref>(shape, rope::interleaved(128, 1e4)),
                       doctest::Contains("head_dim (128) differs"), error);
  CHECK_THROWS_WITH_AS(dominant_plan(pe, shape, selection_granularity::kv_head,
                                     std::vector<std::vector<int>>(2, std::vector<int>(33, 0))),
                       doctest::Contains("N_tip (33) must be between 1 and head_dim/2 (32)"),
                       error);
  CHECK_THROWS_WITH_AS(dominant_plan(pe, shape, selection_granularity::kv_head, {{1, 2}, {3, 40}}),
                       doctest::Contains("FC 40 outside [0, 32)"), error);
  CHECK_THROWS_WITH_AS(dominant_plan(pe, shape, selection_granularity::kv_head, {{1, 1}, {3, 4}}),
                       doctest::Contains("names FC 1 twice"), error);
  CHECK_THROWS_WITH_AS(
      dominant_plan(pe, shape, selection_granularity::query_head, {{1, 2}, {3, 4}}),
      doctest::Contains("query_head granularity has 8 units"), error);
  CHECK_THROWS_WITH_AS(dominant_plan(pe, shape, selection_granularity::kv_head, {{1, 2}, {3}}),
                       doctest::Contains("unit 1 has 1 dominant FCs"), error);
  const dominant_plan plan(pe, shape, selection_granularity::kv_head, {{1, 2}, {3, 4}});
  auto tip = plan.tip(token_budget::tokens(4));
  tip.n_tip = 40;
  CHECK_THROWS_WITH_AS(make_fasa_c<ref>(plan, pe, token_budget::tokens(4)).set_selector(tip),
                       doctest::Contains("N_tip (40) must be between 1 and head_dim/2 (32)"),
                       error);
  const attention_shape other{8, 2, 64, 32};
  CHECK_THROWS_WITH_AS((fasa_c<ref>(other, pe, plan.tip(token_budget::tokens(4)), plan.storage())),
                       doctest::Contains("capacity=16 but the attention shape has"), error);
}
