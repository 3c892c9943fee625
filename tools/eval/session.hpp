// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// What fasa-eval and fasa-ablate share: a variant (selector x budget x N_tip x GQA mode x FC
// mapping), the session that evaluates variants on one model (calibrations per mode and mapping,
// dense prefixes captured once and reused by every variant), the result rows with their CSV,
// JSON and table writers, and the flags every protocol takes.

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "../common.hpp"
#include "fasa/model/sampling.hpp"

namespace fasa::tools::eval {

// ---- variants --------------------------------------------------------------------------------

struct variant {
  std::string selector = "fasa";  // dense | oracle | fasa
  double budget = 256;            // tokens (>= 1) or a fraction of the context (< 1)
  int n_tip = 0;                  // 0: head_dim / 8
  selection_granularity granularity = selection_granularity::query_head;
  positional::fc_mapping mapping = positional::fc_mapping::rotation_pairs;
  forced_tokens force;  // sinks / recent tokens kept before ranking (not the paper's method)

  // Budget, N_tip, mode and mapping only matter to some selectors; a key names what does.
  // Forced tokens appear only when there are some, so keys of the paper's method stay short.
  std::string key() const {
    if (selector == "dense") return "dense";
    std::string k = selector + " budget=" + format_budget(budget);
    k += std::string(" mode=") + to_string(granularity);
    if (selector == "fasa")
      k += " n_tip=" + std::to_string(n_tip) + " mapping=" + positional::to_string(mapping);
    if (force.any())
      k += " sinks=" + std::to_string(force.sinks) + " recent=" + std::to_string(force.recent);
    return k;
  }
  static std::string format_budget(double b) {
    char buf[32];
    std::snprintf(buf, sizeof buf, b < 1 ? "%.3g" : "%.0f", b);
    return buf;
  }
};

// The cartesian product of the listed values, without repeats (dense ignores every knob, the
// oracle ignores N_tip and the mapping).
inline std::vector<variant> expand_variants(const std::vector<std::string>& selectors,
                                            const std::vector<double>& budgets,
                                            const std::vector<int>& n_tips,
                                            const std::vector<std::string>& modes,
                                            const std::vector<std::string>& mappings,
                                            int default_n_tip, const std::vector<int>& sinks = {0},
                                            const std::vector<int>& recents = {0}) {
  FASA_CHECK(!selectors.empty() && !budgets.empty() && !n_tips.empty() && !modes.empty() &&
                 !mappings.empty() && !sinks.empty() && !recents.empty(),
             "every one of --selector, --budget, --n-tip, --granularity, --mapping, --sinks, "
             "--recent needs a value");
  for (int x : sinks) FASA_CHECK(x >= 0, "--sinks must be >= 0, got ", x);
  for (int x : recents) FASA_CHECK(x >= 0, "--recent must be >= 0, got ", x);
  std::vector<variant> out;
  std::vector<std::string> seen;
  for (const auto& s : selectors) {
    FASA_CHECK(s == "dense" || s == "oracle" || s == "fasa", "unknown selector '", s,
               "'; known: dense, oracle, fasa");
    for (double b : budgets) {
      parse_budget(b);
      for (int n : n_tips) {
        FASA_CHECK(n >= 0, "--n-tip must be >= 0 (0: head_dim/8), got ", n);
        for (const auto& g : modes)
          for (const auto& m : mappings)
            for (int sk : sinks)
              for (int rc : recents) {
                variant v;
                v.selector = s;
                v.budget = b;
                v.n_tip = n > 0 ? n : default_n_tip;
                v.granularity = parse_granularity(g);
                v.mapping = parse_mapping(m);
                if (s != "dense") v.force = forced_tokens{sk, rc, false};
                if (std::find(seen.begin(), seen.end(), v.key()) != seen.end()) continue;
                seen.push_back(v.key());
                out.push_back(v);
              }
      }
    }
  }
  return out;
}

// ---- result rows -----------------------------------------------------------------------------

// One row of a result table: named cells in insertion order, numbers or text.
class row {
 public:
  using cell = std::variant<double, std::int64_t, std::string>;
  row& set(const std::string& name, cell value) {
    for (auto& c : cells_)
      if (c.first == name) {
        c.second = std::move(value);
        return *this;
      }
    cells_.emplace_back(name, std::move(value));
    return *this;
  }
  row& set(const std::string& name, int value) { return set(name, cell{std::int64_t{value}}); }
  row& set(const std::string& name, std::int64_t value) { return set(name, cell{value}); }
  row& set(const std::string& name, double value) { return set(name, cell{value}); }
  row& set(const std::string& name, const char* value) {
    return set(name, cell{std::string(value)});
  }
  row& set(const std::string& name, const std::string& value) { return set(name, cell{value}); }
  const std::vector<std::pair<std::string, cell>>& cells() const { return cells_; }
  const cell* find(const std::string& name) const {
    for (const auto& c : cells_)
      if (c.first == name) return &c.second;
    return nullptr;
  }
  double number(const std::string& name) const {
    const cell* c = find(name);
    FASA_CHECK(c != nullptr, "result row has no column '", name, "'");
    if (const auto* d = std::get_if<double>(c)) return *d;
    if (const auto* i = std::get_if<std::int64_t>(c)) return static_cast<double>(*i);
    const std::string& s = std::get<std::string>(*c);
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    FASA_CHECK(!s.empty() && end == s.c_str() + s.size(), "result column '", name, "' holds '", s,
               "', not a number");
    return d;
  }
  std::string text(const std::string& name) const {
    const cell* c = find(name);
    return c ? to_text(*c) : std::string();
  }
  static std::string to_text(const cell& c) {
    if (const auto* s = std::get_if<std::string>(&c)) return *s;
    if (const auto* i = std::get_if<std::int64_t>(&c)) return std::to_string(*i);
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.6g", std::get<double>(c));
    return buf;
  }

