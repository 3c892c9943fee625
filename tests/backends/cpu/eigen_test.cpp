// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
// The Eigen backend against the reference backend (the oracle) through SparseAttention, on
// fixed-seed random inputs: every selector on both storages and on a storage defined here, both
// GQA granularities, absolute/fractional/over-long budgets, forced tokens, prefill, long contexts
// that the backend splits across threads, deliberate ties, NaN, and a selector defined here.
// Outputs must agree within fp32_tol; selections are checked tie-aware against scores this file
// computes itself from the cache and the policy's definition.

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>

#include "fasa/backends/cpu/eigen.hpp"
#include "fasa/fasa.hpp"
#include "support.hpp"

using namespace fasa;
using positional::rope;
using eig = backend::cpu_eigen;
using ref = backend::cpu_reference;

namespace {

constexpr auto kv_gran = selection_granularity::kv_head;
constexpr auto q_gran = selection_granularity::query_head;

// Random dominant FCs, N_tip distinct per unit.
std::vector<std::vector<int>> random_fcs(int units, int num_fcs, int n_tip, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<std::vector<int>> sets;
  for (int u = 0; u < units; ++u) {
    std::vector<int> all(static_cast<std::size_t>(num_fcs));
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), gen);
    sets.emplace_back(all.begin(), all.begin() + n_tip);
  }
  return sets;
}

// The forced tokens of a step, computed here from forced_tokens' documented rule: current, then
// sinks, then the recent window from the newest, without duplicates, at most k.
std::vector<std::int32_t> expected_forced(const forced_tokens& f, std::int64_t t, std::int64_t k) {
  std::vector<std::int32_t> order;
  if (f.current) order.push_back(static_cast<std::int32_t>(t - 1));
  for (std::int64_t i = 0; i < std::min<std::int64_t>(f.sinks, t); ++i)
    order.push_back(static_cast<std::int32_t>(i));
  for (std::int64_t i = t - 1; i >= std::max<std::int64_t>(0, t - f.recent); --i)
    order.push_back(static_cast<std::int32_t>(i));
  std::vector<std::int32_t> out;
  for (auto i : order)
    if (static_cast<std::int64_t>(out.size()) < k &&
        std::find(out.begin(), out.end(), i) == out.end())
      out.push_back(i);
  return out;
}

// What a selection should be ranked by: the unit's queries summed, dotted with the keys on the
// unit's dims (all dims for the oracle), in double, read from the backend's cache through the
// storage's key_index(). FASA Eq. 6 (TIP) and the oracle's full logits.
template <class Att>
std::vector<float> independent_scores(const Att& att, const float* q_rot, std::int64_t t, int unit,
                                      std::span<const std::int32_t> dims) {
  const attention_shape& s = att.shape();
  const auto g = att.selector().granularity();
  const int d = s.head_dim;
  const int first = g == q_gran ? unit : unit * s.group_size();
  const int count = g == q_gran ? 1 : s.group_size();
  const int kv = g == q_gran ? s.kv_head_of(unit) : unit;
  const auto& cache = att.backend_state().cache;
  std::vector<int> use(dims.begin(), dims.end());
  if (use.empty()) {
    use.resize(static_cast<std::size_t>(d));
    std::iota(use.begin(), use.end(), 0);
  }
  std::vector<float> out(static_cast<std::size_t>(t));
  for (std::int64_t j = 0; j < t; ++j) {
    double acc = 0.0;
    for (int h = first; h < first + count; ++h)
      for (int dim : use)
        acc += static_cast<double>(q_rot[h * d + dim]) *
               cache[static_cast<std::size_t>(att.storage().key_index(kv, j, dim))];
    out[static_cast<std::size_t>(j)] = static_cast<float>(acc);
  }
  return out;
}

