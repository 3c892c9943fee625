// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
// The forward pass on a real model: stories260K (llama2.c) reproduces its author's published
// greedy sample; FASA with every FC dominant and a budget covering the context gives the dense
// logits; the oracle at a budget below the context does not (so the comparison can fail); the
// checkpoint reader rejects truncated and inconsistent files.

#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "fasa/backends/cpu/eigen.hpp"
#include "fasa/backends/cpu/reference.hpp"
#include "fasa/model/layers.hpp"
#include "fasa/model/llama.hpp"
#include "fasa/model/llama2c.hpp"
#include "fasa/model/sampling.hpp"
#include "support.hpp"

using namespace fasa;
using namespace fasa::model;
namespace fs = std::filesystem;

namespace {

fs::path stories_dir() { return fs::path(test::shared_data_dir()) / "models" / "stories260K"; }

// The vocabulary of tok512.bin, read here on its own: int32 max_len, then per token
// {float score, int32 length, bytes}.
std::vector<std::string> read_vocab(const fs::path& path, int n) {
  std::ifstream in(path, std::ios::binary);
  std::int32_t max_len = 0;
  in.read(reinterpret_cast<char*>(&max_len), 4);
  std::vector<std::string> vocab;
  for (int i = 0; i < n; ++i) {
    float score = 0;
    std::int32_t len = 0;
    in.read(reinterpret_cast<char*>(&score), 4);
    in.read(reinterpret_cast<char*>(&len), 4);
    std::string s(static_cast<std::size_t>(len), '\0');
    in.read(s.data(), len);
    vocab.push_back(s);
  }
  REQUIRE(in.good());
  return vocab;
}

#define SKIP_WITHOUT_STORIES()                                            \
  if (!fs::exists(stories_dir() / "stories260K.bin")) {                   \
    MESSAGE("skipped: ", (stories_dir() / "stories260K.bin").string(),    \
            " is missing (../shared/data is not beside the repository)"); \
    return;                                                               \
  }

}  // namespace

TEST_CASE("llama: stories260K greedy decoding from BOS reproduces the author's sample") {
  SKIP_WITHOUT_STORIES();
  const auto w = read_llama2c(stories_dir() / "stories260K.bin");
  CHECK(w.config.dim == 64);
  CHECK(w.config.n_layers == 5);
  CHECK(w.config.n_kv_heads == 4);
  const auto vocab = read_vocab(stories_dir() / "tok512.bin", w.config.vocab_size);
  llama_model m(w, dense_layers<backend::cpu_eigen>(w.config, 200));
  const std::int32_t bos = 1;
  auto logits = m.prefill({&bos, 1});
  std::string text;
  for (int i = 0; i < 60; ++i) {
    const auto next = argmax(logits);
    text += vocab[static_cast<std::size_t>(next)];
    logits = m.decode(next);
  }
  // The published sample (shared/data/README.md), from Karpathy's llama2.c.
  const std::string golden =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.";
  if (!text.empty() && text[0] == ' ') text.erase(0, 1);  // run.c drops the space after BOS
  INFO("generated: ", text);
  CHECK(text.substr(0, golden.size() - 1) == golden.substr(0, golden.size() - 1));
}

TEST_CASE("llama: FASA with every FC dominant and a budget covering the context equals dense") {
  SKIP_WITHOUT_STORIES();
  const auto w = read_llama2c(stories_dir() / "stories260K.bin");
  const auto& c = w.config;
  layer_plan plan;
  plan.capacity = 300;
  const auto pe = c.rope();
  calib::dominant_fc_sets every(static_cast<std::size_t>(c.n_layers));
  for (auto& layer : every)
    for (int u = 0; u < c.n_kv_heads; ++u) {
      std::vector<int> fcs(static_cast<std::size_t>(pe.num_fcs()));
      std::iota(fcs.begin(), fcs.end(), 0);
      layer.push_back(fcs);
    }
  llama_model dense_model(w, dense_layers<backend::cpu_eigen>(c, 300));
  llama_model fasa_model(
      w, fasa_c_layers<backend::cpu_eigen>(c, plan, every, selection_granularity::kv_head,
                                           token_budget::tokens(1000)));
  selector::oracle_topk small;
  small.budget = token_budget::tokens(8);
  llama_model oracle_model(w, oracle_layers<backend::cpu_eigen>(c, plan, small));
  std::vector<std::int32_t> prompt{1, 403, 407, 261, 378, 60, 434, 270, 303, 309};
  auto want = dense_model.prefill(prompt);
  fasa_model.prefill(prompt);
  oracle_model.prefill(prompt);
  double worst_fasa = 0, worst_oracle = 0;
  std::int32_t token = argmax(want);
  for (int step = 0; step < 40; ++step) {
    const auto d = dense_model.decode(token);
    const std::vector<float> ref(d.begin(), d.end());
    const auto f = fasa_model.decode(token);
    worst_fasa = std::max(worst_fasa, test::relative_error(f, ref));
    const auto o = oracle_model.decode(token);
    worst_oracle = std::max(worst_oracle, test::relative_error(o, ref));
    token = argmax(ref);
  }
  CHECK(worst_fasa < 1e-5);
  CHECK(worst_oracle > 1e-3);  // a real budget changes the logits: the check above can fail
}