 private:
  std::vector<std::pair<std::string, cell>> cells_;
};

inline row variant_row(const variant& v) {
  row r;
  r.set("variant", v.key()).set("selector", v.selector);
  r.set("budget", v.selector == "dense" ? std::string("all") : variant::format_budget(v.budget));
  r.set("n_tip", v.selector == "fasa" ? std::int64_t{v.n_tip} : std::int64_t{0});
  r.set("granularity", v.selector == "dense" ? "-" : to_string(v.granularity));
  r.set("mapping", v.selector == "fasa" ? positional::to_string(v.mapping) : "-");
  r.set("sinks", std::int64_t{v.force.sinks}).set("recent", std::int64_t{v.force.recent});
  return r;
}

// A variant key as a file name: "fasa budget=256 mode=kv_head" -> "fasa_budget-256_mode-kv_head".
inline std::string file_name_of(const std::string& key) {
  std::string out;
  for (char ch : key)
    out += ch == ' '                                                                  ? '_'
           : ch == '='                                                                ? '-'
           : (std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_') ? ch
                                                                                      : '-';
  return out;
}

inline std::string csv_escape(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char ch : s) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

// The union of the rows' columns, in first-seen order.
inline std::vector<std::string> columns_of(const std::vector<row>& rows) {
  std::vector<std::string> cols;
  for (const auto& r : rows)
    for (const auto& c : r.cells())
      if (std::find(cols.begin(), cols.end(), c.first) == cols.end()) cols.push_back(c.first);
  return cols;
}

inline void write_csv(const std::vector<row>& rows, const std::string& path) {
  std::ofstream out(path);
  FASA_CHECK(out.good(), "cannot write the CSV file '", path, "'");
  const auto cols = columns_of(rows);
  for (std::size_t i = 0; i < cols.size(); ++i) out << (i ? "," : "") << csv_escape(cols[i]);
  out << "\n";
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < cols.size(); ++i)
      out << (i ? "," : "") << csv_escape(r.text(cols[i]));
    out << "\n";
  }
  FASA_CHECK(out.good(), "writing the CSV file '", path, "' failed");
}

inline nlohmann::json to_json(const row& r) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& c : r.cells())  // no structured binding: clang 14 cannot capture one
    std::visit([&](const auto& x) { j[c.first] = x; }, c.second);
  return j;
}

inline void write_json(const std::vector<row>& rows, const nlohmann::json& meta,
                       const std::string& path) {
  std::ofstream out(path);
  FASA_CHECK(out.good(), "cannot write the JSON file '", path, "'");
  nlohmann::json j = meta;
  j["rows"] = nlohmann::json::array();
  for (const auto& r : rows) j["rows"].push_back(to_json(r));
  out << j.dump(2) << "\n";
  FASA_CHECK(out.good(), "writing the JSON file '", path, "' failed");
}