// Checks one backend's selection of the last step: each unit's tokens are a valid top-k (ties
// allowed) of the independent scores, with the forced tokens in.
template <class Att>
void check_selection(const Att& att, const std::string& backend_name, const float* q_rot,
                     std::int64_t t, const dominant_plan* plan) {
  const selection& sel = att.last_selection();
  const auto& selector = att.selector();
  using Sel = std::decay_t<decltype(selector)>;
  if (sel.all) {
    CHECK_MESSAGE(selector.keep(t) >= t, backend_name, ": kept all tokens but keep(", t,
                  ") = ", selector.keep(t));
    return;
  }
  REQUIRE(sel.per_unit == selector.keep(t));
  REQUIRE(sel.units == num_selection_units(att.shape(), selector.granularity()));
  const auto forced = expected_forced(selector.forced(), t, sel.per_unit);
  for (int u = 0; u < sel.units; ++u) {
    std::span<const std::int32_t> dims;
    if constexpr (Sel::kind == score_kind::dot_dim_subset) dims = plan->unit_dims(u);
    auto scores = independent_scores(att, q_rot, t, u, dims);
    for (auto f : forced) scores[static_cast<std::size_t>(f)] = INFINITY;  // forced rank first
    const auto got = sel.unit_tokens(u);
    std::string why;
    CHECK_MESSAGE(std::is_sorted(got.begin(), got.end()), backend_name, " unit ", u,
                  ": tokens not ascending");
    CHECK_MESSAGE(test::is_valid_topk(scores, got, static_cast<std::size_t>(sel.per_unit), &why),
                  backend_name, " unit ", u, " at t=", t, ": ", why);
  }
}

struct case_config {
  int head_dim = 64;
  int kv_heads = 2;
  int ratio = 1;             // GQA: query heads per KV head
  std::int64_t prefix = 0;   // tokens appended before anything is compared
  std::int64_t prefill = 0;  // tokens prefilled, outputs compared
  int steps = 2;             // decode steps, outputs and selections compared
  int threads = 2;
  std::uint32_t seed = 1;
  bool rotate_half = false;

  attention_shape shape() const {
    return {kv_heads * ratio, kv_heads, head_dim, prefix + prefill + steps};
  }
  rope pe() const {
    return rotate_half ? rope::rotate_half(head_dim, 500000.0)
                       : rope::interleaved(head_dim, 10000.0);
  }
  std::string describe() const {
    return "d=" + std::to_string(head_dim) + " kv=" + std::to_string(kv_heads) +
           " ratio=" + std::to_string(ratio) + " prefix=" + std::to_string(prefix) +
           " prefill=" + std::to_string(prefill) + " threads=" + std::to_string(threads);
  }
};

// Runs the same inputs through the reference and the Eigen backend and compares them.
template <class PE, class Sel, class St>
void compare_backends(const case_config& cfg, const PE& pe, const Sel& sel, const St& st,
                      const dominant_plan* plan, const std::string& what) {
  INFO(what, " | ", cfg.describe());
  const attention_shape shape = cfg.shape();
  SparseAttention<PE, Sel, St, ref> a(shape, pe, sel, st);
  SparseAttention<PE, Sel, St, eig> b(shape, pe, sel, st, eig{cfg.threads});
  const auto qn = static_cast<std::size_t>(shape.num_q_heads * shape.head_dim);
  const auto kn = static_cast<std::size_t>(shape.num_kv_heads * shape.head_dim);
  std::uint32_t seed = cfg.seed * 7919u;

  if (cfg.prefix > 0) {
    const auto n = static_cast<std::size_t>(cfg.prefix);
    const auto k = test::random_vector(n * kn, seed++), v = test::random_vector(n * kn, seed++);
    a.append(k, v);
    b.append(k, v);
  }
  if (cfg.prefill > 0) {
    const auto n = static_cast<std::size_t>(cfg.prefill);
    const auto q = test::random_vector(n * qn, seed++);
    const auto k = test::random_vector(n * kn, seed++), v = test::random_vector(n * kn, seed++);
    std::vector<float> oa(n * qn), ob(n * qn);
    a.prefill(q, k, v, oa);
    b.prefill(q, k, v, ob);
    test::check_close(ob, oa, test::fp32_tol, "prefill output");
  }
  for (int step = 0; step < cfg.steps; ++step) {
    const auto q = test::random_vector(qn, seed++);
    const auto k = test::random_vector(kn, seed++), v = test::random_vector(kn, seed++);
    std::vector<float> oa(qn), ob(qn);
    const step_stats sa = a.decode(q, k, v, oa);
    const step_stats sb = b.decode(q, k, v, ob);
    const std::int64_t t = a.size();
    INFO("decode step ", step, " at t=", t);
    test::check_close(ob, oa, test::fp32_tol, "decode output");
    CHECK(sa.bytes_read() == sb.bytes_read());
    CHECK(a.last_selection().all == b.last_selection().all);
    if constexpr (Sel::kind != score_kind::none) {
      auto q_rot = q;
      for (int h = 0; h < shape.num_q_heads; ++h)
        pe.rotate(q_rot.data() + h * shape.head_dim, t - 1);
      check_selection(a, "reference", q_rot.data(), t, plan);
      check_selection(b, "eigen", q_rot.data(), t, plan);
    }
  }
}

