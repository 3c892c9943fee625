// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the model tools share: finding the default model and data, loading a model with its
// tokenizer, measuring contextual agreement on windows of a calibration text (the one function
// behind fasa-calibrate and obtain_calibration), obtaining a calibration (from a file, or
// measured once on a calibration text and cached), and the one dispatch table that turns a
// selector name into a composition.

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_checks.hpp"
#include "fasa/backends/cpu/eigen.hpp"
#include "fasa/backends/cpu/reference.hpp"
#include "fasa/calib/calibration_file.hpp"
#include "fasa/calib/dominant_sets.hpp"
#include "fasa/model/calibrate.hpp"
#include "fasa/model/gguf_llama.hpp"
#include "fasa/model/layers.hpp"
#include "fasa/model/llama.hpp"
#include "fasa/model/tokenizer_bpe.hpp"
#include "layer_request.hpp"

#if defined(FASA_TOOLS_HAVE_CUDA)
#include "cuda/layers_cuda.hpp"
#endif

namespace fasa::tools {

namespace fs = std::filesystem;

inline double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline fs::path cache_dir() {
  if (const char* d = std::getenv("FASA_CACHE_DIR")) return d;
  const char* home = std::getenv("HOME");
  return fs::path(home ? home : ".") / ".cache" / "fasa";
}

// $FASA_MODEL, else where scripts/fetch-model.sh caches SmolLM2-135M-Instruct.
inline std::string default_model_path() {
  if (const char* m = std::getenv("FASA_MODEL")) return m;
  return (cache_dir() / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf").string();
}

// ../shared/data beside the repository, or $FASA_DATA_DIR.
inline std::string default_data_dir() {
  if (const char* d = std::getenv("FASA_DATA_DIR")) return d;
  return "../shared/data";
}

inline std::string read_text_file(const fs::path& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  FASA_CHECK(in.good(), "cannot open ", what, " '", path.string(), "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A Project Gutenberg book without its licence header and footer.
inline std::string strip_gutenberg(const std::string& text) {
  std::size_t start = text.find("*** START OF");
  start = start == std::string::npos ? 0 : text.find('\n', start) + 1;
  std::size_t end = text.find("*** END OF", start);
  return text.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

struct loaded_model {
  model::gguf_file file;
  model::llama_weights weights;
  model::bpe_tokenizer tokenizer;
};

inline loaded_model load_model(const std::string& path) {
  FASA_CHECK(fs::exists(path), "model file '", path,
             "' does not exist; run scripts/fetch-model.sh for the default model or pass --model");
  model::gguf_file file{fs::path(path)};
  auto weights = model::read_gguf_llama(file);
  auto tokenizer = model::bpe_tokenizer::from_gguf(file);
  return {std::move(file), std::move(weights), std::move(tokenizer)};
}

// A one-line progress bar with an ETA on stderr.
inline void progress_bar(const char* what, std::int64_t done, std::int64_t total, double start) {
  const double elapsed = seconds_now() - start;
  const double eta = done > 0 ? elapsed * static_cast<double>(total - done) / done : 0.0;
  const int width = 30, filled = static_cast<int>(width * done / std::max<std::int64_t>(total, 1));
  std::fprintf(stderr, "\r%s [%s%s] %lld/%lld  %.0fs, ETA %.0fs ", what,
               std::string(static_cast<std::size_t>(filled), '#').c_str(),
               std::string(static_cast<std::size_t>(width - filled), '.').c_str(),
               static_cast<long long>(done), static_cast<long long>(total), elapsed, eta);
  if (done == total) std::fprintf(stderr, "\n");
}

// ---- calibration: the text, its windows, the one measuring function --------------------------

struct calibration_options {
  std::string file;  // an existing calibration file; empty: measure (or reuse the cached one)
  std::string text;  // the calibration text, when measuring
  std::int64_t prefill = 1024;
  std::int64_t steps = 64;
  selection_granularity granularity = selection_granularity::query_head;
  positional::fc_mapping mapping = positional::fc_mapping::rotation_pairs;
};

// A text the tools read (`what` names it in errors): a JSON file {"text": "..."} (the haystack
// essays) when the name ends in .json, else plain text, without its licence header and footer
// when it is a Project Gutenberg book.
inline std::string read_text_corpus(const std::string& path, const char* what) {
  std::string raw = read_text_file(path, what);
  std::string text;
  if (fs::path(path).extension() == ".json") {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(raw);
    } catch (const nlohmann::json::exception& e) {
      FASA_FAIL(what, " '", path, "' is not valid JSON (", e.what(), ")");
    }
    FASA_CHECK(j.is_object() && j.contains("text") && j["text"].is_string(), what, " '", path,
               "': expected a JSON object with a string field \"text\", like ",
               "haystack/PaulGrahamEssays.json");
    text = j["text"].get<std::string>();
  } else {
    text = raw.find("*** START OF") != std::string::npos ? strip_gutenberg(raw) : std::move(raw);
  }
  FASA_CHECK(text.find_first_not_of(" \t\r\n") != std::string::npos, what, " '", path,
             "' is empty");
  return text;
}

inline std::string read_calibration_text(const std::string& path) {
  return read_text_corpus(path, "calibration text");
}

// One window of a calibration text.
struct calibration_sample {
  double start_fraction = 0;   // where it was asked to start, as a fraction of the text
  std::size_t char_begin = 0;  // the bytes of the text its tokens cover: [char_begin, char_end)
  std::size_t char_end = 0;
  std::vector<std::int32_t> tokens;  // exactly the window's length
};

// Windows of `length` tokens starting at fractions `starts` (each in [0, 1), ascending) of the
// text. A window at 0 starts at the text's first byte; any other moves forward to the next
// paragraph (else line) start, so that it begins with a whole sentence. Each window is the
// first `length` tokens of the text from its start (tokenizing is fast: 0.3 s for 3 MB). Throws
// when the text runs out before a window is full, or when two windows overlap (their steps
// would count twice).
inline std::vector<calibration_sample> calibration_windows(const model::bpe_tokenizer& tok,
                                                           const std::string& text,
                                                           std::span<const double> starts,
                                                           std::int64_t length,
                                                           const std::string& source) {
  FASA_CHECK(length >= 1, "calibration windows need a positive length, got ", length);
  FASA_CHECK(!starts.empty(), "no calibration window asked for");
  std::vector<calibration_sample> out;
  for (std::size_t i = 0; i < starts.size(); ++i) {
    const double f = starts[i];
    FASA_CHECK(f >= 0 && f < 1 && (i == 0 || f > starts[i - 1]),
               "calibration window starts must be ascending fractions in [0, 1), got ", f);
    std::size_t begin = static_cast<std::size_t>(f * static_cast<double>(text.size()));
    if (begin > 0) {
      std::size_t p = text.find("\n\n", begin);
      if (p == std::string::npos) p = text.find('\n', begin);
      if (p != std::string::npos) begin = p;
      begin = std::min(text.find_first_not_of(" \t\r\n", begin), text.size());
      while (begin < text.size() && (static_cast<unsigned char>(text[begin]) & 0xC0u) == 0x80u)
        ++begin;  // never inside a UTF-8 sequence
    }
    std::vector<std::int32_t> ids = tok.encode(std::string_view(text).substr(begin), false);
    FASA_CHECK(static_cast<std::int64_t>(ids.size()) >= length, "calibration text '", source,
               "' has only ", ids.size(), " tokens from byte ", begin, " (window ", i + 1, " of ",
               starts.size(), ", at ", f,
               " of the text) to its end; need prefill + steps = ", length,
               ". Use a longer text, fewer samples or fewer tokens");
    ids.resize(static_cast<std::size_t>(length));
    calibration_sample s;
    s.start_fraction = f;
    s.char_begin = begin;
    s.char_end = begin + tok.decode(ids, true).size();
    s.tokens = std::move(ids);
    if (!out.empty())
      FASA_CHECK(out.back().char_end <= s.char_begin, "calibration text '", source,
                 "' is too short for ", starts.size(), " windows of ", length, " tokens: window ",
                 out.size(), " (bytes ", out.back().char_begin, "-", out.back().char_end,
                 ") overlaps window ", out.size() + 1, " (from byte ", s.char_begin,
                 "). Use fewer samples or fewer tokens");
    out.push_back(std::move(s));
  }
  return out;
}

// What measure_calibration measures.
struct measure_options {
  std::string text;                 // the calibration text (read_calibration_text)
  std::vector<double> starts{0.0};  // where each sample window starts, as fractions of the text
  std::int64_t prefill = 1024;
  std::int64_t steps = 64;
  std::vector<int> k_values{64, 128, 256, 512, 1024};
  std::vector<selection_granularity> granularities{selection_granularity::query_head};
  positional::fc_mapping mapping = positional::fc_mapping::rotation_pairs;
  std::int64_t prefill_chunk = 256;  // prefill blocks, so that its progress bar moves
  bool progress = true;              // progress bars on stderr
};

struct measurement {
  model::calibrator cal;                    // the accumulated CA, one accumulator per granularity
  std::vector<calibration_sample> samples;  // the windows measured (tokens kept)
  std::size_t text_bytes = 0;
  double seconds = 0;  // prefill and decode of every sample
};

// The one measuring function of the tools (fasa-calibrate, and obtain_calibration for the others):
// reads the text, takes its windows, and runs each window densely through the model (prefill, then
// decode steps), accumulating every FC's contextual agreement at every granularity asked for.
inline measurement measure_calibration(const loaded_model& m, const measure_options& o) {
  const auto& c = m.weights.config;
  const std::string text = read_calibration_text(o.text);
  const std::int64_t length = o.prefill + o.steps;
  model::calibration_run run;
  run.prefill = o.prefill;
  run.decode_steps = o.steps;
  run.k_values = o.k_values;
  run.mapping = o.mapping;
  run.prefill_chunk = o.prefill_chunk;
  measurement r{model::calibrator(c, run, o.granularities), {}, text.size(), 0.0};
  r.samples = calibration_windows(m.tokenizer, text, o.starts, length, o.text);
  model::llama_model dense(m.weights, model::dense_layers<backend::cpu_eigen>(c, length));
  const double start = seconds_now();
  for (std::size_t i = 0; i < r.samples.size(); ++i) {
    const std::string label = r.samples.size() == 1 ? std::string()
                                                    : "sample " + std::to_string(i + 1) + "/" +
                                                          std::to_string(r.samples.size()) + " ";
    const std::string prefill_label = label + "prefill ", decode_label = label + "decode  ";
    double t0 = seconds_now();
    if (o.progress)
      r.cal.set_progress(
          [&](std::int64_t d, std::int64_t n) {
            progress_bar(prefill_label.c_str(), d, n, t0);
            if (d == n) t0 = seconds_now();  // the decode bar's clock
          },
          [&](std::int64_t d, std::int64_t n) { progress_bar(decode_label.c_str(), d, n, t0); });
    r.cal.add_sample(dense, r.samples[i].tokens);
  }
  r.cal.set_progress({}, {});  // the bars refer to this function's locals
  r.seconds = seconds_now() - start;
  return r;
}

// The calibration for `m`: read from options.file, or measured on options.text and cached under
// the cache directory (keyed by model file, size, granularity and FC mapping).
inline calib::calibration obtain_calibration(const loaded_model& m, const std::string& model_path,
                                             const calibration_options& o) {
  const auto& c = m.weights.config;
  const attention_shape shape = c.attention(1);
  if (!o.file.empty()) {
    auto cal = calib::read_calibration(fs::path(o.file));
    calib::check_compatible(cal, c.rope(o.mapping), shape);
    FASA_CHECK(cal.granularity == o.granularity, "calibration file '", o.file, "' is per ",
               to_string(cal.granularity), " but ", to_string(o.granularity), " was asked for");
    return cal;
  }
  const fs::path cached =
      cache_dir() / "calibration" /
      (fs::path(model_path).stem().string() + "-" + std::to_string(fs::file_size(model_path)) +
       "-" + to_string(o.granularity) + "-" + positional::to_string(o.mapping) + "-" +
       fs::path(o.text).stem().string() + ".json");
  if (fs::exists(cached)) {
    std::fprintf(stderr, "calibration: using the cached %s\n", cached.string().c_str());
    return calib::read_calibration(cached);
  }
  std::fprintf(stderr, "calibration: measuring CA on %s (%lld prefill + %lld decode steps)\n",
               o.text.c_str(), static_cast<long long>(o.prefill), static_cast<long long>(o.steps));
  measure_options mo;
  mo.text = o.text;
  mo.starts = {0.0};  // the text's first prefill + steps tokens
  mo.prefill = o.prefill;
  mo.steps = o.steps;
  mo.granularities = {o.granularity};
  mo.mapping = o.mapping;
  const measurement r = measure_calibration(m, mo);
  calib::calibration::model_info info;
  info.name = c.name;
  auto cal = calib::make_calibration(r.cal.accumulator(o.granularity), c.rope(o.mapping), info, 256,
                                     c.head_dim / 8);
  fs::create_directories(cached.parent_path());
  calib::write_calibration(cal, cached);
  std::fprintf(stderr, "calibration: wrote %s\n", cached.string().c_str());
  return cal;
}

// The window K whose mean CA picks the dominant FCs for a budget: the budget itself when it
// was measured (the official code's rule), else the largest measured K not above it, else the
// smallest.
inline int calibration_window(const calib::calibration& cal, std::int64_t budget) {
  int k = cal.k_values.front();
  for (int kv : cal.k_values)
    if (kv <= budget) k = kv;
  return k;
}

// The CLI check of every tool's --n-tip (each value of a list): 0 for head_dim/8, else a count
// of FCs; whether it fits the model's head_dim/2 is checked once the model is loaded.
inline CLI::Validator n_tip_check() {
  return whole_at_least(0, "N_tip must be 0 (head_dim/8) or a number of FCs >= 1", "N_TIP>=0");
}

// The dominant FC sets a fasa variant runs with: N_tip (0: head_dim/8) FCs per unit, chosen at
// the calibration window for the budget (a fractional budget uses K = 1024, the official code's
// rule), or at `k` when given (> 0).
inline calib::dominant_fc_sets dominant_sets_for(const calib::calibration& cal, token_budget budget,
                                                 int n_tip, int head_dim, int k = 0) {
  const std::int64_t b = k > 0 ? k : budget.is_fraction() ? 1024 : budget.count();
  return calib::choose_dominant_fcs(cal.ca(), calibration_window(cal, b),
                                    n_tip > 0 ? n_tip : head_dim / 8);
}

// ---- the dispatch table: selector names -> compositions --------------------------------------

struct attention_options {
  std::string selector = "fasa";  // dense | oracle | fasa
  std::string backend = "eigen";  // eigen | reference | cuda | cuda-fp16 | cuda-fp32
  double budget = 256;            // >= 1: tokens; in (0, 1): a fraction of the context
  int n_tip = 0;                  // 0: head_dim / 8 (the paper's 16 of 64 FCs at d = 128)
  selection_granularity granularity = selection_granularity::query_head;
  std::vector<int> dense_layers{0};
  std::int64_t capacity = 0;
  int calibration_k = 0;  // the CA window K that picks fasa's FCs; 0: the official rule
  forced_tokens force;    // oracle, fasa: sinks / recent tokens kept before ranking
  bool offload = false;   // fasa: FASA-M (the slab on the device, the rest in host memory)
};

inline token_budget parse_budget(double b) {
  FASA_CHECK(b > 0, "--budget must be positive (tokens, or a fraction below 1), got ", b);
  return b < 1.0 ? token_budget::fraction(b) : token_budget::tokens(static_cast<std::int64_t>(b));
}

inline selection_granularity parse_granularity(const std::string& s) {
  if (s == "query_head") return selection_granularity::query_head;
  if (s == "kv_head") return selection_granularity::kv_head;
  FASA_FAIL("unknown granularity '", s, "'; known: query_head, kv_head");
}

inline positional::fc_mapping parse_mapping(const std::string& s) {
  if (s == "rotation_pairs") return positional::fc_mapping::rotation_pairs;
  if (s == "adjacent_dims") return positional::fc_mapping::adjacent_dims;
  FASA_FAIL("unknown FC mapping '", s, "'; known: rotation_pairs, adjacent_dims");
}

// The layers a tool's options ask for, as the one table (layer_request.hpp) takes them.
inline layers_request request_for(const model::llama_config& c, const attention_options& o,
                                  const calib::calibration* cal) {
  const positional::fc_mapping mapping =
      cal ? cal->rope.mapping : positional::fc_mapping::rotation_pairs;
  layers_request r(model::stack_of(c, o.capacity, mapping));
  r.selector = o.selector;
  r.plan.capacity = o.capacity;
  r.plan.dense_layers = o.dense_layers;
  r.plan.mapping = mapping;
  r.budget = parse_budget(o.budget);
  r.granularity = o.granularity;
  o.force.validate();
  r.force = o.force;
  r.offload = o.offload;
  if (o.selector == "fasa") {
    FASA_CHECK(cal != nullptr, "the fasa selector needs a calibration");
    r.dominant = dominant_sets_for(*cal, r.budget, o.n_tip, c.head_dim, o.calibration_k);
  }
  return r;
}

// The backends a model tool's --backend takes, for its help text.
inline constexpr const char* backend_help =
    "attention backend: eigen (CPU), reference (the naive CPU oracle, slow), or cuda / "
    "cuda-fp16 / cuda-fp32 (every layer's cache on the GPU, bf16 / fp16 / fp32 elements; builds "
    "with CUDA only)";

inline bool is_cuda_backend(const std::string& b) {
  return b == "cuda" || b == "cuda-fp16" || b == "cuda-fp32";
}

inline void check_backend_name(const std::string& b) {
  FASA_CHECK(b == "eigen" || b == "reference" || is_cuda_backend(b), "unknown backend '", b,
             "'; known: eigen, reference, cuda, cuda-fp16, cuda-fp32");
}

inline std::vector<std::unique_ptr<model::layer_attention>> build_attention(
    const model::llama_config& c, const attention_options& o, const calib::calibration* cal) {
  check_backend_name(o.backend);
  const layers_request r = request_for(c, o, cal);
  if (o.backend == "eigen") return build_layers_for<backend::cpu_eigen>(r);
  if (o.backend == "reference") return build_layers_for<backend::cpu_reference>(r);
#if defined(FASA_TOOLS_HAVE_CUDA)
  return build_cuda_layers(r, o.backend == "cuda" ? "bf16" : o.backend.substr(5));
#else
  FASA_FAIL("--backend ", o.backend,
            ": this build has no CUDA backend (configure with -DFASA_ENABLE_CUDA=ON where nvcc "
            "is found)");
#endif
}

// KV bytes every layer read at the last decode step, summed over layers.
inline std::int64_t kv_bytes_last_step(const model::llama_model& m) {
  std::int64_t b = 0;
  for (const auto& s : m.last_step_stats()) b += s.bytes_read();
  return b;
}

}  // namespace fasa::tools
