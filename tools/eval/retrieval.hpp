// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Retrieval: a number hidden in long text at a chosen depth, then asked for.
//   needle:  a "special magic number" sentence inside real essays (the haystack file), as in
//            needle-in-a-haystack and RULER;
//   passkey: a pass key inside repeated filler sentences (Mohtashami & Jaggi 2023).
// Both are asked as completions ("... The special magic number is"): a 135M instruct model
// answers far more reliably that way than inside a chat turn. A case counts as found when the
// greedy answer contains the number. The prompt minus its last token is prefilled densely once
// per case and shared by every variant; the last prompt token and the answer run with the
// selector.

#include <cstdio>
#include <random>

#include "fasa/eval/svg_plot.hpp"
#include "protocol.hpp"

namespace fasa::tools::eval {

class retrieval_protocol final : public protocol {
 public:
  std::string task = "needle";
  std::string haystack = default_data_dir() + "/haystack/PaulGrahamEssays.json";
  std::vector<std::int64_t> lengths{1024, 2048, 4096, 7680};
  std::vector<double> depths{0.0, 0.25, 0.5, 0.75, 1.0};
  int trials = 1;
  int answer_tokens = 12;
  unsigned seed = 1;

  void add_options(CLI::App* app) {
    app->add_option("--task", task, "needle (a number in real essays) or passkey (in filler)")
        ->check(CLI::IsMember({"needle", "passkey"}))
        ->capture_default_str();
    app->add_option("--haystack", haystack,
                    "text the needle hides in (plain text or JSON {\"text\": ...})")
        ->capture_default_str();
    app->add_option("--lengths", lengths, "prompt lengths in tokens, comma-separated")
        ->delimiter(',')
        ->capture_default_str()
        ->check(tokens_at_least(1));
    app->add_option("--depths", depths,
                    "needle depths in [0, 1] (0: start of the text, 1: its end), comma-separated")
        ->delimiter(',')
        ->capture_default_str()
        ->check(real_in(0.0, 1.0));
    app->add_option("--trials", trials, "cases per (length, depth), each with its own number")
        ->capture_default_str()
        ->check(whole_in(1, 1000000));
    app->add_option("--answer-tokens", answer_tokens, "greedy tokens generated for the answer")
        ->capture_default_str()
        ->check(whole_in(1, 1 << 16));
    app->add_option("--seed", seed, "seed of the hidden numbers")
        ->capture_default_str()
        ->check(seed_check());
  }

  std::string name() const override { return "retrieval"; }
  std::string settings() const override {
    std::string s = "task=" + task + " lengths=";
    for (auto l : lengths) s += std::to_string(l) + ";";
    s += " depths=";
    for (auto d : depths) s += variant::format_budget(d) + ";";
    return s + " trials=" + std::to_string(trials) + " seed=" + std::to_string(seed);
  }
  std::string metric() const override { return "accuracy"; }
  std::vector<std::string> table_columns() const override {
    return {"variant",         "accuracy", "found", "cases", "accuracy_where_dense_found",
            "kv_read_fraction"};
  }

  protocol_result run(session& s, const variant& v) override {
    const auto& cs = cases(s);
    protocol_result res;
    int found = 0;
    double kv = 0;
    const double start = seconds_now();
    const std::string label = "retrieval " + v.key();
    std::int64_t longest = 0;
    for (const auto& c : cs) longest = std::max<std::int64_t>(longest, c.prompt.size());
    auto m = s.make_model(v, longest + answer_tokens + 1);
    for (std::size_t i = 0; i < cs.size(); ++i) {
      const auto& c = cs[i];
      double frac = 1;
      const auto answer = s.greedy(*m, c.id, c.prompt, answer_tokens, &frac);
      const std::string text = s.model().tokenizer.decode(answer);
      const bool ok = text.find(c.number) != std::string::npos;
      found += ok;
      kv += frac;
      row r = variant_row(v);
      r.set("length", c.length).set("prompt_tokens", static_cast<std::int64_t>(c.prompt.size()));
      r.set("depth", c.depth).set("trial", c.trial).set("number", c.number);
      r.set("found", ok ? 1 : 0).set("answer", text);
      res.samples.push_back(std::move(r));
      progress_bar(label.c_str(), static_cast<std::int64_t>(i + 1),
                   static_cast<std::int64_t>(cs.size()), start);
    }
    res.summary = variant_row(v);
    res.summary.set("task", task).set("cases", static_cast<std::int64_t>(cs.size()));
    res.summary.set("found", found).set("accuracy", static_cast<double>(found) / cs.size());
    res.summary.set("kv_read_fraction", kv / cs.size());
    res.summary.set("seconds", seconds_now() - start);
    return res;
  }

  // accuracy_where_dense_found: the share of the cases dense answers that this variant answers.
  void finish(std::vector<row>& summaries, std::vector<row>& samples) override {
    if (!plot_dir.empty()) plot(summaries, samples);
    std::map<std::string, bool> dense_found;
    for (const auto& r : samples)
      if (r.text("selector") == "dense") dense_found[case_key(r)] = r.number("found") > 0;
    if (dense_found.empty()) return;
    for (auto& sum : summaries) {
      int n = 0, ok = 0;
      for (const auto& r : samples)
        if (r.text("variant") == sum.text("variant") && dense_found[case_key(r)]) {
          ++n;
          ok += r.number("found") > 0;
        }
      sum.set("dense_found_cases", n);
      sum.set("accuracy_where_dense_found", n ? static_cast<double>(ok) / n : 0.0);
    }
  }

 private:
  struct test_case {
    std::string id, number;
    std::int64_t length = 0;
    double depth = 0;
    int trial = 0;
    std::vector<std::int32_t> prompt;
  };