enum class variant { dense, oracle, tip };
constexpr const char* name_of(variant v) {
  return v == variant::dense ? "dense" : v == variant::oracle ? "oracle_topk" : "fasa_tip";
}

// One variant on both storages (the plan gives split_dominant its tables whatever the selector).
void compare_variant(const case_config& cfg, variant which, selection_granularity g,
                     token_budget budget, forced_tokens force, int n_tip) {
  const rope pe = cfg.pe();
  const attention_shape shape = cfg.shape();
  const dominant_plan plan(pe, shape, g,
                           random_fcs(num_selection_units(shape, g), pe.num_fcs(), n_tip,
                                      cfg.seed * 31u + static_cast<std::uint32_t>(n_tip)));
  const std::string what = std::string(name_of(which)) + " " + to_string(g) + " budget " +
                           (budget.is_fraction() ? std::to_string(budget.fraction_value())
                                                 : std::to_string(budget.count())) +
                           (force.any() ? " forced" : "");
  const auto contiguous = storage::contiguous::for_shape(shape);
  const auto split = plan.storage();
  switch (which) {
    case variant::dense:
      compare_backends(cfg, pe, selector::dense{}, contiguous, &plan, what + " contiguous");
      compare_backends(cfg, pe, selector::dense{}, split, &plan, what + " split_dominant");
      break;
    case variant::oracle: {
      const selector::oracle_topk sel{budget, g, force};
      compare_backends(cfg, pe, sel, contiguous, &plan, what + " contiguous");
      compare_backends(cfg, pe, sel, split, &plan, what + " split_dominant");
      break;
    }
    case variant::tip: {
      const auto sel = plan.tip(budget, force);
      compare_backends(cfg, pe, sel, split, &plan, what + " split_dominant");
      compare_backends(cfg, pe, sel, contiguous, &plan, what + " contiguous (fallback path)");
      break;
    }
  }
}

}  // namespace

TEST_CASE("eigen: dense, oracle and fasa_tip match the reference across shapes and budgets") {
  const token_budget budgets[] = {token_budget::tokens(1), token_budget::tokens(5),
                                  token_budget::fraction(0.3), token_budget::tokens(4096)};
  const forced_tokens forces[] = {{}, {2, 3, true}, {0, 0, true}};
  int n = 0;
  for (int d : {64, 128})
    for (int ratio : {1, 3, 4, 8})
      for (std::int64_t seq : {1, 7, 97, 1031})
        for (auto g : {kv_gran, q_gran}) {
          case_config cfg;
          cfg.head_dim = d;
          cfg.ratio = ratio;
          cfg.prefix = seq - 1;  // the first decode step sees seq tokens
          cfg.seed = static_cast<std::uint32_t>(++n);
          cfg.rotate_half = n % 2 == 0;
          cfg.threads = 1 + n % 3;
          const token_budget budget = budgets[n % 4];
          const forced_tokens force = forces[n % 3];
          const int n_tip = d == 64 ? 8 : 16;
          compare_variant(cfg, variant::dense, g, budget, force, n_tip);
          compare_variant(cfg, variant::oracle, g, budget, force, n_tip);
          compare_variant(cfg, variant::tip, g, budget, force, n_tip);
        }
}

