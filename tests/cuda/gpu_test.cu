// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
//
// GPU tests: every kernel of the CUDA backend and every composed variant (dense, oracle top-k,
// FASA TIP) on both cache layouts (contiguous, split_dominant), bf16 and fp16, head_dim 64 and
// 128, GQA ratios 1, 3, 4 and 8, against the CPU reference on random inputs with odd lengths.
//  - Selections: tie-aware index sets against scores recomputed here in double (every kept
//    token scores at least the k-th best, every token clearly above it is kept).
//  - Outputs: the reference backend's attention over the same kept tokens, on the same
//    bf16/fp16-rounded keys and values, within the bf16/fp16 tolerance; outputs are poisoned
//    with NaN first, so an unwritten element fails.
// The same checks for SparseAttention composed on backend::cuda (prefill, decode steps, a reset)
// against the reference backend's state.
// Without a GPU the executable prints why and exits with 77, which ctest reports as skipped.

#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <set>

#include "fasa/backends/cpu/reference.hpp"
#include "fasa/backends/cuda/backend.cuh"
#include "fasa/backends/cuda/batch_decode.cuh"
#include "fasa/compose/dominant_plan.hpp"
#include "fasa/compose/variants.hpp"
#include "fasa/policies/positional/rope.hpp"
#include "support.hpp"

namespace {

using fasa::attention_shape;
using fasa::forced_tokens;
using fasa::selection_granularity;
using fasa::token_budget;
using fasa::cuda::device_buffer;
using fasa::cuda::elem_traits;

template <class Elem>
float round_to(float x) {
  return elem_traits<Elem>::to_float(elem_traits<Elem>::from_float(x));
}

struct gpu_case {
  int head_dim = 128;
  int q_heads = 8;
  int kv_heads = 2;
  std::vector<int> lengths = {1, 7, 97, 1031};
  token_budget budget = token_budget::tokens(64);
  selection_granularity granularity = selection_granularity::query_head;
  int n_tip = 8;
  forced_tokens force = {};
  int levels = 0;  // > 0: keys and values drawn from that many values (many exact ties)
  std::uint32_t seed = 1;
  fasa::cuda::split_options splits{};  // attention splits (many short ones test the merge)
};

std::string describe(const gpu_case& c) {
  std::ostringstream os;
  os << "splits=" << c.splits.waves << "/" << c.splits.gather_waves << "/" << c.splits.min_chunk
     << "/" << c.splits.max_splits << "/" << c.splits.tip_waves << "/" << c.splits.tip_stages << "/"
     << c.splits.tip_bulk << "/" << c.splits.pdl << "/" << c.splits.select_cluster << "/"
     << c.splits.select_lead_from << " d=" << c.head_dim << " heads=" << c.q_heads << "/"
     << c.kv_heads << " lengths=";
  for (int n : c.lengths) os << n << ',';
  os << " budget="
     << (c.budget.is_fraction() ? c.budget.fraction_value() : static_cast<double>(c.budget.count()))
     << " mode=" << fasa::to_string(c.granularity) << " n_tip=" << c.n_tip
     << " levels=" << c.levels;
  return os.str();
}

// Random distinct FCs per unit, fixed seed.
std::vector<std::vector<int>> random_fcs(const gpu_case& c, std::uint32_t seed) {
  std::mt19937 gen(seed);
  const int units = fasa::num_selection_units(attention_shape{c.q_heads, c.kv_heads, c.head_dim, 1},
                                              c.granularity);
  std::vector<std::vector<int>> sets;
  for (int u = 0; u < units; ++u) {
    std::vector<int> all(static_cast<std::size_t>(c.head_dim / 2));
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), gen);
    sets.emplace_back(all.begin(), all.begin() + c.n_tip);
  }
  return sets;
}

template <class Elem>
std::vector<float> random_rounded(std::size_t n, std::uint32_t seed, int levels) {
  std::vector<float> v = fasa::test::random_vector(n, seed);
  for (auto& x : v) {
    if (levels > 0) x = std::round(std::clamp(x, -1.0f, 1.0f) * (levels / 2)) / (levels / 2);
    x = round_to<Elem>(x);
  }
  return v;
}

// The selector's ranking score of every token of one unit, in double (independent of the
// selector's own float loop): sum over the unit's queries of q . k on the scored dims.
template <class Sel, class St>
std::vector<double> reference_scores(const Sel& sel, const St& st, const attention_shape& shape,
                                     const fasa::cpu::host_state& hs, const float* q_rot, int unit,
                                     std::int64_t n) {
  const fasa::unit_queries uq = fasa::cpu::make_unit_queries(shape, sel.granularity(), q_rot, unit);
  std::vector<int> dims;
  if constexpr (Sel::kind == fasa::score_kind::dot_dim_subset) {
    for (std::int32_t d : sel.score_dims(unit)) dims.push_back(d);
  } else {
    for (int d = 0; d < shape.head_dim; ++d) dims.push_back(d);
  }
  std::vector<double> s(static_cast<std::size_t>(n), 0.0);
  for (std::int64_t j = 0; j < n; ++j)
    for (int g = 0; g < uq.count; ++g)
      for (int d : dims)
        s[static_cast<std::size_t>(j)] +=
            static_cast<double>(uq.q[g * shape.head_dim + d]) *
            hs.cache[static_cast<std::size_t>(st.key_index(uq.kv_head, j, d))];
  return s;
}

