// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// LongBench-V1 on LongBench-format jsonl files: the official prompt of the task, middle
// truncation to --max-length tokens, the model's chat template where the task uses one, greedy
// generation up to the task's length, and the official metric (ROUGE-L for summarisation),
// scored both against the references and against the dense model's own output on the same
// prompt. The prompt minus its last token is prefilled densely once and shared by every
// variant. Prompts, metrics and their fidelity to the official code: docs/longbench.md.

#include <cstdio>

#include "fasa/eval/longbench.hpp"
#include "protocol.hpp"

namespace fasa::tools::eval {

class longbench_protocol final : public protocol {
 public:
  std::string file = default_data_dir() + "/longbench/multi_news.jsonl";
  std::string task;  // default: the file's stem
  int samples = 5;
  int first = 0;
  std::int64_t max_length = 7600;
  int max_new_tokens = 0;  // 0: the task's (dataset2maxlen)
  bool no_chat = false;

  void add_options(CLI::App* app) {
    app->add_option("--file", file, "a LongBench-format jsonl file")->capture_default_str();
    app->add_option("--task", task,
                    "the LongBench task whose prompt and metric apply (default: the file name, "
                    "e.g. multi_news); known: " +
                        fasa::eval::longbench_task_names());
    app->add_option("--samples", samples, "samples scored, from --first on")
        ->capture_default_str()
        ->check(whole_in(1, 1000000));
    app->add_option("--first", first, "index of the first sample")
        ->capture_default_str()
        ->check(whole_in(0, 1 << 30));
    app->add_option("--max-length", max_length,
                    "prompt limit in tokens before the chat template (middle truncation, as "
                    "LongBench's pred.py); prompt + generation must fit the model's context")
        ->capture_default_str()
        ->check(tokens_at_least(1));
    app->add_option("--max-new-tokens", max_new_tokens,
                    "generated tokens per sample (0: the task's official length)")
        ->capture_default_str()
        ->check(whole_in(0, 1 << 20));
    app->add_flag("--no-chat", no_chat, "never wrap prompts in the model's chat template");
  }

  std::string name() const override { return "longbench"; }
  std::string settings() const override {
    return "task=" + task_name() + " samples=" + std::to_string(first) + "+" +
           std::to_string(samples) + " max_length=" + std::to_string(max_length) +
           " max_new_tokens=" + std::to_string(new_tokens()) + (no_chat ? " no_chat" : "");
  }
  std::string metric() const override { return "score"; }
  std::vector<std::string> table_columns() const override {
    return {"variant", "score", "score_vs_dense", "kv_read_fraction", "seconds"};
  }

  protocol_result run(session& s, const variant& v) override {
    const auto& ps = prompts(s);
    const int gen = new_tokens();
    std::int64_t longest = 0;
    for (const auto& p : ps) longest = std::max<std::int64_t>(longest, p.size());
    const double start = seconds_now();
    if (reference_.empty()) {
      variant d;
      d.selector = "dense";
      auto dm = s.make_model(d, longest + gen + 1);
      for (std::size_t i = 0; i < ps.size(); ++i) {
        reference_.push_back(generate(s, *dm, i));
        progress_bar("longbench: dense reference", static_cast<std::int64_t>(i + 1),
                     static_cast<std::int64_t>(ps.size()), start);
      }
    }
    auto m = s.make_model(v, longest + gen + 1);
    protocol_result res;
    std::vector<double> score, vs_dense;
    double kv = 0;
    const std::string label = "longbench " + v.key();
    for (std::size_t i = 0; i < ps.size(); ++i) {
      double frac = 1;
      const std::string pred = v.selector == "dense" ? reference_[i] : generate(s, *m, i, &frac);
      score.push_back(fasa::eval::longbench_score(*task_, pred, samples_[i]));
      const std::vector<std::string> dense_answer{reference_[i]};
      vs_dense.push_back(fasa::eval::longbench_score(*task_, pred, dense_answer));
      kv += frac;
      row r = variant_row(v);
      r.set("sample", first + static_cast<int>(i));
      r.set("prompt_tokens", static_cast<std::int64_t>(ps[i].size()));
      r.set("score", 100 * score.back()).set("score_vs_dense", 100 * vs_dense.back());
      r.set("prediction", pred);
      res.samples.push_back(std::move(r));
      progress_bar(label.c_str(), static_cast<std::int64_t>(i + 1),
                   static_cast<std::int64_t>(ps.size()), start);
    }
    res.summary = variant_row(v);
    res.summary.set("task", task_name()).set("samples", static_cast<std::int64_t>(ps.size()));
    res.summary.set("score", fasa::eval::longbench_task_score(score));
    res.summary.set("score_vs_dense", fasa::eval::longbench_task_score(vs_dense));
    res.summary.set("kv_read_fraction", kv / static_cast<double>(ps.size()));
    res.summary.set("seconds", seconds_now() - start);
    return res;
  }