TEST_CASE("eigen: budgets >= seq_len, fractional budgets and many forced tokens") {
  case_config cfg;
  cfg.head_dim = 128;
  cfg.kv_heads = 2;
  cfg.ratio = 4;
  cfg.prefix = 96;
  cfg.steps = 3;
  for (auto g : {kv_gran, q_gran}) {
    compare_variant(cfg, variant::tip, g, token_budget::tokens(97), {}, 16);  // = t at step 0
    compare_variant(cfg, variant::tip, g, token_budget::tokens(98), {}, 16);
    compare_variant(cfg, variant::oracle, g, token_budget::fraction(1.0), {}, 16);
    compare_variant(cfg, variant::tip, g, token_budget::fraction(0.05), {1, 1, false}, 16);
    compare_variant(cfg, variant::oracle, g, token_budget::tokens(4), {4, 8, true},
                    16);  // all forced
    compare_variant(cfg, variant::tip, g, token_budget::tokens(12), {4, 8, true}, 64);  // all FCs
  }
}

TEST_CASE("eigen: prefill of several tokens, then decode") {
  for (int ratio : {1, 3, 8})
    for (std::int64_t prefix : {0, 40}) {
      case_config cfg;
      cfg.head_dim = ratio == 3 ? 128 : 64;
      cfg.kv_heads = 2;
      cfg.ratio = ratio;
      cfg.prefix = prefix;
      cfg.prefill = ratio == 1 ? 70 : 9;  // 70 > one block of new tokens per job
      cfg.steps = 2;
      cfg.seed = static_cast<std::uint32_t>(100 + ratio + prefix);
      compare_variant(cfg, variant::dense, kv_gran, token_budget::all(), {}, 8);
      compare_variant(cfg, variant::tip, q_gran, token_budget::tokens(16), {}, 8);
      compare_variant(cfg, variant::oracle, kv_gran, token_budget::fraction(0.25), {1, 2, false},
                      8);
    }
}

TEST_CASE("eigen: long contexts split across threads merge exactly (flash-decoding)") {
  // 9000 tokens, one KV head: attention is cut into 4 pieces and scoring into 2 per head.
  for (int threads : {3, 4}) {
    case_config cfg;
    cfg.head_dim = 64;
    cfg.kv_heads = 1;
    cfg.ratio = 4;
    cfg.prefix = 8999;
    cfg.prefill = 5;  // a causal prefill over a long prefix, cut into pieces too
    cfg.steps = 2;
    cfg.threads = threads;
    cfg.seed = 200u + static_cast<std::uint32_t>(threads);
    compare_variant(cfg, variant::dense, kv_gran, token_budget::all(), {}, 8);
    compare_variant(cfg, variant::tip, kv_gran, token_budget::tokens(300), {}, 8);
    compare_variant(cfg, variant::tip, q_gran, token_budget::fraction(0.5), {}, 8);
  }
  case_config cfg;  // threads = 0: OpenMP's default
  cfg.prefix = 5000;
  cfg.threads = 0;
  compare_variant(cfg, variant::oracle, q_gran, token_budget::tokens(100), {}, 8);
}

namespace {

// A selector defined outside the library, of kind custom: the unit's first query against the
// key by negative squared distance on the first 16 dims. Only score() defines it, so both
// backends must call it per token and agree exactly.
struct nearest_keys {
  using policy_tag = token_selector_tag;
  static constexpr score_kind kind = score_kind::custom;
  token_budget budget = token_budget::tokens(8);
  selection_granularity mode = selection_granularity::query_head;