// Tie-aware check of a GPU selection against double scores: k distinct in-range tokens, each
// scoring at least the k-th best minus the rounding slack, and every token scoring more than
// the k-th best plus the slack kept. Forced tokens must be in.
bool valid_selection(const std::vector<double>& s, const std::vector<std::int32_t>& got,
                     std::size_t k, const std::vector<std::int32_t>& forced, std::string& why) {
  std::set<std::int32_t> in(got.begin(), got.end());
  if (got.size() != k || in.size() != k) {
    why = "got " + std::to_string(got.size()) + " tokens (" + std::to_string(in.size()) +
          " distinct), want " + std::to_string(k);
    return false;
  }
  for (std::int32_t f : forced)
    if (!in.count(f)) return why = "forced token " + std::to_string(f) + " missing", false;
  std::vector<double> sorted;
  double scale = 0.0;
  for (std::size_t j = 0; j < s.size(); ++j) {
    scale = std::max(scale, std::abs(s[j]));
    if (std::find(forced.begin(), forced.end(), static_cast<std::int32_t>(j)) == forced.end())
      sorted.push_back(s[j]);
  }
  const std::size_t free_k = k - std::min(k, forced.size());
  if (free_k == 0) return true;
  std::sort(sorted.rbegin(), sorted.rend());
  const double kth = sorted[free_k - 1];
  const double slack = 1e-5 * scale + 1e-6;
  for (std::int32_t i : got) {
    if (i < 0 || static_cast<std::size_t>(i) >= s.size())
      return why = "token " + std::to_string(i) + " out of range", false;
    if (std::find(forced.begin(), forced.end(), i) == forced.end() && s[i] < kth - slack)
      return why = "kept token " + std::to_string(i) + " scores " + std::to_string(s[i]) +
                   " below the k-th best " + std::to_string(kth),
             false;
  }
  for (std::size_t j = 0; j < s.size(); ++j)
    if (s[j] > kth + slack && !in.count(static_cast<std::int32_t>(j)))
      return why = "token " + std::to_string(j) + " scores " + std::to_string(s[j]) +
                   " above the k-th best " + std::to_string(kth) + " but was left out",
             false;
  return true;
}

std::vector<std::int32_t> forced_list(const forced_tokens& f, std::int64_t n, std::int64_t k) {
  std::vector<std::int32_t> out;
  fasa::append_forced_tokens(f, n, k, out);
  return out;
}

// Runs one batched decode step on the GPU and checks it against the CPU reference.
template <class Elem, class Sel, class St>
void check_variant(const gpu_case& c, const Sel& sel, const St& st) {
  INFO(describe(c), " elem=", elem_traits<Elem>::name);
  const int batch = static_cast<int>(c.lengths.size());
  const int max_len = *std::max_element(c.lengths.begin(), c.lengths.end());
  const attention_shape shape{c.q_heads, c.kv_heads, c.head_dim, st.capacity()};
  REQUIRE(max_len <= shape.capacity);
  fasa::cuda::batch_decoder<Elem, Sel, St> dec(shape, batch, sel, st);
  dec.set_split_options(c.splits);
  const std::size_t row = static_cast<std::size_t>(c.kv_heads) * c.head_dim;
  std::vector<std::vector<float>> keys, values;
  for (int b = 0; b < batch; ++b) {
    const auto n = static_cast<std::size_t>(c.lengths[static_cast<std::size_t>(b)]);
    keys.push_back(random_rounded<Elem>(n * row, c.seed * 7919u + 2u * b, c.levels));
    values.push_back(random_rounded<Elem>(n * row, c.seed * 7919u + 2u * b + 1u, c.levels));
    dec.write_tokens(b, 0, keys.back(), values.back());
  }
  dec.set_lengths(c.lengths);
  if constexpr (Sel::kind != fasa::score_kind::none) {
    // The TIP path a case asks for must be what runs wherever it can (checked after
    // set_lengths: the cluster kernel's choice depends on the lengths).
    int device = 0, major = 0, sms = 0;
    FASA_CUDA_CHECK(cudaGetDevice(&device));
    FASA_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    FASA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    const int vectors = dec.score_width() * static_cast<int>(sizeof(Elem)) / 16;
    const bool lanes = vectors == 4 || vectors == 8 || vectors == 16;
    const int per_kv =
        c.granularity == selection_granularity::query_head ? c.q_heads / c.kv_heads : 1;
    // Bulk copies: sm_90, TIP on 4, 8 or 16 lanes per row, a KV head's scored rows back to back.
    // -1: 3 tiles where a row is scored for several units (query_head with GQA), else off.
    bool rows_back_to_back = true;
    if constexpr (std::is_same_v<St, fasa::storage::split_dominant>)
      rows_back_to_back = dec.score_width() == st.slab_width;
    int asked = c.splits.tip_bulk;
    if (asked < 0) asked = per_kv > 1 ? 3 : 0;
    CHECK(dec.tip_bulk_tiles() == (major >= 9 && rows_back_to_back && lanes ? asked : 0));
    // The one-kernel TIP + top-k: sm_90, 4, 8 or 16 vectors per scored row, at most 4 units per
    // KV head. Auto (-1) runs it where a KV head has one unit and the context is at most 32K
    // tokens or the (sequence, KV head) pairs are at least as many as the SMs.
    const bool cluster_can = major >= 9 && lanes && per_kv <= 4;
    const int blocks = dec.select_cluster_blocks();
    const bool auto_off =
        per_kv > 1 || (max_len > 32768 && c.kv_heads * static_cast<int>(c.lengths.size()) < sms);
    if (!cluster_can || c.splits.select_cluster == 0 || (c.splits.select_cluster < 0 && auto_off))
      CHECK(blocks == 0);
    else if (c.splits.select_cluster > 0)
      CHECK(blocks == c.splits.select_cluster);
    else
      CHECK((blocks == 2 || blocks == 4 || blocks == 8 || blocks == 16));
  }
  {
    // The attention split (plan_splits): the longest unit's tokens in at most max_splits splits
    // of `chunk` tokens (a multiple of 64, at least min_chunk), none of them empty. A unit of 64
    // tokens or fewer is one split, whose block writes the output itself (no merge kernel).
    std::int64_t count = max_len;
    if constexpr (Sel::kind != fasa::score_kind::none) count = sel.keep(max_len);
    const int splits = dec.max_splits(), chunk = dec.chunk();
    CHECK(chunk % 64 == 0);
    CHECK(chunk >= c.splits.min_chunk);
    CHECK((splits >= 1 && splits <= c.splits.max_splits));
    CHECK(std::int64_t{splits} * chunk >= count);
    CHECK(std::int64_t{splits - 1} * chunk < count);
    if (count <= 64) CHECK(splits == 1);
  }
  const std::size_t qrow = static_cast<std::size_t>(c.q_heads) * c.head_dim;
  const std::vector<float> q = fasa::test::random_vector(batch * qrow, c.seed * 31u + 5u);
  device_buffer<float> q_dev, out_dev(batch * qrow);
  // Two steps with other queries first: the block counters, histograms and top-k counts a step
  // uses must be back at zero for the next one.
  for (unsigned warm = 0; warm < 2; ++warm) {
    q_dev.upload(fasa::test::random_vector(batch * qrow, c.seed * 31u + 7u + warm));
    dec.decode(q_dev.data(), out_dev.data());
  }
  q_dev.upload(q);
  FASA_CUDA_CHECK(cudaMemset(out_dev.data(), 0xff, out_dev.bytes()));  // NaN poison
  dec.decode(q_dev.data(), out_dev.data());
  FASA_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<float> out = out_dev.download();

  using ref = fasa::backend_impl<fasa::backend::cpu_reference>;
  for (int b = 0; b < batch; ++b) {
    const std::int64_t n = c.lengths[static_cast<std::size_t>(b)];
    INFO("sequence ", b, " of length ", n);
    fasa::cpu::host_state hs;
    fasa::cpu::host_init(st, hs);
    for (std::int64_t t = 0; t < n; ++t)
      fasa::cpu::host_append(st, hs, t, keys[static_cast<std::size_t>(b)].data() + t * row,
                             values[static_cast<std::size_t>(b)].data() + t * row);
    const float* qb = q.data() + b * qrow;
    fasa::selection chosen;
    if constexpr (Sel::kind == fasa::score_kind::none) {
      chosen.all = true;
    } else {
      chosen.all = false;
      chosen.granularity = sel.granularity();
      chosen.units = dec.units();
      chosen.per_unit = sel.keep(n);
      const auto forced = forced_list(sel.forced(), n, chosen.per_unit);
      for (int u = 0; u < dec.units(); ++u) {
        const std::vector<std::int32_t> got = dec.selected(b, u);
        const std::vector<double> s = reference_scores(sel, st, shape, hs, qb, u, n);
        std::string why;
        INFO("unit ", u);
        CHECK_MESSAGE(
            valid_selection(s, got, static_cast<std::size_t>(chosen.per_unit), forced, why), why);
        chosen.tokens.insert(chosen.tokens.end(), got.begin(), got.end());
      }
    }
    std::vector<float> want(qrow);
    ref::attend(fasa::backend::cpu_reference{}, st, shape, hs, qb, n, chosen, want.data());
    const std::span<const float> got(out.data() + b * qrow, qrow);
    fasa::test::check_close(
        got, want, std::is_same_v<Elem, float> ? fasa::test::fp32_tol : fasa::test::bf16_tol,
        "attention output");
  }
}