// A plain-text table of the chosen columns on stdout.
inline void print_table(const std::vector<row>& rows, const std::vector<std::string>& cols) {
  std::vector<std::size_t> width(cols.size());
  for (std::size_t i = 0; i < cols.size(); ++i) {
    width[i] = cols[i].size();
    for (const auto& r : rows) width[i] = std::max(width[i], r.text(cols[i]).size());
  }
  auto line = [&](auto cell) {
    std::string s;
    for (std::size_t i = 0; i < cols.size(); ++i) {
      std::string t = cell(i);
      s += (i ? "  " : "") + t + std::string(width[i] - t.size(), ' ');
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    std::printf("%s\n", s.c_str());
  };
  line([&](std::size_t i) { return cols[i]; });
  for (const auto& r : rows) line([&](std::size_t i) { return r.text(cols[i]); });
}

// ---- the session -----------------------------------------------------------------------------

struct session_options {
  std::string model_path = default_model_path();
  std::string backend = "eigen";
  // fasa-calibrate files, one per GQA mode and FC mapping the variants use; none: measured
  std::vector<std::string> calibration_files;
  std::string calibration_text = default_data_dir() + "/text/moby_dick.txt";
  std::vector<int> dense_layers{0};
  double prefix_cache_mb = 4096;  // captured prefixes kept in memory for the next variant
  int calibration_k = 0;          // the CA window K that picks fasa's FCs; 0: the official rule
  bool offload = false;           // fasa as FASA-M (storage::split_offload)
};

// Evaluates variants on one model: builds each variant's layers, obtains calibrations (cached
// per GQA mode and FC mapping), and captures each sample's dense prefill once.
class session {
 public:
  explicit session(session_options o) : opt_(std::move(o)), model_(load_model(opt_.model_path)) {
    check_backend_name(opt_.backend);
    FASA_CHECK(opt_.prefix_cache_mb >= 0, "--prefix-cache-mb must be >= 0");
    FASA_CHECK(opt_.calibration_k >= 0, "--calibration-k must be >= 0 (0: the official rule)");
  }

  const loaded_model& model() const { return model_; }
  const model::llama_config& config() const { return model_.weights.config; }
  const session_options& options() const { return opt_; }

  // The calibration a fasa variant uses: the --calibration file of its GQA mode and FC mapping,
  // or, with no files given, one measured on the calibration text (cached on disk).
  const calib::calibration& calibration(const variant& v) {
    const auto key = std::make_pair(v.granularity, v.mapping);
    auto it = calibrations_.find(key);
    if (it != calibrations_.end()) return it->second;
    if (!opt_.calibration_files.empty()) {
      std::string have;
      for (const auto& f : opt_.calibration_files) {
        auto cal = calib::read_calibration(fs::path(f));
        calib::check_compatible(cal, config().rope(cal.rope.mapping), config().attention(1));
        if (cal.granularity == v.granularity && cal.rope.mapping == v.mapping)
          return calibrations_.emplace(key, std::move(cal)).first->second;
        have += std::string(have.empty() ? "" : ", ") + "'" + f + "' (" +
                to_string(cal.granularity) + ", " + positional::to_string(cal.rope.mapping) + ")";
      }
      FASA_FAIL("no --calibration file is per ", to_string(v.granularity), " with the ",
                positional::to_string(v.mapping), " FC mapping, which the variant '", v.key(),
                "' needs; given: ", have);
    }
    calibration_options co;
    co.text = opt_.calibration_text;
    co.granularity = v.granularity;
    co.mapping = v.mapping;
    return calibrations_.emplace(key, obtain_calibration(model_, opt_.model_path, co))
        .first->second;
  }

  // A model running `v` with room for `capacity` tokens.
  std::unique_ptr<model::llama_model> make_model(const variant& v, std::int64_t capacity) {
    attention_options a;
    a.selector = v.selector;
    a.backend = opt_.backend;
    a.budget = v.budget;
    a.n_tip = v.n_tip;
    a.granularity = v.granularity;
    a.force = v.force;
    a.dense_layers = opt_.dense_layers;
    a.calibration_k = opt_.calibration_k;
    a.offload = opt_.offload;
    a.capacity = capacity;
    const calib::calibration* cal = v.selector == "fasa" ? &calibration(v) : nullptr;
    return std::make_unique<model::llama_model>(model_.weights, build_attention(config(), a, cal));
  }

  // The dense prefill of `tokens`, captured once per sample id and reused.
  const model::kv_prefix& prefix(const std::string& id, const std::vector<std::int32_t>& tokens) {
    for (auto it = prefixes_.begin(); it != prefixes_.end(); ++it)
      if (it->first == id) {
        FASA_CHECK(it->second.tokens == tokens, "internal: sample id '", id,
                   "' names two different token sequences");
        prefixes_.splice(prefixes_.begin(), prefixes_, it);  // most recently used first
        return prefixes_.front().second;
      }
    if (!dense_ || dense_->capacity() < static_cast<std::int64_t>(tokens.size())) {
      variant d;
      d.selector = "dense";
      dense_ = make_model(d, static_cast<std::int64_t>(tokens.size()));
    }
    std::fprintf(stderr, "prefill: %s (%zu tokens)\n", id.c_str(), tokens.size());
    prefixes_.emplace_front(id, dense_->prefill_captured(tokens));
    std::size_t bytes = 0;
    for (auto it = prefixes_.begin(); it != prefixes_.end();) {
      bytes += it->second.bytes();
      if (it != prefixes_.begin() && bytes > opt_.prefix_cache_mb * 1e6)
        it = prefixes_.erase(it);
      else
        ++it;
    }
    return prefixes_.front().second;
  }

  // Greedy continuation: starts from a captured prefix of prompt[0 .. n-1), decodes the last
  // prompt token and then up to max_tokens more through `m`; stops at end of generation.
  std::vector<std::int32_t> greedy(model::llama_model& m, const std::string& id,
                                   const std::vector<std::int32_t>& prompt, int max_tokens,
                                   double* kv_fraction = nullptr) {
    FASA_CHECK(prompt.size() >= 2, "a prompt needs at least 2 tokens");
    const std::vector<std::int32_t> head(prompt.begin(), prompt.end() - 1);
    m.load_prefix(prefix(id, head));
    auto logits = m.decode(prompt.back());
    std::vector<std::int32_t> out;
    double bytes = 0, dense_bytes = 0;
    for (int i = 0; i < max_tokens; ++i) {
      for (const auto& s : m.last_step_stats()) {
        bytes += static_cast<double>(s.bytes_read());
        dense_bytes += static_cast<double>(s.dense_bytes);
      }
      const std::int32_t next = model::argmax(logits);
      if (model_.tokenizer.is_end_of_generation(next)) break;
      out.push_back(next);
      if (i + 1 < max_tokens) logits = m.decode(next);
    }
    if (kv_fraction) *kv_fraction = dense_bytes > 0 ? bytes / dense_bytes : 1.0;
    return out;
  }

 private:
  session_options opt_;
  loaded_model model_;
  std::map<std::pair<selection_granularity, positional::fc_mapping>, calib::calibration>
      calibrations_;
  std::list<std::pair<std::string, model::kv_prefix>> prefixes_;
  std::unique_ptr<model::llama_model> dense_;
};

// -log softmax(logits)[target], in double.
inline double token_nll(std::span<const float> logits, std::int32_t target) {
  FASA_CHECK(target >= 0 && static_cast<std::size_t>(target) < logits.size(), "token id ", target,
             " is outside the vocabulary");
  const float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float x : logits) sum += std::exp(static_cast<double>(x) - mx);
  return std::log(sum) + mx - logits[static_cast<std::size_t>(target)];
}

