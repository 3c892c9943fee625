// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Fidelity: greedy generation with the variant against greedy generation with dense, on the
// same prompts (windows of real text). Two shares per prompt: tokens identical before the
// first divergence (of the generated length), and tokens identical position by position.

#include <cstdio>

#include "protocol.hpp"

namespace fasa::tools::eval {

class fidelity_protocol final : public protocol {
 public:
  std::string text = default_data_dir() + "/haystack/PaulGrahamEssays.json";
  int prompts = 4;
  std::int64_t prompt_length = 2048;
  int generate = 128;

  void add_options(CLI::App* app) {
    app->add_option("--text", text, "text the prompts are cut from (plain text or JSON)")
        ->capture_default_str();
    app->add_option("--prompts", prompts, "prompts, spread evenly over the text")
        ->capture_default_str()
        ->check(whole_in(1, 1000000));
    app->add_option("--prompt-length", prompt_length, "tokens per prompt")
        ->capture_default_str()
        ->check(tokens_at_least(1));
    app->add_option("--generate", generate, "greedy tokens generated per prompt")
        ->capture_default_str()
        ->check(whole_in(1, 1 << 20));
  }

  std::string name() const override { return "fidelity"; }
  std::string settings() const override {
    return "text=" + fs::path(text).filename().string() + " prompts=" + std::to_string(prompts) +
           " prompt_length=" + std::to_string(prompt_length) +
           " generate=" + std::to_string(generate);
  }
  std::string metric() const override { return "identical_share"; }
  std::vector<std::string> table_columns() const override {
    return {"variant", "prefix_match_share", "identical_share", "kv_read_fraction", "seconds"};
  }

  protocol_result run(session& s, const variant& v) override {
    FASA_CHECK(prompts >= 1, "--prompts must be at least 1, got ", prompts);
    FASA_CHECK(prompt_length >= 2, "--prompt-length must be at least 2, got ", prompt_length);
    FASA_CHECK(generate >= 1, "--generate must be at least 1, got ", generate);
    const auto& ps = prompt_list(s);
    const double start = seconds_now();
    auto m = s.make_model(v, prompt_length + generate + 1);
    // Dense's own generations, once per session.
    if (reference_.empty()) {
      variant d;
      d.selector = "dense";
      auto dm = s.make_model(d, prompt_length + generate + 1);
      for (std::size_t i = 0; i < ps.size(); ++i) {
        reference_.push_back(s.greedy(*dm, id(i), ps[i], generate));
        progress_bar("fidelity: dense reference", static_cast<std::int64_t>(i + 1),
                     static_cast<std::int64_t>(ps.size()), start);
      }
    }
    protocol_result res;
    double prefix_sum = 0, same_sum = 0, kv = 0;
    const std::string label = "fidelity " + v.key();
    for (std::size_t i = 0; i < ps.size(); ++i) {
      double frac = 1;
      const auto out = s.greedy(*m, id(i), ps[i], generate, &frac);
      const auto& ref = reference_[i];
      // Both run `generate` steps unless one stops at an end token; score over the longer.
      const std::size_t n = std::max<std::size_t>({out.size(), ref.size(), 1});
      std::size_t prefix = 0, same = 0;
      while (prefix < out.size() && prefix < ref.size() && out[prefix] == ref[prefix]) ++prefix;
      for (std::size_t j = 0; j < std::min(out.size(), ref.size()); ++j) same += out[j] == ref[j];
      if (out.size() == ref.size() && prefix == out.size()) prefix = same = n;
      row r = variant_row(v);
      r.set("prompt", static_cast<std::int64_t>(i));
      r.set("prefix_match_share", static_cast<double>(prefix) / n);
      r.set("identical_share", static_cast<double>(same) / n);
      r.set("first_divergence", static_cast<std::int64_t>(prefix));
      r.set("generated", static_cast<std::int64_t>(out.size()));
      r.set("text", s.model().tokenizer.decode(out));
      res.samples.push_back(std::move(r));
      prefix_sum += static_cast<double>(prefix) / n;
      same_sum += static_cast<double>(same) / n;
      kv += frac;
      progress_bar(label.c_str(), static_cast<std::int64_t>(i + 1),
                   static_cast<std::int64_t>(ps.size()), start);
    }
    const double k = static_cast<double>(ps.size());
    res.summary = variant_row(v);
    res.summary.set("prompts", static_cast<std::int64_t>(ps.size()));
    res.summary.set("prefix_match_share", prefix_sum / k);
    res.summary.set("identical_share", same_sum / k);
    res.summary.set("kv_read_fraction", kv / k);
    res.summary.set("seconds", seconds_now() - start);
    return res;
  }

 private:
  std::string id(std::size_t i) const {
    return "fidelity:" + text + ":" + std::to_string(i) + ":" + std::to_string(prompt_length);
  }

  const std::vector<std::vector<std::int32_t>>& prompt_list(session& s) {
    if (!prompts_.empty()) return prompts_;
    const auto tokens = s.model().tokenizer.encode(read_text_corpus(text, "text"), false);
    const auto n = static_cast<std::int64_t>(tokens.size());
    FASA_CHECK(n >= prompt_length * prompts, "'", text, "' has ", n, " tokens; ", prompts,
               " prompts of ", prompt_length, " need ", prompt_length * prompts);
    for (int i = 0; i < prompts; ++i) {
      const std::int64_t first = prompts == 1 ? 0 : i * ((n - prompt_length) / (prompts - 1));
      prompts_.emplace_back(tokens.begin() + first, tokens.begin() + first + prompt_length);
    }
    return prompts_;
  }

  std::vector<std::vector<std::int32_t>> prompts_;
  std::vector<std::vector<std::int32_t>> reference_;
};

}  // namespace fasa::tools::eval