// FASA-M (split_offload: the slab on the device, the rest and the values in mapped host memory)
// against FASA-C on the same tokens and queries: the same selections, and the same outputs up to
// the order of the summed rows (the top-k hands out output places by atomics, so the kept rows
// reach the attention in an order that varies from run to run, for FASA-C against itself too;
// FASA-M runs FASA-C's kernel instantiation on them): within 1e-3 + 1e-3 |x|, ten times tighter
// than the bf16 tolerance against the reference.
template <class Elem>
void check_offload_matches_fasa_c(const gpu_case& c, const fasa::dominant_plan& plan,
                                  bool table_in_shared, fasa::cuda::offload_fetch fetch) {
  INFO(describe(c), " elem=", elem_traits<Elem>::name, " (FASA-M against FASA-C, pool table in ",
       table_in_shared ? "shared" : "device", " memory, fetch ", fasa::cuda::name_of(fetch), ")");
  const int batch = static_cast<int>(c.lengths.size());
  const attention_shape& shape = plan.shape();
  const auto sel = plan.tip(c.budget, c.force);
  fasa::cuda::batch_decoder<Elem, fasa::selector::fasa_tip, fasa::storage::split_dominant> fc(
      shape, batch, sel, plan.storage());
  fasa::cuda::offload_options options{};
  options.table_in_shared = table_in_shared;
  options.fetch = fetch;
  if (fetch == fasa::cuda::offload_fetch::host_gather)  // 3 workers: a team, whatever the host
    options.team = std::make_shared<fasa::cuda::gather_team>(3);
  fasa::cuda::batch_decoder<Elem, fasa::selector::fasa_tip, fasa::storage::split_offload> fm(
      shape, batch, sel, plan.offload_storage(), fasa::cuda::shared_cache<Elem>{}, options);
  CHECK(fm.fetch() == fetch);
  fc.set_split_options(c.splits);
  fm.set_split_options(c.splits);
  // The GPU holds the slab and the working buffer only; the rest is pinned host memory.
  const std::size_t elem = sizeof(Elem);
  const int per_kv = c.granularity == selection_granularity::query_head ? shape.group_size() : 1;
  const std::int64_t pool = per_kv * sel.keep(shape.capacity);
  CHECK(fm.pool_rows() == pool);
  CHECK(fm.host_bytes() == static_cast<std::size_t>(batch) * shape.num_kv_heads * shape.capacity *
                               (2 * shape.head_dim - plan.slab_width()) * elem);
  const std::size_t pairs = static_cast<std::size_t>(batch) * shape.num_kv_heads;
  CHECK(fm.kv_device_bytes() ==
        pairs * shape.capacity * plan.slab_width() * elem +
            pairs * static_cast<std::size_t>(pool) * (2 * shape.head_dim * elem + 4));
  const std::size_t row = static_cast<std::size_t>(c.kv_heads) * c.head_dim;
  const auto write_both = [&](int b, std::int64_t t0, std::span<const float> k,
                              std::span<const float> v) {
    fc.write_tokens(b, t0, k, v);
    fm.write_tokens(b, t0, k, v);
  };
  for (int b = 0; b < batch; ++b) {
    const auto n = static_cast<std::size_t>(c.lengths[static_cast<std::size_t>(b)]);
    const auto k = random_rounded<Elem>(n * row, c.seed * 7919u + 2u * b, c.levels);
    const auto v = random_rounded<Elem>(n * row, c.seed * 7919u + 2u * b + 1u, c.levels);
    // Two writes per sequence (the second overwrites a middle part): both paths of write_tokens.
    write_both(b, 0, k, v);
    if (n >= 4) {
      const std::span<const float> ks(k.data() + row, row * 2), vs(v.data() + row, row * 2);
      write_both(b, 1, vs, ks);
    }
  }
  fc.set_lengths(c.lengths);
  fm.set_lengths(c.lengths);
  // The union of each (sequence, KV head)'s kept tokens at a step: the rows its pool must hold.
  using token_set = std::set<std::int32_t>;
  const auto unions = [&] {
    std::vector<token_set> u(pairs);
    for (int b = 0; b < batch; ++b)
      for (int unit = 0; unit < fc.units(); ++unit) {
        const auto kept = fc.selected(b, unit);
        const int kv = per_kv > 1 ? unit / per_kv : unit;
        u[static_cast<std::size_t>(b) * shape.num_kv_heads + kv].insert(kept.begin(), kept.end());
      }
    return u;
  };
  const auto count_new = [&](const std::vector<token_set>& now,
                             const std::vector<token_set>& held) {
    std::int64_t n = 0;
    for (std::size_t p = 0; p < now.size(); ++p)
      for (std::int32_t t : now[p]) n += held[p].count(t) == 0 ? 1 : 0;
    return n;
  };
  const std::size_t qrow = static_cast<std::size_t>(c.q_heads) * c.head_dim;
  device_buffer<float> q_dev, out_c(batch * qrow), out_m(batch * qrow);
  std::vector<token_set> held(pairs), last(pairs);  // what the pool holds at least, last step's
  for (unsigned step = 0; step < 4; ++step) {
    INFO("step ", step);
    if (step == 2) {  // rewrite the first tokens: the pool's copies of them must not be used
      for (int b = 0; b < batch; ++b) {
        const auto n = std::min<std::size_t>(4, c.lengths[static_cast<std::size_t>(b)]);
        const auto k = random_rounded<Elem>(n * row, c.seed * 131u + 5u * b, c.levels);
        const auto v = random_rounded<Elem>(n * row, c.seed * 131u + 5u * b + 1u, c.levels);
        write_both(b, 0, k, v);
        for (int p = 0; p < shape.num_kv_heads; ++p)
          for (std::int32_t t = 0; t < static_cast<std::int32_t>(n); ++t) {
            held[static_cast<std::size_t>(b * shape.num_kv_heads + p)].erase(t);
            last[static_cast<std::size_t>(b * shape.num_kv_heads + p)].erase(t);
          }
      }
    }
    if (step == 3) {  // every row must cross again
      fm.forget_pool_share(1.0, 7);
      for (auto& h : held) h.clear();
      for (auto& l : last) l.clear();
    }
    q_dev.upload(fasa::test::random_vector(batch * qrow, c.seed * 31u + 11u + step));
    FASA_CUDA_CHECK(cudaMemset(out_c.data(), 0xff, out_c.bytes()));
    FASA_CUDA_CHECK(cudaMemset(out_m.data(), 0xff, out_m.bytes()));
    fc.decode(q_dev.data(), out_c.data());
    fm.decode(q_dev.data(), out_m.data());
    FASA_CUDA_CHECK(cudaDeviceSynchronize());
    for (int b = 0; b < batch; ++b)
      for (int u = 0; u < fc.units(); ++u) CHECK(fc.selected(b, u) == fm.selected(b, u));
    // Rows over the bus: each pair's kept tokens the pool did not hold, each once. The pool
    // holds at least the last step's union (it has room for it) and at most every row fetched
    // since it was last emptied, so the count lies between the two (equal at steps 0, 1, 3).
    const auto now = unions();
    const std::int64_t fetched = fm.fetched_rows();
    CHECK(fetched <= count_new(now, last));
    CHECK(fetched >= count_new(now, held));
    if (step != 2) CHECK(fetched == count_new(now, last));
    for (std::size_t p = 0; p < pairs; ++p) held[p].insert(now[p].begin(), now[p].end());
    last = now;
    const std::vector<float> oc = out_c.download(), om = out_m.download();
    double diff = 0;
    for (std::size_t i = 0; i < oc.size(); ++i)
      diff = std::max(diff, static_cast<double>(std::abs(oc[i] - om[i])));
    INFO("largest |FASA-M - FASA-C| ", diff);
    fasa::test::check_close(om, oc, fasa::test::tolerance{1e-3, 1e-3}, "FASA-M against FASA-C");
    // With the kept lists sorted (the default, up to kernels::sort_max_kept tokens a unit) both
    // sum the same rows in the same order: the same bits.
    if (c.splits.sort_selection && sel.keep(shape.capacity) <= fasa::cuda::kernels::sort_max_kept) {
      std::size_t differ = 0;
      for (std::size_t i = 0; i < oc.size(); ++i)
        differ += std::memcmp(&oc[i], &om[i], sizeof(float)) != 0 ? 1 : 0;
      CHECK_MESSAGE(differ == 0, differ, " of ", oc.size(),
                    " outputs differ from FASA-C's in some bit");
    }
    CHECK(std::none_of(om.begin(), om.end(), [](float x) { return std::isnan(x); }));
  }
}