  selection_granularity granularity() const { return mode; }
  std::int64_t keep(std::int64_t t) const { return budget.keep(t); }
  forced_tokens forced() const { return {}; }
  template <class Keys>
  float score(const unit_queries& uq, const Keys& keys, std::int64_t j) const {
    float s = 0.0f;
    for (int d = 0; d < 16; ++d) {
      const float diff = uq.q[d] - keys(j, d);
      s -= diff * diff;
    }
    return s;
  }
  void validate(const attention_shape& shape) const {
    shape.validate();
    FASA_CHECK(shape.head_dim >= 16, "nearest_keys needs head_dim >= 16, got ", shape.head_dim);
  }
};
static_assert(TokenSelector<nearest_keys>);

// A storage defined outside the library: token-major, K and V of all heads interleaved per token.
// Buffer: [capacity, kv_heads, 2, head_dim]. The Eigen backend knows nothing of it and must fall
// back to key_index()/value_index().
struct token_major {
  using policy_tag = kv_storage_tag;
  int kv_heads = 0;
  int dim = 0;
  std::int64_t cap = 0;
  int num_kv_heads() const { return kv_heads; }
  int head_dim() const { return dim; }
  std::int64_t capacity() const { return cap; }
  std::int64_t buffer_elements() const { return cap * kv_heads * 2 * dim; }
  std::int64_t key_index(int h, std::int64_t t, int d) const {
    return ((t * kv_heads + h) * 2) * dim + d;
  }
  std::int64_t value_index(int h, std::int64_t t, int d) const { return key_index(h, t, d) + dim; }
  std::int64_t scoring_row_bytes(int, index_span, int elem) const {
    return std::int64_t{dim} * elem;
  }
  void validate(const attention_shape& s) const {
    FASA_CHECK(kv_heads == s.num_kv_heads && dim == s.head_dim && cap == s.capacity,
               "token_major storage does not fit the shape");
  }
};
static_assert(KVStorage<token_major>);

// No rotation at all, so integer-valued keys and queries give exactly representable, tied scores.
struct no_rotation {
  using policy_tag = positional_encoding_tag;
  int dim = 0;
  int head_dim() const { return dim; }
  int num_fcs() const { return dim / 2; }
  dim_pair fc_dims(int i) const { return {2 * i, 2 * i + 1}; }
  void rotate(float*, std::int64_t) const {}
};
static_assert(PositionalEncoding<no_rotation>);

}  // namespace

TEST_CASE("eigen: a custom selector defined in the test runs identically on both backends") {
  for (auto g : {kv_gran, q_gran})
    for (int ratio : {1, 4}) {
      case_config cfg;
      cfg.head_dim = 64;
      cfg.kv_heads = 2;
      cfg.ratio = ratio;
      cfg.prefix = 2000;  // enough work for the backend to use both threads
      cfg.steps = 3;
      cfg.threads = 2;
      cfg.seed = 300u + static_cast<std::uint32_t>(ratio);
      const rope pe = cfg.pe();
      const attention_shape shape = cfg.shape();
      const dominant_plan plan(pe, shape, kv_gran, random_fcs(shape.num_kv_heads, 32, 8, 9));
      nearest_keys sel;
      sel.mode = g;
      for (int storage = 0; storage < 2; ++storage) {
        INFO("custom selector, ", to_string(g), " ratio ", ratio,
             storage ? " split" : " contiguous");
        const auto run = [&](auto st) {
          using St = decltype(st);
          SparseAttention<rope, nearest_keys, St, ref> a(shape, pe, sel, st);
          SparseAttention<rope, nearest_keys, St, eig> b(shape, pe, sel, st, eig{2});
          const auto kn = static_cast<std::size_t>(shape.num_kv_heads * shape.head_dim);
          const auto qn = static_cast<std::size_t>(shape.num_q_heads * shape.head_dim);
          const auto k = test::random_vector(2000 * kn, 1), v = test::random_vector(2000 * kn, 2);
          a.append(k, v);
          b.append(k, v);
          for (int step = 0; step < 3; ++step) {
            const auto q = test::random_vector(qn, 10u + step);
            const auto kk = test::random_vector(kn, 20u + step),
                       vv = test::random_vector(kn, 30u + step);
            std::vector<float> oa(qn), ob(qn);
            a.decode(q, kk, vv, oa);
            b.decode(q, kk, vv, ob);
            test::check_close(ob, oa, test::fp32_tol, "custom selector output");
            // the same score() on the same floats: identical selections, not merely valid ones
            CHECK(a.last_selection().tokens == b.last_selection().tokens);
            CHECK(b.last_selection().per_unit == 8);
          }
        };
        if (storage == 0)
          run(storage::contiguous::for_shape(shape));
        else
          run(plan.storage());
      }
    }
}

