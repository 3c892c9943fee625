// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
// Budgets and the host top-k (TopK-I of FASA Eq. 7), against brute force.

#include <algorithm>
#include <numeric>

#include "fasa/core/budget.hpp"
#include "fasa/core/shape.hpp"
#include "fasa/core/topk.hpp"
#include "support.hpp"

using fasa::forced_tokens;
using fasa::token_budget;

TEST_CASE("budget: absolute, fractional, all, and a budget >= t keeps everything") {
  CHECK(token_budget::tokens(256).keep(1000) == 256);
  CHECK(token_budget::tokens(256).keep(100) == 100);
  CHECK(token_budget::tokens(1).keep(1) == 1);
  CHECK(token_budget::fraction(0.1).keep(1000) == 100);
  CHECK(token_budget::fraction(0.1).keep(1001) == 101);  // ceil
  CHECK(token_budget::fraction(0.1).keep(3) == 1);       // at least one
  CHECK(token_budget::fraction(1.0).keep(77) == 77);
  CHECK(token_budget::all().keep(12345) == 12345);
}

TEST_CASE("budget: bad budgets name the problem") {
  CHECK_THROWS_WITH_AS(token_budget::tokens(0), doctest::Contains("at least 1 token, got 0"),
                       fasa::error);
  CHECK_THROWS_WITH_AS(token_budget::tokens(-5), doctest::Contains("got -5"), fasa::error);
  CHECK_THROWS_WITH_AS(token_budget::fraction(0.0), doctest::Contains("(0, 1]"), fasa::error);
  CHECK_THROWS_WITH_AS(token_budget::fraction(1.5), doctest::Contains("got 1.5"), fasa::error);
  CHECK_THROWS_AS(token_budget::fraction(std::nan("")), fasa::error);
}

TEST_CASE("shape: GQA and sizes are validated") {
  CHECK_NOTHROW(fasa::attention_shape{32, 8, 128, 10}.validate());
  CHECK_THROWS_WITH_AS((fasa::attention_shape{9, 2, 64, 10}.validate()),
                       doctest::Contains("multiple of num_kv_heads"), fasa::error);
  CHECK_THROWS_WITH_AS((fasa::attention_shape{8, 2, 0, 10}.validate()),
                       doctest::Contains("head_dim=0"), fasa::error);
  CHECK(fasa::attention_shape{12, 4, 64, 1}.kv_head_of(11) == 3);
}

TEST_CASE("topk: equals a brute-force full sort, tie-aware, for many sizes") {
  std::vector<std::int32_t> out, scratch;
  for (std::size_t t : {1u, 2u, 7u, 97u, 1000u, 4099u}) {
    // coarse values so that ties are common
    auto scores = fasa::test::random_vector(t, static_cast<std::uint32_t>(t));
    for (auto& s : scores) s = std::round(s * 4.0f) / 4.0f;
    for (std::int64_t k :
         {std::int64_t{1}, std::int64_t{5}, std::int64_t{64}, static_cast<std::int64_t>(t)}) {
      fasa::select_top_k(scores, k, {}, out, scratch);
      const auto kk =
          static_cast<std::size_t>(std::min<std::int64_t>(k, static_cast<std::int64_t>(t)));
      std::string why;
      INFO("t=", t, " k=", k);
      CHECK(fasa::test::is_valid_topk(scores, out, kk, &why));
      INFO(why);
      CHECK(std::is_sorted(out.begin(), out.end()));
      // brute force with the documented tie rule: (score desc, index asc)
      std::vector<std::int32_t> all(t);
      std::iota(all.begin(), all.end(), 0);
      std::stable_sort(all.begin(), all.end(), [&](auto a, auto b) {
        return scores[static_cast<std::size_t>(a)] > scores[static_cast<std::size_t>(b)];
      });
      all.resize(kk);
      std::sort(all.begin(), all.end());
      CHECK(out == all);
    }
  }
}

TEST_CASE("topk: forced tokens come first and take budget slots") {
  std::vector<float> scores(100);
  std::iota(scores.begin(), scores.end(), 0.0f);  // later tokens score higher
  std::vector<std::int32_t> out, scratch;
  forced_tokens f;
  f.sinks = 3;
  fasa::select_top_k(scores, 5, f, out, scratch);
  CHECK(out == std::vector<std::int32_t>{0, 1, 2, 98, 99});
  // reversed scores: recent tokens must still be kept
  std::reverse(scores.begin(), scores.end());
  forced_tokens r;
  r.recent = 2;
  fasa::select_top_k(scores, 4, r, out, scratch);
  CHECK(out == std::vector<std::int32_t>{0, 1, 98, 99});
  // more forced tokens than budget: current first, then sinks
  forced_tokens many;
  many.current = true;
  many.sinks = 10;
  fasa::select_top_k(scores, 3, many, out, scratch);
  CHECK(out == std::vector<std::int32_t>{0, 1, 99});
}

TEST_CASE("topk: NaN never displaces a finite score") {
  std::vector<float> scores{1.0f, std::nanf(""), 3.0f, 2.0f};
  std::vector<std::int32_t> out, scratch;
  fasa::select_top_k(scores, 3, {}, out, scratch);
  CHECK(out == std::vector<std::int32_t>{0, 2, 3});
}

TEST_CASE("topk: forced groups overlap without duplicates") {
  std::vector<float> scores(10, 0.0f);
  std::vector<std::int32_t> out, scratch;
  forced_tokens all;
  all.current = true;
  all.sinks = 4;
  all.recent = 8;  // overlaps the sinks and the current token
  fasa::select_top_k(scores, 10, all, out, scratch);
  CHECK(out == std::vector<std::int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  std::vector<std::int32_t> forced;
  fasa::append_forced_tokens(all, 10, 100, forced);
  CHECK(forced == std::vector<std::int32_t>{9, 0, 1, 2, 3, 8, 7, 6, 5, 4});
  forced.clear();
  fasa::append_forced_tokens(all, 3, 100, forced);  // t smaller than every group
  CHECK(forced == std::vector<std::int32_t>{2, 0, 1});
}