int capacity_for(const gpu_case& c) {
  return *std::max_element(c.lengths.begin(), c.lengths.end()) + 3;
}

// The compositions of one case: dense, oracle and TIP on a contiguous cache, TIP and the
// oracle on a split_dominant cache (FASA-C).
template <class Elem>
void check_all_variants(const gpu_case& c) {
  const attention_shape shape{c.q_heads, c.kv_heads, c.head_dim, capacity_for(c)};
  const auto pe = fasa::positional::rope::interleaved(c.head_dim, 10000.0);
  const fasa::dominant_plan plan(pe, shape, c.granularity, random_fcs(c, c.seed), 8);
  const auto contiguous = fasa::storage::contiguous::for_shape(shape);
  fasa::selector::oracle_topk oracle;
  oracle.budget = c.budget;
  oracle.mode = c.granularity;
  oracle.force = c.force;
  SUBCASE("dense, contiguous") { check_variant<Elem>(c, fasa::selector::dense{}, contiguous); }
  SUBCASE("oracle, contiguous") { check_variant<Elem>(c, oracle, contiguous); }
  SUBCASE("fasa_tip, contiguous") {
    check_variant<Elem>(c, plan.tip(c.budget, c.force), contiguous);
  }
  SUBCASE("fasa_tip, split_dominant (FASA-C)") {
    check_variant<Elem>(c, plan.tip(c.budget, c.force), plan.storage());
  }
  SUBCASE("oracle, split_dominant") { check_variant<Elem>(c, oracle, plan.storage()); }
  if (plan.slab_width() < c.head_dim) {
    SUBCASE("fasa_tip, split_offload (FASA-M)") {
      check_variant<Elem>(c, plan.tip(c.budget, c.force), plan.offload_storage());
      static int calls = 0;  // every other case with the pool's table in device memory
      const bool shared_table = calls++ % 2 == 0;
      check_offload_matches_fasa_c<Elem>(c, plan, shared_table,
                                         fasa::cuda::offload_fetch::zero_copy);
      check_offload_matches_fasa_c<Elem>(c, plan, !shared_table,
                                         fasa::cuda::offload_fetch::host_gather);
    }
  }
}