// ---- the flags every protocol takes ------------------------------------------------------------

struct common_flags {
  session_options session;
  std::vector<std::string> selectors{"dense", "oracle", "fasa"};
  std::vector<double> budgets{256};
  std::vector<int> n_tips{0};
  std::vector<std::string> modes{"query_head"};
  std::vector<std::string> mappings{"rotation_pairs"};
  std::vector<int> sinks{0}, recents{0};
  std::string csv, json, plot_dir;

  void add_to(CLI::App* app) {
    app->add_option("--model", session.model_path, "GGUF file of a Llama-family model")
        ->capture_default_str();
    app->add_option("--selector", selectors,
                    "selectors to evaluate, comma-separated: dense (the full cache), oracle (exact "
                    "top-k of the full logits), fasa (TIP on the dominant FCs + exact FAC)")
        ->delimiter(',')
        ->capture_default_str();
    app->add_option("--budget", budgets,
                    "token budgets N_fac, comma-separated: >= 1 a count of tokens, < 1 a fraction "
                    "of the current context")
        ->delimiter(',')
        ->capture_default_str()
        ->check(budget_check());
    app->add_option("--n-tip", n_tips,
                    "dominant FCs per head for fasa, comma-separated (0: head_dim/8, the paper's "
                    "16 of 64 at d = 128)")
        ->delimiter(',')
        ->capture_default_str()
        ->check(n_tip_check());
    app->add_option("--granularity", modes,
                    "GQA selection mode(s): query_head (each query head picks its own tokens, as "
                    "the paper's code) or kv_head (one set per KV head, group queries summed)")
        ->delimiter(',')
        ->capture_default_str();
    app->add_option("--mapping", mappings,
                    "FC mapping(s): rotation_pairs (the true RoPE pairs) or adjacent_dims (the "
                    "paper code's pairing of adjacent dims)")
        ->delimiter(',')
        ->capture_default_str();
    app->add_option("--sinks", sinks,
                    "oracle, fasa: the first N tokens are always kept, taking budget slots; "
                    "comma-separated (0: none, as the paper's method)")
        ->delimiter(',')
        ->capture_default_str()
        ->check(tokens_at_least(0));
    app->add_option("--recent", recents,
                    "oracle, fasa: the last N tokens (the current one included) are always kept, "
                    "taking budget slots; comma-separated (0: none, as the paper's method)")
        ->delimiter(',')
        ->capture_default_str()
        ->check(tokens_at_least(0));
    app->add_option("--calibration", session.calibration_files,
                    "calibration files from fasa-calibrate, comma-separated, one per GQA mode and "
                    "FC mapping the variants use (default: measured once on --calibration-text "
                    "with 1,024 prefill tokens and cached)")
        ->delimiter(',');
    app->add_option("--calibration-text", session.calibration_text,
                    "text to calibrate on when no --calibration file is given")
        ->capture_default_str();
    app->add_option("--calibration-k", session.calibration_k,
                    "the calibration window K whose mean CA chooses fasa's dominant FCs (FASA "
                    "Table 5); 0: the official code's rule, K = the budget when measured, 1024 "
                    "for a fractional budget. A K the file lacks means the largest measured K "
                    "below it")
        ->capture_default_str()
        ->check(tokens_at_least(0));
    app->add_option("--dense-layers", session.dense_layers,
                    "layers kept dense whatever the selector (the paper's code: 0)")
        ->delimiter(',')
        ->capture_default_str()
        ->check(whole_in(0, 4095));
    app->add_option("--backend", session.backend, backend_help)->capture_default_str();
    app->add_flag("--offload", session.offload,
                  "run fasa as FASA-M: the dominant-dim key slab near, the other key dims and the "
                  "values far (on --backend cuda in pinned host memory, each step's missing kept "
                  "rows fetched over the bus; on the CPU one buffer, FASA-C's answers)");
    app->add_option("--prefix-cache-mb", session.prefix_cache_mb,
                    "memory for dense prefills kept for reuse by the next variant")
        ->capture_default_str()
        ->check(real_in(0.0, 1 << 20));
    app->add_option("--csv", csv, "write the per-sample and summary rows to this CSV file");
    app->add_option("--json", json, "write the rows and the run's settings to this JSON file");
    app->add_option("--plot-dir", plot_dir,
                    "write the protocol's plots (SVG) into this folder (retrieval: one depth x "
                    "length grid per variant; fasa-ablate: metric vs budget)");
  }

  std::vector<variant> variants(const model::llama_config& c) const {
    for (int n : n_tips)
      FASA_CHECK(n <= c.head_dim / 2, "--n-tip ", n, " exceeds the ", c.head_dim / 2,
                 " FCs per head of this model");
    return expand_variants(selectors, budgets, n_tips, modes, mappings, c.head_dim / 8, sinks,
                           recents);
  }
};

// The run's settings, for the JSON file and the results' provenance.
inline nlohmann::json run_meta(const std::string& protocol, const common_flags& f,
                               const session& s) {
  nlohmann::json j;
  j["protocol"] = protocol;
  j["model"] = s.config().name;
  j["model_file"] = fs::path(f.session.model_path).filename().string();
  j["calibration"] = nlohmann::json::array();
  for (const auto& c : f.session.calibration_files)
    j["calibration"].push_back(fs::path(c).filename().string());
  if (f.session.calibration_files.empty())
    j["calibration"].push_back("measured on " +
                               fs::path(f.session.calibration_text).filename().string());
  j["dense_layers"] = f.session.dense_layers;
  j["backend"] = f.session.backend;
  j["offload"] = f.session.offload;
  j["calibration_k"] = f.session.calibration_k;
  return j;
}

}  // namespace fasa::tools::eval