TEST_CASE("eigen: a storage defined in the test works through the generic path") {
  case_config cfg;
  cfg.head_dim = 64;
  cfg.kv_heads = 2;
  cfg.ratio = 3;
  cfg.prefix = 600;
  cfg.prefill = 6;
  cfg.steps = 2;
  const rope pe = cfg.pe();
  const attention_shape shape = cfg.shape();
  const token_major st{shape.num_kv_heads, shape.head_dim, shape.capacity};
  const dominant_plan plan(pe, shape, q_gran, random_fcs(shape.num_q_heads, 32, 8, 5));
  compare_backends(cfg, pe, selector::dense{}, st, &plan, "dense token_major");
  compare_backends(cfg, pe, selector::oracle_topk{token_budget::tokens(33), kv_gran, {}}, st, &plan,
                   "oracle token_major");
  compare_backends(cfg, pe, plan.tip(token_budget::tokens(20)), st, &plan, "tip token_major");
}

TEST_CASE("eigen: deliberately tied scores break ties by lower index, like the reference") {
  // Keys repeat four integer patterns and queries are integers, so scores are exact in float and
  // tie in large groups; both backends must keep the lowest indices of a tied group.
  const attention_shape shape{4, 2, 16, 64};
  const no_rotation pe{16};
  const auto value = [](std::int64_t tok, int h, int d) {
    return static_cast<float>(((tok % 4) * 3 + h + d) % 5 - 2);
  };
  std::vector<float> k(static_cast<std::size_t>(60 * 2 * 16)), v(k.size());
  for (std::int64_t t = 0; t < 60; ++t)
    for (int h = 0; h < 2; ++h)
      for (int d = 0; d < 16; ++d) {
        k[static_cast<std::size_t>((t * 2 + h) * 16 + d)] = value(t, h, d);
        v[static_cast<std::size_t>((t * 2 + h) * 16 + d)] = static_cast<float>(t % 7);
      }
  std::vector<float> q(4 * 16);
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = static_cast<float>(static_cast<int>(i % 3) - 1);
  const std::vector<float> k1(k.begin(), k.begin() + 32), v1(v.begin(), v.begin() + 32);

  const auto check = [&](auto sel, auto st, const char* what) {
    using Sel = decltype(sel);
    using St = decltype(st);
    INFO(std::string(what));
    SparseAttention<no_rotation, Sel, St, ref> a(shape, pe, sel, st);
    SparseAttention<no_rotation, Sel, St, eig> b(shape, pe, sel, st, eig{2});
    a.append(k, v);
    b.append(k, v);
    std::vector<float> oa(q.size()), ob(q.size());
    a.decode(q, k1, v1, oa);
    b.decode(q, k1, v1, ob);
    test::check_close(ob, oa, test::fp32_tol, "tied output");
    const selection& sa = a.last_selection();
    const selection& sb = b.last_selection();
    REQUIRE_FALSE(sb.all);
    CHECK(sa.tokens == sb.tokens);
    // and the tie rule is really exercised: some tied group is cut by the budget
    const auto forced = expected_forced(sel.forced(), 61, sb.per_unit);
    bool cut_a_tie = false;
    for (int u = 0; u < sb.units; ++u) {
      std::span<const std::int32_t> dims;
      if constexpr (Sel::kind == score_kind::dot_dim_subset) {
        const index_span ds = sel.score_dims(u);
        dims = std::span<const std::int32_t>(ds.data, static_cast<std::size_t>(ds.size));
      }
      auto scores = independent_scores(b, q.data(), 61, u, dims);
      for (auto f : forced) scores[static_cast<std::size_t>(f)] = INFINITY;  // forced rank first
      const auto got = sb.unit_tokens(u);
      std::string why;
      CHECK_MESSAGE(test::is_valid_topk(scores, got, got.size(), &why), why);
      float lowest = INFINITY;
      for (auto i : got) lowest = std::min(lowest, scores[static_cast<std::size_t>(i)]);
      const auto tied_out =
          std::count_if(scores.begin(), scores.end(), [&](float s) { return s == lowest; }) -
          std::count_if(got.begin(), got.end(), [&](std::int32_t i) {
            return scores[static_cast<std::size_t>(i)] == lowest;
          });
      cut_a_tie = cut_a_tie || tied_out > 0;
    }
    CHECK_MESSAGE(cut_a_tie, "no unit's budget cut a group of tied scores");
  };
  const dominant_plan plan_kv(pe, shape, kv_gran, {{0, 1, 2, 5}, {3, 4, 6, 7}});
  const dominant_plan plan_q(pe, shape, q_gran,
                             {{0, 1, 2, 5}, {1, 2, 3, 4}, {3, 4, 6, 7}, {0, 7, 5, 6}});
  const auto contiguous = storage::contiguous::for_shape(shape);
  for (const forced_tokens force : {forced_tokens{}, forced_tokens{1, 2, true}}) {
    check(selector::oracle_topk{token_budget::tokens(10), kv_gran, force}, contiguous, "oracle kv");
    check(selector::oracle_topk{token_budget::tokens(17), q_gran, force}, plan_q.storage(),
          "oracle q split");
    check(plan_kv.tip(token_budget::tokens(10), force), plan_kv.storage(), "tip kv split");
    check(plan_q.tip(token_budget::tokens(9), force), plan_q.storage(), "tip q split");
    check(plan_q.tip(token_budget::tokens(9), force), contiguous, "tip q contiguous");
  }
}