// ---- SparseAttention<..., backend::cuda<E>> -----------------------------------------------

// The reference's state with every cached value rounded as the GPU cache stores it.
template <class Elem>
fasa::cpu::host_state rounded_state(const fasa::cpu::host_state& s) {
  fasa::cpu::host_state r = s;
  for (auto& x : r.cache) x = round_to<Elem>(x);
  return r;
}

// Runs one composition on the GPU and on the reference backend side by side: a prefill of
// `prefill` tokens, `steps` decode steps, then reset() and a shorter prefill + two steps. The
// reference's cache (rounded to the GPU's element type) is the oracle: prefill outputs are
// its causal attention, each decode step's selection must be a valid top-k of scores
// recomputed in double from it, and the output its attention over that selection.
template <fasa::backend::device_element E, class Sel, class St>
void check_sparse_attention(const attention_shape& shape, const Sel& sel, const St& st, int prefill,
                            int steps, std::uint32_t seed) {
  using Elem = fasa::cuda::detail::element_t<E>;
  using ref_impl = fasa::backend_impl<fasa::backend::cpu_reference>;
  const auto pe = fasa::positional::rope::interleaved(shape.head_dim, 10000.0);
  fasa::SparseAttention<fasa::positional::rope, Sel, St, fasa::backend::cuda<E>> gpu(shape, pe, sel,
                                                                                     st);
  fasa::SparseAttention<fasa::positional::rope, Sel, St, fasa::backend::cpu_reference> ref(
      shape, pe, sel, st);
  const std::size_t qrow = static_cast<std::size_t>(shape.num_q_heads) * shape.head_dim;
  const std::size_t kvrow = static_cast<std::size_t>(shape.num_kv_heads) * shape.head_dim;
  const auto tol = std::is_same_v<Elem, float> ? fasa::test::fp32_tol : fasa::test::bf16_tol;
  const auto rotated = [&](const float* q, std::int64_t pos) {
    std::vector<float> r(q, q + qrow);
    for (int h = 0; h < shape.num_q_heads; ++h) pe.rotate(r.data() + h * shape.head_dim, pos);
    return r;
  };
  for (int round = 0; round < 2; ++round) {
    const int n0 = round == 0 ? prefill : prefill / 3;
    INFO("round ", round, " (prefill ", n0, ")");
    const auto q = fasa::test::random_vector(n0 * qrow, seed + 10u * round + 1u);
    const auto k = fasa::test::random_vector(n0 * kvrow, seed + 10u * round + 2u);
    const auto v = fasa::test::random_vector(n0 * kvrow, seed + 10u * round + 3u);
    std::vector<float> out_gpu(q.size(), std::nanf("")), out_ref(q.size());
    gpu.prefill(q, k, v, out_gpu);
    ref.prefill(q, k, v, out_ref);
    {
      const fasa::cpu::host_state hs = rounded_state<Elem>(ref.backend_state());
      std::vector<float> q_rot;
      for (int i = 0; i < n0; ++i) {
        const auto r = rotated(q.data() + i * qrow, i);
        q_rot.insert(q_rot.end(), r.begin(), r.end());
      }
      std::vector<float> want(q.size());
      ref_impl::prefill(fasa::backend::cpu_reference{}, st, shape, hs, q_rot.data(), 0, n0,
                        want.data());
      fasa::test::check_close(out_gpu, want, tol, "prefill output");
    }
    const int last_round_steps = round == 0 ? steps : 2;
    for (int step = 0; step < last_round_steps; ++step) {
      const std::int64_t pos = gpu.size();
      INFO("decode step at position ", pos);
      const auto qs = fasa::test::random_vector(qrow, seed + 1000u + 7u * step + 100u * round);
      const auto ks = fasa::test::random_vector(kvrow, seed + 1001u + 7u * step + 100u * round);
      const auto vs = fasa::test::random_vector(kvrow, seed + 1002u + 7u * step + 100u * round);
      std::vector<float> o_gpu(qrow, std::nanf("")), o_ref(qrow);
      const fasa::step_stats stats = gpu.decode(qs, ks, vs, o_gpu);
      ref.decode(qs, ks, vs, o_ref);
      const std::int64_t t = pos + 1;
      CHECK(stats.context == t);
      const fasa::cpu::host_state hs = rounded_state<Elem>(ref.backend_state());
      const auto q_rot = rotated(qs.data(), pos);
      const fasa::selection& chosen = gpu.last_selection();
      if (!chosen.all) {
        CHECK(chosen.per_unit == sel.keep(t));
        for (int u = 0; u < chosen.units; ++u) {
          INFO("unit ", u);
          const auto span = chosen.unit_tokens(u);
          const std::vector<std::int32_t> got(span.begin(), span.end());
          CHECK(std::is_sorted(got.begin(), got.end()));
          std::string why;
          CHECK_MESSAGE(valid_selection(reference_scores(sel, st, shape, hs, q_rot.data(), u, t),
                                        got, static_cast<std::size_t>(chosen.per_unit), {}, why),
                        why);
        }
      }
      std::vector<float> want(qrow);
      ref_impl::attend(fasa::backend::cpu_reference{}, st, shape, hs, q_rot.data(), t, chosen,
                       want.data());
      fasa::test::check_close(o_gpu, want, tol, "decode output");
    }
    gpu.reset();
    ref.reset();
  }
}