TEST_CASE("llama: llama2.c reader rejects truncated and inconsistent checkpoints") {
  SKIP_WITHOUT_STORIES();
  std::ifstream in(stories_dir() / "stories260K.bin", std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  for (std::size_t cut : {std::size_t{0}, std::size_t{5}, std::size_t{28}, std::size_t{1000},
                          bytes.size() / 2, bytes.size() - 4}) {
    const std::vector<char> part(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut));
    CHECK_THROWS_WITH_AS(read_llama2c(part, "cut.bin"), doctest::Contains("truncated"), error);
  }
  auto longer = bytes;
  longer.resize(bytes.size() + 8);
  CHECK_THROWS_WITH_AS(read_llama2c(longer, "long.bin"),
                       doctest::Contains("bytes after the last tensor"), error);
  auto bad = bytes;
  const std::int32_t heads = 7;  // 64 is not a multiple of 7
  std::memcpy(bad.data() + 12, &heads, 4);
  CHECK_THROWS_WITH_AS(read_llama2c(bad, "bad.bin"), doctest::Contains("multiple of n_heads"),
                       error);
  CHECK_THROWS_WITH_AS(read_llama2c(fs::path("no/such/file.bin")), doctest::Contains("cannot open"),
                       error);
}

TEST_CASE("llama: the model checks its layers and token ids") {
  SKIP_WITHOUT_STORIES();
  const auto w = read_llama2c(stories_dir() / "stories260K.bin");
  auto layers = dense_layers<backend::cpu_reference>(w.config, 4);
  layers.pop_back();
  CHECK_THROWS_WITH_AS(llama_model(w, std::move(layers)), doctest::Contains("4 layer attentions"),
                       error);
  llama_model m(w, dense_layers<backend::cpu_reference>(w.config, 4));
  const std::vector<std::int32_t> bad{1, 600};
  CHECK_THROWS_WITH_AS(m.prefill(bad), doctest::Contains("token id 600"), error);
  const std::vector<std::int32_t> many{1, 2, 3, 4, 5};
  CHECK_THROWS_WITH_AS(m.prefill(many), doctest::Contains("capacity of 4 tokens"), error);
}

TEST_CASE("llama: a captured prefill prefix starts another composition where prefill would") {
  SKIP_WITHOUT_STORIES();
  const auto w = read_llama2c(stories_dir() / "stories260K.bin");
  const auto& c = w.config;
  layer_plan plan;
  plan.capacity = 120;
  selector::oracle_topk sel;
  sel.budget = token_budget::tokens(6);
  // The same tokens, prefilled by the oracle model itself vs loaded from a dense model's capture.
  std::vector<std::int32_t> prompt{1, 403, 407, 261, 378, 60, 434, 270, 303, 309, 286, 350};
  llama_model dense_model(w, dense_layers<backend::cpu_eigen>(c, 120));
  const kv_prefix prefix = dense_model.prefill_captured(prompt);
  CHECK(prefix.size() == static_cast<std::int64_t>(prompt.size()));
  llama_model direct(w, oracle_layers<backend::cpu_eigen>(c, plan, sel));
  llama_model loaded(w, oracle_layers<backend::cpu_eigen>(c, plan, sel));
  const auto a = direct.prefill(prompt);
  std::vector<float> want(a.begin(), a.end());
  const auto b = loaded.load_prefix(prefix);
  CHECK(test::relative_error(b, want) < 1e-6);
  CHECK(loaded.position() == direct.position());
  std::int32_t token = argmax(want);
  double worst = 0;
  for (int step = 0; step < 20; ++step) {
    const auto x = direct.decode(token);
    want.assign(x.begin(), x.end());
    worst = std::max(worst, test::relative_error(loaded.decode(token), want));
    token = argmax(want);
  }
  CHECK(worst < 1e-6);
  // A prefix from another model, or one longer than the cache, is refused.
  llama_model small(w, dense_layers<backend::cpu_eigen>(c, 4));
  CHECK_THROWS_WITH_AS(small.load_prefix(prefix), doctest::Contains("exceeds the cache capacity"),
                       fasa::error);
  kv_prefix broken = prefix;
  broken.k.pop_back();
  CHECK_THROWS_WITH_AS(loaded.load_prefix(broken), doctest::Contains("different model"),
                       fasa::error);
}