  // One depth x length grid of accuracy per variant.
  void plot(const std::vector<row>& summaries, const std::vector<row>& samples) const {
    std::vector<std::string> depth_labels, length_labels;
    for (double d : depths) depth_labels.push_back(variant::format_budget(d));
    for (auto l : lengths) length_labels.push_back(std::to_string(l));
    for (const auto& sum : summaries) {
      std::vector<double> acc(depths.size() * lengths.size(), 0.0), n(acc.size(), 0.0);
      for (const auto& r : samples) {
        if (r.text("variant") != sum.text("variant")) continue;
        const auto di = std::find(depth_labels.begin(), depth_labels.end(), r.text("depth"));
        const auto li = std::find(length_labels.begin(), length_labels.end(), r.text("length"));
        if (di == depth_labels.end() || li == length_labels.end()) continue;
        const auto at = static_cast<std::size_t>(di - depth_labels.begin()) * lengths.size() +
                        static_cast<std::size_t>(li - length_labels.begin());
        acc[at] += r.number("found");
        n[at] += 1;
      }
      for (std::size_t i = 0; i < acc.size(); ++i) acc[i] = n[i] > 0 ? acc[i] / n[i] : 0.0;
      const auto grid = fasa::eval::svg::retrieval_grid(task + ": " + sum.text("variant"), acc,
                                                        depth_labels, length_labels);
      const fs::path out = fs::path(plot_dir) /
                           ("retrieval_" + task + "_" + file_name_of(sum.text("variant")) + ".svg");
      fasa::eval::svg::write_svg(out, fasa::eval::svg::render(grid));
      std::fprintf(stderr, "wrote %s\n", out.string().c_str());
    }
  }

  static std::string case_key(const row& r) {
    return r.text("length") + "/" + r.text("depth") + "/" + r.text("trial");
  }

  const std::vector<test_case>& cases(session& s) {
    if (!cases_.empty()) return cases_;
    FASA_CHECK(!lengths.empty() && !depths.empty(), "--lengths and --depths need values");
    FASA_CHECK(trials >= 1, "--trials must be at least 1, got ", trials);
    FASA_CHECK(answer_tokens >= 1, "--answer-tokens must be at least 1, got ", answer_tokens);
    for (double d : depths) FASA_CHECK(d >= 0 && d <= 1, "--depths must lie in [0, 1], got ", d);
    const auto& tok = s.model().tokenizer;
    std::string intro, question, filler;
    if (task == "needle") {
      intro =
          "Below is a collection of essays. Somewhere in it is a special magic number. "
          "Remember it.\n\n";
      question =
          "\n\nWhat is the special magic number mentioned in the essays above? The "
          "special magic number is";
      // The haystack's first ~70K characters hold more than the longest prompt's tokens.
      std::string text = read_text_corpus(haystack, "text");
      const std::int64_t longest = *std::max_element(lengths.begin(), lengths.end());
      text.resize(std::min<std::size_t>(text.size(), static_cast<std::size_t>(longest) * 8));
      filler_tokens_ = tok.encode(text, false);
    } else {
      intro =
          "There is an important info hidden inside a lot of irrelevant text. Find it and "
          "memorize it. I will quiz you about the important information there.\n";
      question = "\nWhat is the pass key? The pass key is";
      std::string text;
      const std::int64_t longest = *std::max_element(lengths.begin(), lengths.end());
      while (static_cast<std::int64_t>(text.size()) < longest * 6)
        text +=
            "The grass is green. The sky is blue. The sun is yellow. Here we go. There and "
            "back again. ";
      filler_tokens_ = tok.encode(text, false);
    }
    std::mt19937 rng(seed);
    const int digits = task == "needle" ? 7 : 5;
    std::uniform_int_distribution<int> first_digit(1, 9), digit(0, 9);
    for (auto len : lengths)
      for (double depth : depths)
        for (int t = 0; t < trials; ++t) {
          test_case c;
          c.length = len;
          c.depth = depth;
          c.trial = t;
          c.number = std::to_string(first_digit(rng));
          for (int i = 1; i < digits; ++i) c.number += std::to_string(digit(rng));
          const std::string needle = task == "needle"
                                         ? " The special magic number is " + c.number + ". "
                                         : " The pass key is " + c.number + ". Remember it. " +
                                               c.number + " is the pass key. ";
          const auto fixed = static_cast<std::int64_t>(tok.encode(intro, false).size() +
                                                       tok.encode(needle, false).size() +
                                                       tok.encode(question, false).size() + 1);
          const std::int64_t room = len - fixed;
          FASA_CHECK(room >= 16, "--lengths ", len, " leaves no room for text around the needle");
          FASA_CHECK(room <= static_cast<std::int64_t>(filler_tokens_.size()), "the haystack '",
                     haystack, "' has only ", filler_tokens_.size(), " tokens; length ", len,
                     " needs ", room);
          std::string body = tok.decode(
              std::span<const std::int32_t>(filler_tokens_.data(), static_cast<std::size_t>(room)));
          // The needle goes after the sentence end nearest its depth.
          std::size_t at = static_cast<std::size_t>(depth * static_cast<double>(body.size()));
          if (at > 0 && at < body.size()) {
            const std::size_t dot = body.rfind(". ", at);
            at = dot == std::string::npos ? 0 : dot + 1;
          }
          body.insert(std::min(at, body.size()), needle);
          c.prompt = tok.encode(intro + body + question, false);
          c.id = "retrieval:" + task + ":" + std::to_string(len) + ":" +
                 variant::format_budget(depth) + ":" + std::to_string(t) + ":" + c.number;
          cases_.push_back(std::move(c));
        }
    return cases_;
  }

  std::vector<std::int32_t> filler_tokens_;
  std::vector<test_case> cases_;
};

}  // namespace fasa::tools::eval