template <fasa::backend::device_element E>
void check_sparse_attention_compositions(const attention_shape& shape, std::uint32_t seed) {
  const auto pe = fasa::positional::rope::interleaved(shape.head_dim, 10000.0);
  const auto contiguous = fasa::storage::contiguous::for_shape(shape);
  {
    INFO("dense");
    check_sparse_attention<E>(shape, fasa::selector::dense{}, contiguous, 301, 3, seed);
  }
  for (auto g : {selection_granularity::query_head, selection_granularity::kv_head}) {
    INFO("granularity ", fasa::to_string(g));
    gpu_case c;
    c.head_dim = shape.head_dim;
    c.q_heads = shape.num_q_heads;
    c.kv_heads = shape.num_kv_heads;
    c.granularity = g;
    const fasa::dominant_plan plan(pe, shape, g, random_fcs(c, seed),
                                   fasa::backend::cuda<E>::slab_multiple);
    fasa::selector::oracle_topk oracle;
    oracle.budget = token_budget::tokens(40);
    oracle.mode = g;
    {
      INFO("oracle, 40 tokens");
      check_sparse_attention<E>(shape, oracle, contiguous, 301, 3, seed);
    }
    {
      INFO("fasa_c, 40 tokens");
      check_sparse_attention<E>(shape, plan.tip(token_budget::tokens(40)), plan.storage(), 301, 4,
                                seed);
    }
    {
      INFO("fasa_c, 10 %");
      check_sparse_attention<E>(shape, plan.tip(token_budget::fraction(0.1)), plan.storage(), 650,
                                3, seed);
    }
    if (plan.slab_width() < shape.head_dim) {  // FASA-M: its tiers, row pool and dense copies
      {
        INFO("fasa_m, 40 tokens");
        check_sparse_attention<E>(shape, plan.tip(token_budget::tokens(40)), plan.offload_storage(),
                                  301, 6, seed);
      }
      {
        INFO("fasa_m, a budget covering the cache (dense steps)");
        check_sparse_attention<E>(shape, plan.tip(token_budget::tokens(100000)),
                                  plan.offload_storage(), 120, 2, seed);
      }
    }
  }
}

bool have_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

}  // namespace

TEST_CASE("cuda: variants against the CPU reference, GQA 4, head_dim 128, bf16") {
  gpu_case c;
  // TIP and the top-k as one cluster kernel (by default under kv_head) and as three kernels.
  for (int cluster : {-1, 0})
    for (auto g : {selection_granularity::query_head, selection_granularity::kv_head}) {
      c.granularity = g;
      c.splits.select_cluster = cluster;
      for (auto budget : {token_budget::tokens(5), token_budget::tokens(64),
                          token_budget::tokens(100000), token_budget::fraction(0.1)}) {
        c.budget = budget;
        check_all_variants<__nv_bfloat16>(c);
      }
    }
  // Every cluster size, with blocks whose run of rows is empty (16 blocks of 256 rows over
  // 1,031 tokens) and a budget that leaves large candidate lists; the bins of the k-th best
  // found by every block from block 0's counts and by block 0 alone (select_lead_from).
  for (int cluster : {2, 4, 8, 16})
    for (int lead_from : {0, cluster})
      for (auto g : {selection_granularity::query_head, selection_granularity::kv_head}) {
        c.granularity = g;
        c.splits.select_cluster = cluster;
        c.splits.select_lead_from = lead_from;
        c.budget = token_budget::tokens(cluster == 16 ? 700 : 64);
        check_all_variants<__nv_bfloat16>(c);
      }
  c.splits.select_lead_from = 0;
  // One split per unit for every budget: the attention kernel walks a unit's whole selection
  // (or, dense, its whole context) and writes the output itself, with no merge.
  c.splits.max_splits = 1;
  for (auto budget : {token_budget::tokens(700), token_budget::fraction(0.5)}) {
    c.budget = budget;
    check_all_variants<__nv_bfloat16>(c);
  }
  // The kept lists in the top-k's own order (no sort_kept, which every other case runs).
  c.splits.max_splits = 16;
  c.splits.sort_selection = false;
  for (auto budget : {token_budget::tokens(64), token_budget::fraction(0.1)}) {
    c.budget = budget;
    check_all_variants<__nv_bfloat16>(c);
  }
  c.splits.sort_selection = true;
  // The three-kernel path's options from here on (select_cluster 0).
  // Many short splits: every unit's merge by its last split block; as many TIP blocks as rows
  // allow, each one pass.
  c.splits = fasa::cuda::split_options{64.0, 64.0, 1, 1000, 64.0};
  c.splits.select_cluster = 0;
  c.budget = token_budget::tokens(700);
  check_all_variants<__nv_bfloat16>(c);
  // One TIP block per (sequence, KV head), striding over every row.
  c.splits = fasa::cuda::split_options{4.0, 2.0, 64, 16, 1e-6};
  c.splits.select_cluster = 0;
  check_all_variants<__nv_bfloat16>(c);
  // TIP's loads through the cp.async ring (by default under query_head only) and through
  // registers, in both modes, with one block and with one wave of blocks.
  for (auto g : {selection_granularity::query_head, selection_granularity::kv_head})
    for (int stages : {0, 3})
      for (double waves : {1e-6, 1.0}) {
        c.granularity = g;
        c.splits = fasa::cuda::split_options{4.0, 2.0, 64, 16, waves, stages, 0, -1, 0};
        c.budget = waves < 1 ? token_budget::tokens(700) : token_budget::fraction(0.1);
        check_all_variants<__nv_bfloat16>(c);
      }
  // TIP's loads as bulk copies through rings of 2 to 4 tiles, both modes, one block (every
  // tile through the ring's slots many times) and one wave.
  for (auto g : {selection_granularity::query_head, selection_granularity::kv_head})
    for (int tiles : {2, 3, 4})
      for (double waves : {1e-6, 1.0}) {
        c.granularity = g;
        c.splits = fasa::cuda::split_options{4.0, 2.0, 64, 16, waves, -1, tiles, -1, 0};
        c.budget = waves < 1 ? token_budget::tokens(700) : token_budget::fraction(0.1);
        check_all_variants<__nv_bfloat16>(c);
      }
  // Programmatic dependent launch: every kernel of a step may start before the one before it
  // ends (each waits for it first); with many short splits (the merge), both TIP paths and the
  // cluster kernel.
  for (auto g : {selection_granularity::query_head, selection_granularity::kv_head})
    for (int bulk : {0, 3, -1}) {
      c.granularity = g;
      c.splits = fasa::cuda::split_options{64.0, 64.0, 1, 1000, 1.0, -1, bulk, 1, 0};
      if (bulk < 0) c.splits.select_cluster = 8;
      c.budget = token_budget::tokens(64);
      check_all_variants<__nv_bfloat16>(c);
    }
}