 private:
  std::string task_name() const { return task.empty() ? fs::path(file).stem().string() : task; }
  int new_tokens() const {
    return max_new_tokens > 0 ? max_new_tokens
                              : fasa::eval::find_longbench_task(task_name()).max_new_tokens;
  }

  std::string generate(session& s, model::llama_model& m, std::size_t i, double* frac = nullptr) {
    const auto& tok = s.model().tokenizer;
    const auto ids = s.greedy(m, "longbench:" + file + ":" + std::to_string(first + i), prompts_[i],
                              new_tokens(), frac);
    std::string text = tok.decode(ids, false);
    // samsum: pred.py also ends generation at a newline after the first new token.
    if (task_->stop_at_newline) {
      const std::size_t nl = text.find('\n', 1);
      if (nl != std::string::npos) text.resize(nl);
    }
    return text;
  }

  const std::vector<std::vector<std::int32_t>>& prompts(session& s) {
    if (!prompts_.empty()) return prompts_;
    task_ = &fasa::eval::find_longbench_task(task_name());
    FASA_CHECK(samples >= 1 && first >= 0, "--samples must be >= 1 and --first >= 0");
    FASA_CHECK(max_length >= 2, "--max-length must be at least 2, got ", max_length);
    FASA_CHECK(max_new_tokens >= 0, "--max-new-tokens must be >= 0, got ", max_new_tokens);
    const auto all = fasa::eval::read_longbench_jsonl(fs::path(file));
    FASA_CHECK(static_cast<std::size_t>(first + samples) <= all.size(), "'", file, "' has ",
               all.size(), " samples; --first ", first, " + --samples ", samples,
               " is past the end");
    fasa::eval::longbench_prompt_options o;
    o.max_length = static_cast<std::size_t>(max_length);
    if (!no_chat && s.model().file.has("tokenizer.chat_template"))
      o.chat = fasa::eval::chat_template_from_jinja(
          s.model().file.get_string("tokenizer.chat_template"));
    for (int i = first; i < first + samples; ++i) {
      samples_.push_back(all[static_cast<std::size_t>(i)]);
      prompts_.push_back(
          fasa::eval::longbench_prompt_ids(s.model().tokenizer, *task_, samples_.back(), o));
      const auto need = static_cast<std::int64_t>(prompts_.back().size()) + new_tokens();
      FASA_CHECK(s.config().max_seq_len <= 0 || need <= s.config().max_seq_len, "sample ", i,
                 ": a prompt of ", prompts_.back().size(), " tokens plus ", new_tokens(),
                 " generated exceeds the model's context of ", s.config().max_seq_len,
                 "; lower --max-length");
    }
    return prompts_;
  }

  const fasa::eval::longbench_task* task_ = nullptr;
  std::vector<fasa::eval::longbench_sample> samples_;
  std::vector<std::vector<std::int32_t>> prompts_;
  std::vector<std::string> reference_;
};

}  // namespace fasa::tools::eval
