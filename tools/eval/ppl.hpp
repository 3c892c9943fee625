// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// The paper's perplexity protocol: windows of P + D tokens of long text; the first P - 1 tokens
// are prefilled densely (captured once per window and reused by every variant), then tokens
// P-1 .. P+D-2 are decoded one at a time with the variant's selector, and each decode step's
// logits predict the next token of the text. Perplexity = exp(mean NLL over the D predictions).

#include <cmath>
#include <cstdio>

#include "protocol.hpp"

namespace fasa::tools::eval {

class ppl_protocol final : public protocol {
 public:
  std::string text = default_data_dir() + "/text/moby_dick.txt";
  int windows = 3;
  std::int64_t prefill = 7000;
  std::int64_t decode = 1000;
  std::int64_t skip = 2048;  // tokens at the start of the text left out (calibration reads them)

  void add_options(CLI::App* app) {
    app->add_option("--text", text,
                    "long text to take windows from (plain text, a Gutenberg book, or JSON "
                    "{\"text\": ...})")
        ->capture_default_str();
    app->add_option("--windows", windows, "windows of prefill + decode tokens, spread evenly")
        ->capture_default_str()
        ->check(whole_in(1, 1000000));
    app->add_option("--prefill", prefill, "P: tokens of dense context before the decoded ones")
        ->capture_default_str()
        ->check(tokens_at_least(1));
    app->add_option("--decode", decode, "D: tokens decoded one by one and scored")
        ->capture_default_str()
        ->check(tokens_at_least(1));
    app->add_option("--skip", skip,
                    "tokens at the start of the text not used (the default calibration reads "
                    "the first 1,088 tokens of the default text)")
        ->capture_default_str()
        ->check(tokens_at_least(0));
  }

  std::string name() const override { return "ppl"; }
  std::string settings() const override {
    return "text=" + fs::path(text).filename().string() + " windows=" + std::to_string(windows) +
           " P=" + std::to_string(prefill) + " D=" + std::to_string(decode) +
           " skip=" + std::to_string(skip);
  }
  std::string metric() const override { return "ppl"; }
  std::vector<std::string> table_columns() const override {
    return {"variant", "ppl", "ppl_vs_dense_pct", "kv_read_fraction", "seconds"};
  }

  protocol_result run(session& s, const variant& v) override {
    FASA_CHECK(windows >= 1, "--windows must be at least 1, got ", windows);
    FASA_CHECK(prefill >= 2, "--prefill must be at least 2, got ", prefill);
    FASA_CHECK(decode >= 1, "--decode must be at least 1, got ", decode);
    FASA_CHECK(skip >= 0, "--skip must be >= 0, got ", skip);
    const auto& tokens = corpus_tokens(s);
    const std::int64_t len = prefill + decode;
    FASA_CHECK(len <= s.config().max_seq_len || s.config().max_seq_len <= 0, "a window of ", len,
               " tokens exceeds the model's context of ", s.config().max_seq_len);
    const auto n = static_cast<std::int64_t>(tokens.size());
    FASA_CHECK(n - skip >= len * windows, "'", text, "' has ", n, " tokens; ", windows,
               " windows of ", len, " after skipping ", skip, " need ", skip + len * windows);
    auto m = s.make_model(v, len);
    protocol_result res;
    double nll_total = 0, bytes = 0, dense_bytes = 0;
    const double start = seconds_now();
    const std::string label = "ppl " + v.key();
    for (int w = 0; w < windows; ++w) {
      const std::int64_t first = skip + (windows == 1 ? 0 : w * ((n - skip - len) / (windows - 1)));
      const std::vector<std::int32_t> window(tokens.begin() + first, tokens.begin() + first + len);
      const std::vector<std::int32_t> head(window.begin(), window.begin() + prefill - 1);
      m->load_prefix(s.prefix(
          "ppl:" + text + ":" + std::to_string(first) + "+" + std::to_string(prefill - 1), head));
      double nll = 0;
      for (std::int64_t i = 0; i < decode; ++i) {
        const auto logits = m->decode(window[static_cast<std::size_t>(prefill - 1 + i)]);
        nll += token_nll(logits, window[static_cast<std::size_t>(prefill + i)]);
        for (const auto& st : m->last_step_stats()) {
          bytes += static_cast<double>(st.bytes_read());
          dense_bytes += static_cast<double>(st.dense_bytes);
        }
        if ((i + 1) % 50 == 0 || i + 1 == decode)
          progress_bar(label.c_str(), w * decode + i + 1, windows * decode, start);
      }
      nll_total += nll;
      row r = variant_row(v);
      r.set("window", w).set("first_token", first).set("tokens", decode);
      r.set("nll", nll / static_cast<double>(decode));
      r.set("ppl", std::exp(nll / static_cast<double>(decode)));
      res.samples.push_back(std::move(r));
    }
    res.summary = variant_row(v);
    res.summary.set("windows", windows).set("tokens", windows * decode);
    res.summary.set("nll", nll_total / static_cast<double>(windows * decode));
    res.summary.set("ppl", std::exp(nll_total / static_cast<double>(windows * decode)));
    res.summary.set("kv_read_fraction", dense_bytes > 0 ? bytes / dense_bytes : 1.0);
    res.summary.set("seconds", seconds_now() - start);
    return res;
  }

  void finish(std::vector<row>& summaries, std::vector<row>& samples) override {
    (void)samples;
    const row* d = dense_summary(summaries);
    if (!d) return;
    const double dense_ppl = d->number("ppl");
    for (auto& r : summaries) r.set("ppl_vs_dense_pct", 100.0 * (r.number("ppl") / dense_ppl - 1));
  }

 private:
  const std::vector<std::int32_t>& corpus_tokens(session& s) {
    if (tokens_.empty()) {
      std::fprintf(stderr, "ppl: tokenizing %s\n", text.c_str());
      tokens_ = s.model().tokenizer.encode(read_text_corpus(text, "text"), false);
    }
    return tokens_;
  }
  std::vector<std::int32_t> tokens_;
};

}  // namespace fasa::tools::eval