TEST_CASE("cuda: variants against the CPU reference, fp16, GQA 1, 3 and 8, head_dim 64") {
  gpu_case c;
  c.head_dim = 64;
  for (auto [q, kv] : {std::pair{8, 8}, std::pair{3, 1}, std::pair{16, 2}}) {
    c.q_heads = q;
    c.kv_heads = kv;
    c.lengths = {5, 1, 333, 2049};
    c.budget = token_budget::tokens(100);
    for (auto g : {selection_granularity::query_head, selection_granularity::kv_head})
      for (int bulk : {0, 2}) {  // whole d-64 rows of the contiguous cache: 8 lanes per row
        c.granularity = g;
        c.splits.tip_bulk = bulk;
        c.splits.select_cluster = bulk == 0 ? 8 : 0;  // 3 query heads per KV head: UMAX 4
        check_all_variants<__half>(c);
      }
  }
}

TEST_CASE("cuda: head_dim 128 with GQA 8, fp16, and head_dim 64 with bf16") {
  gpu_case c;
  c.q_heads = 16;
  c.kv_heads = 2;
  c.lengths = {700, 3};
  c.n_tip = 16;
  check_all_variants<__half>(c);  // eight units per KV head: the three-kernel path
  c.splits.tip_bulk = 4;          // eight units per row and a ring of four tiles
  check_all_variants<__half>(c);
  c.splits.tip_bulk = 0;
  c.granularity = selection_granularity::kv_head;  // the cluster kernel at GQA 8, fp16
  check_all_variants<__half>(c);
  c.granularity = selection_granularity::query_head;
  c.head_dim = 64;
  c.q_heads = 6;
  c.kv_heads = 2;
  c.n_tip = 4;
  check_all_variants<__nv_bfloat16>(c);
}

TEST_CASE("cuda: exact ties keep the lowest indices, forced tokens come first") {
  gpu_case c;
  c.levels = 4;  // keys from {-1, -0.5, 0, 0.5, 1}: many tokens share a score
  c.lengths = {1500, 64, 9};
  c.budget = token_budget::tokens(40);
  for (int cluster : {-1, 0, 16}) {  // ties across the blocks of a cluster
    c.splits.select_cluster = cluster;
    check_all_variants<__nv_bfloat16>(c);
  }
  c.splits.select_lead_from = 2;  // each pass's bin found by block 0 alone
  for (int cluster : {2, 16}) {
    c.splits.select_cluster = cluster;
    check_all_variants<__nv_bfloat16>(c);
  }
  c.splits.select_lead_from = 0;
  c.splits.select_cluster = 0;
  c.splits.tip_bulk = 3;
  check_all_variants<__nv_bfloat16>(c);
  c.levels = 0;
  c.force = forced_tokens{4, 8, true};
  check_all_variants<__nv_bfloat16>(c);
  c.splits.tip_bulk = 0;
  check_all_variants<__nv_bfloat16>(c);
  c.splits.pdl = 1;
  check_all_variants<__nv_bfloat16>(c);
  c.splits.select_cluster = -1;
  check_all_variants<__nv_bfloat16>(c);
}

TEST_CASE("cuda: top-k over 128K+ tokens (Llama-3.1-8B group shape)") {
  gpu_case c;
  c.q_heads = 8;
  c.kv_heads = 2;
  c.lengths = {131072 + 17, 40000};
  c.n_tip = 16;
  c.budget = token_budget::tokens(2048);
  const attention_shape shape{c.q_heads, c.kv_heads, c.head_dim, capacity_for(c)};
  const auto pe = fasa::positional::rope::interleaved(c.head_dim, 500000.0);
  for (auto g : {selection_granularity::query_head, selection_granularity::kv_head}) {
    c.granularity = g;
    const fasa::dominant_plan plan(pe, shape, g, random_fcs(c, 3), 8);
    for (int bulk : {0, 3}) {
      c.splits.tip_bulk = bulk;
      c.splits.select_cluster = 0;
      check_variant<__nv_bfloat16>(c, plan.tip(c.budget), plan.storage());
    }
    for (int cluster : {-1, 2, 16}) {
      c.splits.select_cluster = cluster;
      for (int lead_from : {0, 2}) {
        c.splits.select_lead_from = lead_from;
        check_variant<__nv_bfloat16>(c, plan.tip(c.budget), plan.storage());
      }
    }
    c.splits.select_lead_from = 0;
  }
}

