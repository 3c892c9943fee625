// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
// SmolLM2-135M-Instruct (the default model) through fasa's GGUF loader and forward pass, against
// an independent NumPy forward pass (tests/model/llama_reference.py, reading the file with the
// `gguf` package); and FASA with every FC dominant and a budget covering the context against
// dense, on the real model.

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "fasa/backends/cpu/eigen.hpp"
#include "fasa/model/gguf_llama.hpp"
#include "fasa/model/layers.hpp"
#include "fasa/model/llama.hpp"
#include "fasa/model/sampling.hpp"
#include "support.hpp"

using namespace fasa;
using namespace fasa::model;
namespace fs = std::filesystem;

namespace {

// Runs the reference script on `prompts`; returns one logits vector per prompt, or nothing
// when the script cannot run (missing Python packages).
std::vector<std::vector<float>> reference_logits(const std::string& model,
                                                 const std::vector<std::vector<int>>& prompts,
                                                 std::string& why) {
  const fs::path in = fs::temp_directory_path() / "fasa_llama_reference_in.json";
  const fs::path out = fs::temp_directory_path() / "fasa_llama_reference_out.json";
  std::ofstream(in) << nlohmann::json(prompts).dump();
  const std::string cmd = test::python_executable() +
                          " " FASA_SOURCE_DIR "/tests/model/llama_reference.py '" + model +
                          "' < '" + in.string() + "' > '" + out.string() + "'";
  if (std::system(cmd.c_str()) != 0) {
    why = "the NumPy reference failed to run (" + cmd + "); pip install numpy gguf";
    return {};
  }
  return nlohmann::json::parse(std::ifstream(out)).get<std::vector<std::vector<float>>>();
}

}  // namespace

TEST_CASE("smollm2: logits match an independent NumPy forward pass (rel. error < 1e-3)") {
  const std::string path = test::default_model_path();
  FASA_SKIP_UNLESS(fs::exists(path), path + " is missing; run scripts/fetch-model.sh");
  const auto w = read_gguf_llama(fs::path(path));
  CHECK(w.config.n_layers == 30);
  CHECK(w.config.head_dim == 64);
  CHECK(w.config.tied_output);
  // Token ids chosen to cover BOS, chat markers, text, digits and a longer sequence.
  std::vector<std::vector<int>> prompts = {
      {1, 504, 3458},
      {1, 9690, 198, 2683, 314, 253, 5356, 28, 216, 33, 34, 35, 2},
  };
  std::vector<int> longer(70);
  std::iota(longer.begin(), longer.end(), 400);
  prompts.push_back(longer);
  std::string why;
  const auto want = reference_logits(path, prompts, why);
  FASA_SKIP_UNLESS(!want.empty(), why);
  llama_model m(w, dense_layers<backend::cpu_eigen>(w.config, 128));
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    m.reset();
    const auto got = m.prefill(prompts[p]);
    const double err = test::relative_error(got, want[p]);
    INFO("prompt ", p, ": relative error ", err);
    CHECK(err < 1e-3);
    CHECK(argmax(got) == argmax(std::span<const float>(want[p])));
  }
  // decode steps agree with the reference too (the last token of prompt 1 decoded on its own)
  m.reset();
  m.prefill(std::span<const int>(prompts[1]).first(prompts[1].size() - 1));
  const auto step = m.decode(prompts[1].back());
  CHECK(test::relative_error(step, want[1]) < 1e-3);
}

TEST_CASE("smollm2: FASA with every FC dominant and a budget >= the context gives dense logits") {
  const std::string path = test::default_model_path();
  FASA_SKIP_UNLESS(fs::exists(path), path + " is missing; run scripts/fetch-model.sh");
  const auto w = read_gguf_llama(fs::path(path));
  const auto& c = w.config;
  layer_plan plan;
  plan.capacity = 96;
  plan.dense_layers.clear();  // every layer through FASA
  for (auto g : {selection_granularity::query_head, selection_granularity::kv_head}) {
    const int units = g == selection_granularity::query_head ? c.n_heads : c.n_kv_heads;
    std::vector<int> every(static_cast<std::size_t>(c.head_dim / 2));
    std::iota(every.begin(), every.end(), 0);
    const calib::dominant_fc_sets all(
        static_cast<std::size_t>(c.n_layers),
        std::vector<std::vector<int>>(static_cast<std::size_t>(units), every));
    llama_model dense_model(w, dense_layers<backend::cpu_eigen>(c, 96));
    llama_model fasa_model(
        w, fasa_c_layers<backend::cpu_eigen>(c, plan, all, g, token_budget::tokens(96)));
    std::vector<int> prompt(40);
    std::iota(prompt.begin(), prompt.end(), 1000);
    auto d = dense_model.prefill(prompt);
    fasa_model.prefill(prompt);
    std::int32_t token = argmax(d);
    for (int s = 0; s < 12; ++s) {
      const auto dl = dense_model.decode(token);
      const std::vector<float> ref(dl.begin(), dl.end());
      const auto fl = fasa_model.decode(token);
      INFO(to_string(g), " step ", s);
      CHECK(test::relative_error(fl, ref) < 1e-5);
      token = argmax(ref);
    }
  }
}
