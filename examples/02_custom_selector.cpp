// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
// Example 02: a TokenSelector written outside the library, composed with the library's RoPE,
// contiguous storage and reference backend. It is StreamingLLM's rule (Xiao et al. 2023):
// keep a few "attention sink" tokens at the start and the most recent ones, ignore the rest.
// Nothing in the library changes to admit it: it opts in with a policy tag and models the
// TokenSelector concept of fasa/policies/concepts.hpp.

#include <cstdio>
#include <random>
#include <vector>

#include "fasa/fasa.hpp"

// The new policy: a small trivially-copyable value.
struct streaming_window {
  using policy_tag = fasa::token_selector_tag;                        // opt in
  static constexpr fasa::score_kind kind = fasa::score_kind::custom;  // no dot products

  std::int64_t budget = 64;  // sinks + recent window
  int sinks = 4;

  fasa::selection_granularity granularity() const { return fasa::selection_granularity::kv_head; }
  std::int64_t keep(std::int64_t t) const { return budget < t ? budget : t; }
  // The sinks are forced in; the rest of the budget goes to the highest scores, see score().
  fasa::forced_tokens forced() const { return {sinks, 0, false}; }
  // Rank by recency: the most recent tokens score highest. Keys are not read at all.
  template <class Keys>
  float score(const fasa::unit_queries&, const Keys&, std::int64_t j) const {
    return static_cast<float>(j);
  }
  void validate(const fasa::attention_shape& shape) const {
    shape.validate();
    FASA_CHECK(budget > sinks, "streaming_window: budget (", budget, ") must exceed sinks (", sinks,
               ")");
  }
};
static_assert(fasa::TokenSelector<streaming_window>);

int main() {
  using namespace fasa;
  const attention_shape shape{8, 2, 64, 1024};  // 8 query heads sharing 2 KV heads
  const auto pe = positional::rope::interleaved(shape.head_dim, 10000.0);

  using streaming = SparseAttention<positional::rope, streaming_window, storage::contiguous,
                                    backend::cpu_reference>;
  streaming stream(shape, pe, streaming_window{64, 4}, storage::contiguous::for_shape(shape));
  auto full = make_dense<backend::cpu_reference>(shape, pe);

  std::mt19937 gen(2);
  std::normal_distribution<float> normal;
  auto random = [&](std::size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = normal(gen);
    return v;
  };
  const auto q_size = static_cast<std::size_t>(shape.num_q_heads * shape.head_dim);
  const auto kv_size = static_cast<std::size_t>(shape.num_kv_heads * shape.head_dim);
  std::vector<float> out_stream(q_size), out_full(q_size);
  for (int step = 0; step < 512; ++step) {
    const auto q = random(q_size), k = random(kv_size), v = random(kv_size);
    stream.decode(q, k, v, out_stream);
    full.decode(q, k, v, out_full);
  }
  const auto& sel = stream.last_selection();
  std::printf("streaming_window after 512 tokens keeps %lld per KV head:",
              static_cast<long long>(sel.per_unit));
  for (int i = 0; i < 6; ++i) std::printf(" %d", sel.unit_tokens(0)[static_cast<std::size_t>(i)]);
  std::printf(" ... %d\n", sel.unit_tokens(0)[static_cast<std::size_t>(sel.per_unit - 1)]);
  double err = 0, ref = 0;
  for (std::size_t i = 0; i < q_size; ++i) {
    err = std::max(err, static_cast<double>(std::abs(out_stream[i] - out_full[i])));
    ref = std::max(ref, static_cast<double>(std::abs(out_full[i])));
  }
  std::printf("relative error against dense attention: %.3f (random data has no recency bias)\n",
              err / ref);
  return 0;
}