TEST_CASE("cuda: bad input is refused with a message") {
  const attention_shape shape{4, 2, 96, 64};
  const auto contiguous = fasa::storage::contiguous::for_shape(shape);
  CHECK_THROWS_WITH_AS(
      (fasa::cuda::batch_decoder<__nv_bfloat16, fasa::selector::dense, fasa::storage::contiguous>(
          shape, 1, {}, contiguous)),
      doctest::Contains("head_dim 64 and 128"), fasa::error);
  const attention_shape ok{4, 2, 64, 64};
  fasa::cuda::batch_decoder<__nv_bfloat16, fasa::selector::dense, fasa::storage::contiguous> dec(
      ok, 2, {}, fasa::storage::contiguous::for_shape(ok));
  CHECK_THROWS_WITH_AS(dec.set_lengths(std::vector<int>{3, 65}),
                       doctest::Contains("must be in [1, capacity = 64]"), fasa::error);
  CHECK_THROWS_WITH_AS(dec.set_lengths(std::vector<int>{3}), doctest::Contains("1 lengths"),
                       fasa::error);
  CHECK_THROWS_WITH_AS(dec.set_split_options(fasa::cuda::split_options{0.0, 2.0, 64, 32}),
                       doctest::Contains("tip_waves must be > 0"), fasa::error);
  CHECK_THROWS_WITH_AS(dec.set_split_options(fasa::cuda::split_options{4.0, 2.0, 64, 32, 0.0}),
                       doctest::Contains("tip_waves must be > 0"), fasa::error);
  CHECK_THROWS_WITH_AS(dec.set_split_options(fasa::cuda::split_options{4.0, 2.0, 64, 32, 1.0, 2}),
                       doctest::Contains("tip_stages must be -1"), fasa::error);
  CHECK_THROWS_WITH_AS(
      dec.set_split_options(fasa::cuda::split_options{4.0, 2.0, 64, 32, 1.0, -1, 1}),
      doctest::Contains("tip_bulk must be -1"), fasa::error);
  CHECK_THROWS_WITH_AS(
      dec.set_split_options(fasa::cuda::split_options{4.0, 2.0, 64, 32, 1.0, -1, -1, 2}),
      doctest::Contains("pdl must be -1"), fasa::error);
  CHECK_THROWS_WITH_AS(
      dec.set_split_options(fasa::cuda::split_options{4.0, 2.0, 64, 32, 1.0, -1, -1, -1, 3}),
      doctest::Contains("select_cluster must be -1"), fasa::error);
  CHECK_THROWS_WITH_AS(
      dec.set_split_options(fasa::cuda::split_options{4.0, 2.0, 64, 32, 1.0, -1, -1, -1, -1, 3}),
      doctest::Contains("select_lead_from must be 0"), fasa::error);
  CHECK_THROWS_WITH_AS(dec.decode(nullptr, nullptr), doctest::Contains("set_lengths first"),
                       fasa::error);
  const auto pe = fasa::positional::rope::interleaved(64, 10000.0);
  const fasa::dominant_plan unaligned(pe, ok, selection_granularity::kv_head,
                                      {{1, 2, 3}, {4, 5, 6}});
  CHECK_THROWS_WITH_AS((fasa::cuda::batch_decoder<__nv_bfloat16, fasa::selector::fasa_tip,
                                                  fasa::storage::split_dominant>(
                           ok, 1, unaligned.tip(token_budget::tokens(4)), unaligned.storage())),
                       doctest::Contains("slab_multiple = 8"), fasa::error);
}

TEST_CASE("cuda: SparseAttention on backend::cuda against the reference backend, fp32, d 64") {
  check_sparse_attention_compositions<fasa::backend::device_element::fp32>(
      attention_shape{8, 2, 64, 700}, 11u);
}

TEST_CASE("cuda: SparseAttention on backend::cuda against the reference backend, bf16, d 128") {
  check_sparse_attention_compositions<fasa::backend::device_element::bf16>(
      attention_shape{9, 3, 128, 700}, 12u);
}

TEST_CASE("cuda: backend::cuda refuses what it cannot run, with a message") {
  const attention_shape shape{4, 2, 64, 64};
  const auto pe = fasa::positional::rope::interleaved(64, 10000.0);
  // A plan whose slab is not whole 16-byte vectors of bf16.
  const fasa::dominant_plan unaligned(pe, shape, selection_granularity::kv_head,
                                      {{1, 2, 3}, {4, 5, 6}});
  fasa::SparseAttention<fasa::positional::rope, fasa::selector::fasa_tip,
                        fasa::storage::split_dominant, fasa::backend::cuda<>>
      attn(shape, pe, unaligned.tip(token_budget::tokens(4)), unaligned.storage());
  const auto kv = fasa::test::random_vector(10 * 2 * 64, 3u);
  attn.append(kv, kv);
  std::vector<float> q(4 * 64, 0.5f), k(2 * 64, 0.5f), out(4 * 64);
  CHECK_THROWS_WITH_AS(attn.decode(q, k, k, out), doctest::Contains("slab_multiple = 8"),
                       fasa::error);
  // attend() over a selection that its select() did not make.
  using impl = fasa::backend_impl<fasa::backend::cuda<>>;
  const auto contiguous = fasa::storage::contiguous::for_shape(shape);
  impl::state s;
  impl::init({}, contiguous, s);
  impl::append({}, contiguous, s, 0, k.data(), k.data());
  fasa::selection foreign;
  foreign.all = false;
  foreign.units = 2;
  foreign.per_unit = 1;
  foreign.tokens = {0, 0};
  CHECK_THROWS_WITH_AS(impl::attend({}, contiguous, shape, s, q.data(), 1, foreign, out.data()),
                       doctest::Contains("runs with the select() that made it"), fasa::error);
}

int main(int argc, char** argv) {
  if (!have_gpu()) {
    std::printf("fasa_gpu_tests: skipped: no CUDA device is visible on this machine\n");
    return 77;
  }
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