TEST_CASE("eigen: NaN is never fixed silently") {
  const attention_shape shape{4, 2, 64, 40};
  const auto pe = rope::interleaved(64, 10000.0);
  auto k = test::random_vector(39 * 2 * 64, 1), v = test::random_vector(39 * 2 * 64, 2);
  k[5 * 2 * 64 + 3] = NAN;  // token 5, KV head 0
  const auto q = test::random_vector(4 * 64, 3), k1 = test::random_vector(128, 4),
             v1 = test::random_vector(128, 5);
  // dense reads the NaN key: both backends return NaN for KV head 0's query heads
  auto da = make_dense<ref>(shape, pe);
  auto db = make_dense<eig>(shape, pe, eig{2});
  da.append(k, v), db.append(k, v);
  std::vector<float> oa(q.size()), ob(q.size());
  da.decode(q, k1, v1, oa);
  db.decode(q, k1, v1, ob);
  CHECK(std::isnan(oa[0]));
  CHECK(std::isnan(ob[0]));
  CHECK_FALSE(std::isnan(ob[3 * 64]));  // KV head 1 is clean
  // the oracle ranks the NaN token last, so attention over its selection stays finite
  auto oa2 =
      make_oracle<ref>(shape, pe, selector::oracle_topk{token_budget::tokens(8), kv_gran, {}});
  auto ob2 = make_oracle<eig>(shape, pe,
                              selector::oracle_topk{token_budget::tokens(8), kv_gran, {}}, eig{2});
  oa2.append(k, v), ob2.append(k, v);
  oa2.decode(q, k1, v1, oa);
  ob2.decode(q, k1, v1, ob);
  CHECK(oa2.last_selection().tokens == ob2.last_selection().tokens);
  test::check_close(ob, oa, test::fp32_tol, "oracle output around a NaN key");
}

TEST_CASE("eigen: decode allocates nothing once warmed up") {
  const attention_shape shape{8, 2, 64, 3000};
  const auto pe = rope::interleaved(64, 10000.0);
  const dominant_plan plan(pe, shape, q_gran, random_fcs(8, 32, 8, 3));
  auto att = make_fasa_c<eig>(plan, pe, token_budget::tokens(64), {}, eig{2});
  att.append(test::random_vector(2900 * 128, 1), test::random_vector(2900 * 128, 2));
  std::vector<float> o(8 * 64);
  const auto step = [&](std::uint32_t i) {
    att.decode(test::random_vector(8 * 64, i), test::random_vector(128, i + 1),
               test::random_vector(128, i + 2), o);
  };
  for (std::uint32_t i = 0; i < 3; ++i) step(10 * i);
  const auto& s = att.backend_state();
  const auto fingerprint = [&] {
    std::vector<const void*> p{s.cache.data(),
                               s.scores.data(),
                               s.keys.data(),
                               s.histograms.data(),
                               s.partials.data(),
                               s.forced.data(),
                               att.last_selection().tokens.data()};
    for (const auto& t : s.per_thread)
      for (const void* x :
           {static_cast<const void*>(t.qs.data()), static_cast<const void*>(t.s.data()),
            static_cast<const void*>(t.k.data()), static_cast<const void*>(t.v.data()),
            static_cast<const void*>(t.cand.data()), static_cast<const void*>(t.above.data()),
            static_cast<const void*>(t.merged.data())})
        p.push_back(x);
    return p;
  };
  const auto before = fingerprint();
  for (std::uint32_t i = 3; i < 60; ++i) step(10 * i);
  CHECK(fingerprint() == before);
}

TEST_CASE("eigen: bad backend knobs are refused") {
  const attention_shape shape{4, 2, 64, 8};
  const auto pe = rope::interleaved(64, 10000.0);
  CHECK_THROWS_WITH_AS(make_dense<eig>(shape, pe, eig{-1}),
                       doctest::Contains("threads must be >= 0"), fasa::error);
}

TEST_CASE("eigen: the radix top-k equals fasa::select_top_k, ties, NaN, signed zeros and all") {
  // The backend's selection against the library's reference top-k on the same scores: equal
  // sets (the tie rule is exact: forced first, then higher score, then lower index).
  std::mt19937 gen(7);
  std::uniform_int_distribution<int> small(-3, 3);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  cpu::eigen_scratch sc;
  int cases = 0;
  for (std::int64_t t : {1, 2, 7, 100, 2049, 5000})
    for (int kind = 0; kind < 4; ++kind)
      for (std::int64_t k : {std::int64_t{1}, std::int64_t{3}, t / 2 + 1, t})
        for (const forced_tokens force : {forced_tokens{}, forced_tokens{2, 3, true}}) {
          std::vector<float> scores(static_cast<std::size_t>(t));
          for (auto& s : scores) {
            switch (kind) {
              case 0:
                s = normal(gen);
                break;  // distinct
              case 1:
                s = static_cast<float>(small(gen));
                break;  // heavy ties
              case 2:
                s = small(gen) == 0 ? -0.0f : small(gen) > 1 ? NAN : 0.0f;
                break;
              default:
                s = small(gen) > 2 ? INFINITY : small(gen) < -2 ? -INFINITY : normal(gen);
            }
          }
          std::vector<std::int32_t> want, scratch;
          select_top_k(scores, k, force, want, scratch);
          std::vector<std::int32_t> forced;
          append_forced_tokens(force, t, std::min(k, t), forced);
          std::sort(forced.begin(), forced.end());
          for (std::int64_t pieces : {1, 3}) {
            std::vector<std::uint32_t> keys(scores.size());
            std::vector<std::uint32_t> hists(
                static_cast<std::size_t>(pieces * cpu::eigen_detail::kRadixBins));
            for (std::int64_t p = 0; p < pieces; ++p) {
              const std::int64_t a = t * p / pieces, b = t * (p + 1) / pieces;
              cpu::eigen_detail::topk_keys_and_histogram(
                  scores.data() + a, b - a, keys.data() + a,
                  hists.data() + p * cpu::eigen_detail::kRadixBins);
            }
            std::vector<std::int32_t> got(static_cast<std::size_t>(std::min(k, t)));
            cpu::eigen_detail::topk_radix_select(keys.data(), t, hists.data(), pieces, k, forced,
                                                 got.data(), sc);
            INFO("t=", t, " kind=", kind, " k=", k, " pieces=", pieces,
                 force.any() ? " forced" : "");
            CHECK(got == want);
            ++cases;
          }
        }
  CHECK(cases == 6 * 4 * 4 * 2 * 2);
}
