// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
// fasa-calibrate: the offline calibration of FASA (Sec. 3.2, Alg. 1) on a real model.
//
// The model reads windows of a calibration text densely: each window's first --prefill tokens
// are prefilled, the next --steps are decoded one at a time, and at every decode step each
// FC's contextual agreement with the full attention logits (FASA Eq. 4) is measured for every
// layer and unit, at every window K. The mean CA per (layer, unit, FC, K) is written as a
// calibration file with the dominant FCs chosen from it (the top N_tip per unit, Eq. 5),
// optionally with the full table as CSV, summary statistics as JSON, and a heat map. The
// statistics are the paper's evidence of sparsity (Table 9: the share of FCs with mean CA above
// 0.4 and below 0.15) and, with --compare, the overlap of the dominant sets with another
// calibration (Table 10).

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "common.hpp"
#include "fasa/eval/svg_plot.hpp"

using namespace fasa;
using namespace fasa::tools;

namespace {

// The paper's thresholds (FASA Table 9).
constexpr double dominant_above = 0.4;
constexpr double non_dominant_below = 0.15;

// path with ".<granularity>" before its extension when several granularities are written.
std::string path_for(const std::string& path, selection_granularity g, bool several) {
  if (!several || path.empty()) return path;
  const fs::path p(path);
  return (p.parent_path() / (p.stem().string() + "." + to_string(g) + p.extension().string()))
      .string();
}

// The window closest to `want` among the measured ones (ties: the smaller).
int nearest_k(const std::vector<int>& ks, int want) {
  int best = ks.front();
  for (int k : ks)
    if (std::abs(k - want) < std::abs(best - want)) best = k;
  return best;
}

// Fails early (before minutes of measuring) when an output cannot be created.
void check_writable(const std::string& path, const char* flag) {
  if (path.empty()) return;
  const fs::path dir = fs::path(path).parent_path();
  FASA_CHECK(dir.empty() || fs::is_directory(dir), flag, " '", path, "': the directory '",
             dir.string(), "' does not exist");
}

template <class F>
void write_file(const std::string& path, const char* what, F&& body) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  FASA_CHECK(out.is_open(), "cannot open ", what, " '", path, "' for writing");
  body(out);
  out.close();
  FASA_CHECK(!out.fail(), "writing ", what, " '", path, "' failed");
}

struct compare_result {
  std::string file;
  std::vector<double> per_layer;  // [num_layers]
  double mean = 0;
};

// Dominant-set overlap (FASA Table 10) of `mine` with `other`, both chosen at window k with
// n_tip FCs per unit from their mean CA.
compare_result compare_with(const calib::calibration& mine, const calib::calibration& other,
                            const std::string& file, int k, int n_tip) {
  const auto a = calib::choose_dominant_fcs(mine.ca(), k, n_tip);
  const auto b = calib::choose_dominant_fcs(other.ca(), k, n_tip);
  compare_result r;
  r.file = file;
  for (std::size_t l = 0; l < a.size(); ++l) r.per_layer.push_back(calib::overlap({a[l]}, {b[l]}));
  r.mean = calib::overlap(a, b);
  return r;
}

// The heat map of one calibration: rows are layers, columns the FCs of each unit, grouped by unit,
// with the dominant FCs outlined.
eval::svg::heat_map ca_heat_map(const calib::calibration& cal, int k, int n_tip,
                                const std::string& model_name, const std::string& text_name,
                                std::int64_t samples, std::int64_t prefill, std::int64_t steps) {
  const calib::ca_table t = cal.ca();
  const int m = t.k_index(k);
  const auto dominant = calib::choose_dominant_fcs(t, k, n_tip);
  const bool q = cal.granularity == selection_granularity::query_head;
  eval::svg::heat_map h;
  h.title = model_name + ": mean contextual agreement at K = " + std::to_string(k) + ", per " +
            (q ? "query head" : "KV head") + " (" + text_name + ", " + std::to_string(samples) +
            " x (" + std::to_string(prefill) + " + " + std::to_string(steps) + ") tokens)";
  h.rows = t.num_layers;
  h.cols = t.num_units * t.num_fcs;
  h.col_group = t.num_fcs;
  h.cell_width = t.num_units * t.num_fcs > 200 ? 5 : 8;
  h.cell_height = 12;
  h.marked.assign(static_cast<std::size_t>(h.rows) * static_cast<std::size_t>(h.cols), 0);
  for (int l = 0; l < t.num_layers; ++l) {
    h.row_labels.push_back(std::to_string(l));
    for (int u = 0; u < t.num_units; ++u) {
      const auto ca = t.unit_values(m, l, u);
      for (int i = 0; i < t.num_fcs; ++i) h.values.push_back(ca[static_cast<std::size_t>(i)]);
      for (int i : dominant[static_cast<std::size_t>(l)][static_cast<std::size_t>(u)])
        h.marked[static_cast<std::size_t>(l) * static_cast<std::size_t>(h.cols) +
                 static_cast<std::size_t>(u * t.num_fcs + i)] = 1;
    }
  }
  const int label_every = t.num_fcs >= 32 ? 8 : 4;
  for (int u = 0; u < t.num_units; ++u) {
    h.col_group_labels.push_back((q ? "query head " : "KV head ") + std::to_string(u));
    for (int i = 0; i < t.num_fcs; ++i)
      h.col_labels.push_back(i % label_every == 0 ? std::to_string(i) : "");
  }
  h.row_title = "layer";
  h.col_title = "FC index within each head (FC i: dims of RoPE frequency theta^(-2i/d); " +
                std::string("low i = high frequency)");
  h.colorbar_title = "mean CA";
  h.marker_legend = "dominant: top " + std::to_string(n_tip) + " of " + std::to_string(t.num_fcs) +
                    " FCs per head";
  return h;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "fasa-calibrate: measure each frequency chunk's contextual agreement (FASA Eq. 4) on a "
      "calibration text and choose every head's dominant FCs (FASA Sec. 3.2, Alg. 1).\n"
      "Writes a calibration file per granularity, prints the sparsity of the CA map (FASA Table 9) "
      "and optionally the dominant-set overlap with another calibration (Table 10), the full CA "
      "table as CSV, a JSON summary and an SVG heat map."};
  std::string model_path = default_model_path();
  std::string text_path = default_data_dir() + "/text/moby_dick.txt";
  int samples = 1;
  double start = -1;
  std::int64_t prefill = 1024, steps = 64;
  std::vector<int> k_values{64, 128, 256, 512, 1024, 2048};
  std::string granularity = "both", mapping = "rotation_pairs";
  int n_tip = 0, select_k = 256, heatmap_k = 0, threads = 0;
  std::string out_path = "calibration.json", csv_path, stats_path, heatmap_path;
  std::vector<std::string> compare_paths;
  bool quiet = false;

  app.add_option("--model", model_path, "GGUF file of a Llama-family model")->capture_default_str();
  app.add_option("--text", text_path,
                 "calibration text: a plain text file (a Project Gutenberg book loses its licence "
                 "header and footer) or a .json file {\"text\": ...} like the haystack essays")
      ->capture_default_str();
  app.add_option("--samples", samples,
                 "calibration windows taken from the text, each --prefill + --steps tokens; their "
                 "decode steps are averaged together (the paper calibrates on one sample)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--start", start,
                 "where the first window starts, as a fraction of the text in [0, 1); the others "
                 "follow evenly to the end. Default: the windows sit at the middles of --samples "
                 "equal parts of the text (one sample: the middle, away from front matter such as "
                 "a table of contents). 0 takes the text's first tokens, as the other tools' "
                 "cached calibration does")
      ->check(CLI::Range(0.0, 0.999999));
  app.add_option("--prefill", prefill, "tokens prefilled densely before the measured steps")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 20));
  app.add_option("--steps", steps,
                 "decode steps measured per sample: each is one query scored against every cached "
                 "key (CA is measured at decode steps only, as in the official code)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 20));
  app.add_option("--k", k_values,
                 "calibration windows K (comma-separated): CA_K is the share of the full logits' "
                 "top-K tokens that one FC's top-K also holds. K >= prefill + steps, where CA is 1 "
                 "for every FC at every step, is dropped with a note")
      ->delimiter(',')
      ->capture_default_str()
      ->check(tokens_at_least(1));
  app.add_option("--granularity", granularity,
                 "selection unit: query_head (the paper), kv_head (the group's queries summed, as "
                 "fasa_tip ranks in kv_head mode), or both (one pass, one file per granularity)")
      ->capture_default_str()
      ->check(CLI::IsMember({"query_head", "kv_head", "both"}));
  app.add_option("--mapping", mapping,
                 "which dims form FC i: rotation_pairs (the RoPE rotation pair, the paper) or "
                 "adjacent_dims (dims 2i, 2i+1 of the tensor, the official code's convention)")
      ->capture_default_str()
      ->check(CLI::IsMember({"rotation_pairs", "adjacent_dims"}));
  app.add_option("--n-tip", n_tip,
                 "dominant FCs chosen per unit, in [1, head_dim/2]; 0: head_dim/8 (the paper's 16 "
                 "of 64 FCs at head_dim 128)")
      ->capture_default_str()
      ->check(n_tip_check());
  app.add_option("--select-k", select_k,
                 "the window K whose mean CA chooses the dominant FCs written to the file and "
                 "compared by --compare; the nearest measured K when not measured")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 30));
  app.add_option("--out", out_path,
                 "calibration file (JSON) to write; with --granularity both, the granularity goes "
                 "before the extension (calibration.query_head.json, calibration.kv_head.json)")
      ->capture_default_str();
  app.add_option("--csv", csv_path,
                 "write the full table: granularity, K, layer, unit, FC, mean CA, and whether the "
                 "FC is dominant (one row per value)");
  app.add_option("--stats-json", stats_path,
                 "write a JSON summary: the run, its windows, the sparsity per K and the overlap "
                 "with --compare");
  app.add_option("--heatmap", heatmap_path,
                 "write an SVG heat map of the mean CA at --heatmap-k: layers x (units x FCs), the "
                 "dominant FCs outlined (granularity before the extension with both)");
  app.add_option("--heatmap-k", heatmap_k,
                 "the window K of the heat map; 0: --select-k (the nearest measured K)")
      ->capture_default_str()
      ->check(tokens_at_least(0));
  app.add_option("--compare", compare_paths,
                 "another calibration file of the same model and mapping (e.g. one made on another "
                 "text), per a granularity measured here: report the overlap of the dominant sets, "
                 "per layer and overall, both chosen at --select-k with --n-tip (FASA Table 10), "
                 "and the overall overlap at every K both measured. Repeat the flag to compare "
                 "several files (e.g. one per granularity)");
  app.add_option("--threads", threads, "OpenMP threads for the model and the CA count; 0: all")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  app.add_flag("--quiet", quiet, "no progress bars");
  CLI11_PARSE(app, argc, argv);

  try {
    if (threads > 0) {
#if defined(_OPENMP)
      omp_set_num_threads(threads);
#endif
      Eigen::setNbThreads(threads);
    }
    const positional::fc_mapping fc_mapping = parse_mapping(mapping);
    std::vector<selection_granularity> granularities;
    if (granularity != "kv_head") granularities.push_back(selection_granularity::query_head);
    if (granularity != "query_head") granularities.push_back(selection_granularity::kv_head);
    const bool several = granularities.size() > 1;

    // Windows K: positive, sorted; those that cannot rank anything dropped.
    for (int k : k_values) FASA_CHECK(k >= 1, "--k: every window K must be positive, got ", k);
    std::sort(k_values.begin(), k_values.end());
    k_values.erase(std::unique(k_values.begin(), k_values.end()), k_values.end());
    std::vector<int> dropped;
    std::erase_if(k_values, [&](int k) {
      if (k < prefill + steps) return false;
      dropped.push_back(k);
      return true;
    });
    if (!dropped.empty()) {
      std::string list;
      for (int k : dropped) list += (list.empty() ? "" : ", ") + std::to_string(k);
      std::fprintf(stderr,
                   "note: dropped K = %s: not below the %lld tokens cached at the last step, so "
                   "CA would be 1 for every FC at every step\n",
                   list.c_str(), static_cast<long long>(prefill + steps));
    }
    FASA_CHECK(!k_values.empty(), "--k: no window K below prefill + steps = ", prefill + steps,
               " is left to measure");
    for (int k : k_values)
      if (k > prefill + 1)
        std::fprintf(stderr,
                     "note: K = %d exceeds the %lld tokens of the first step; it is capped at the "
                     "context (K_eff = min(K, t)) for the first %lld steps\n",
                     k, static_cast<long long>(prefill + 1),
                     static_cast<long long>(k - prefill - 1));
    const int sel_k = std::find(k_values.begin(), k_values.end(), select_k) != k_values.end()
                          ? select_k
                          : nearest_k(k_values, select_k);
    if (sel_k != select_k)
      std::fprintf(stderr, "note: --select-k %d was not measured; using K = %d\n", select_k, sel_k);
    if (2 * sel_k > prefill)
      std::fprintf(stderr,
                   "note: K = %d is %.0f%% of the context; CA there is near 1 for most FCs and "
                   "ranks them poorly. A K of a few percent of the context (the paper: 256 of "
                   "several thousand tokens) separates them\n",
                   sel_k, 100.0 * sel_k / static_cast<double>(prefill + steps));
    const int map_k = heatmap_k == 0 ? sel_k : nearest_k(k_values, heatmap_k);
    if (heatmap_k != 0 && map_k != heatmap_k)
      std::fprintf(stderr, "note: --heatmap-k %d was not measured; using K = %d\n", heatmap_k,
                   map_k);

    // Everything that can fail before the measurement fails now.
    FASA_CHECK(!out_path.empty(), "--out must name a file");
    check_writable(out_path, "--out");
    check_writable(csv_path, "--csv");
    check_writable(stats_path, "--stats-json");
    check_writable(heatmap_path, "--heatmap");
    FASA_CHECK(fs::is_regular_file(text_path), "--text '", text_path, "' does not exist");
    const loaded_model m = load_model(model_path);
    const auto& c = m.weights.config;
    const int tip = n_tip == 0 ? c.head_dim / 8 : n_tip;
    FASA_CHECK(tip >= 1 && tip <= c.head_dim / 2, "--n-tip ", n_tip,
               " is out of range: a head of this model has head_dim/2 = ", c.head_dim / 2,
               " FCs, so N_tip must be in [1, ", c.head_dim / 2, "] (0: head_dim/8)");
    const positional::rope pe = c.rope(fc_mapping);
    std::vector<calib::calibration> others;
    for (const std::string& path : compare_paths) {
      FASA_CHECK(fs::is_regular_file(path), "--compare '", path, "' does not exist");
      calib::calibration other = calib::read_calibration(fs::path(path));
      try {
        calib::check_compatible(other, pe, c.attention(1));
      } catch (const fasa::error& e) {
        FASA_FAIL("--compare '", path, "' does not fit this model and --mapping ", mapping, ": ",
                  e.what());
      }
      FASA_CHECK(std::find(granularities.begin(), granularities.end(), other.granularity) !=
                     granularities.end(),
                 "--compare '", path, "' is per ", to_string(other.granularity),
                 ", which --granularity ", granularity, " does not measure");
      FASA_CHECK(
          std::find(other.k_values.begin(), other.k_values.end(), sel_k) != other.k_values.end(),
          "--compare '", path, "' has no mean CA at K = ", sel_k,
          " (the --select-k window) to choose its dominant FCs from");
      others.push_back(std::move(other));
    }

    std::vector<double> starts;
    for (int i = 0; i < samples; ++i)
      starts.push_back(start < 0 ? (i + 0.5) / samples : start + i * (1.0 - start) / samples);

    std::printf("fasa-calibrate: %s (%d layers, %d query / %d KV heads, head_dim %d: %d FCs)\n",
                c.name.c_str(), c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.head_dim / 2);
    std::printf(
        "text %s: %d window(s) of %lld prefill + %lld decode steps, K = ", text_path.c_str(),
        samples, static_cast<long long>(prefill), static_cast<long long>(steps));
    for (std::size_t i = 0; i < k_values.size(); ++i)
      std::printf("%s%d", i ? "," : "", k_values[i]);
    std::printf(", FC mapping %s, N_tip %d at K = %d\n", mapping.c_str(), tip, sel_k);
    std::fflush(stdout);

    measure_options mo;
    mo.text = text_path;
    mo.starts = starts;
    mo.prefill = prefill;
    mo.steps = steps;
    mo.k_values = k_values;
    mo.granularities = granularities;
    mo.mapping = fc_mapping;
    mo.progress = !quiet;
    const measurement r = measure_calibration(m, mo);
    for (std::size_t i = 0; i < r.samples.size(); ++i)
      std::printf(
          "window %zu: bytes %zu-%zu of %zu (%.1f%%-%.1f%% of the text)\n", i + 1,
          r.samples[i].char_begin, r.samples[i].char_end, r.text_bytes,
          100.0 * static_cast<double>(r.samples[i].char_begin) / static_cast<double>(r.text_bytes),
          100.0 * static_cast<double>(r.samples[i].char_end) / static_cast<double>(r.text_bytes));
    std::printf("measured in %.1f s\n\n", r.seconds);

    calib::calibration::model_info info;
    info.name = c.name;
    nlohmann::ordered_json stats;
    stats["tool"] = "fasa-calibrate";
    stats["model"] = {{"path", model_path},   {"name", c.name},           {"layers", c.n_layers},
                      {"q_heads", c.n_heads}, {"kv_heads", c.n_kv_heads}, {"head_dim", c.head_dim}};
    stats["text"] = {{"path", text_path}, {"bytes", r.text_bytes}};
    nlohmann::ordered_json windows = nlohmann::ordered_json::array();
    for (const auto& s : r.samples)
      windows.push_back({{"start_fraction", s.start_fraction},
                         {"byte_begin", s.char_begin},
                         {"byte_end", s.char_end},
                         {"tokens", s.tokens.size()}});
    stats["windows"] = windows;
    stats["prefill"] = prefill;
    stats["steps"] = steps;
    stats["k_values"] = k_values;
    stats["dropped_k"] = dropped;
    stats["mapping"] = mapping;
    stats["n_tip"] = tip;
    stats["select_k"] = sel_k;
    stats["thresholds"] = {{"dominant_above", dominant_above},
                           {"non_dominant_below", non_dominant_below}};
    stats["seconds"] = r.seconds;
    stats["granularities"] = nlohmann::ordered_json::array();

    std::vector<calib::calibration> cals;
    for (selection_granularity g : granularities) {
      cals.push_back(calib::make_calibration(r.cal.accumulator(g), pe, info, sel_k, tip));
      const std::string path = path_for(out_path, g, several);
      calib::write_calibration(cals.back(), fs::path(path));
      std::printf("wrote %s (per %s, %lld steps per unit)\n", path.c_str(), to_string(g),
                  static_cast<long long>(cals.back().steps));
    }

    // Sparsity (FASA Table 9) per granularity and K.
    std::printf(
        "\nSparsity of the mean CA (FASA Table 9: the share of (layer, head, FC) with mean CA > "
        "%.2f, \"dominant\", and < %.2f, \"non-dominant\"; the paper reports 0.17-0.79 %% and "
        "89.5-95.5 %% at K = 256 for 3B-32B models)\n",
        dominant_above, non_dominant_below);
    std::printf(
        "(chance: the CA an FC whose ranking is unrelated to the full logits' would get, K_eff/t "
        "averaged over the steps; the thresholds mean little once it nears 0.15)\n");
    std::printf("%-11s %6s %8s %10s %10s %8s %8s %8s\n", "granularity", "K", "chance", "CA > 0.4",
                "CA < 0.15", "entries", "mean CA", "max CA");
    for (std::size_t gi = 0; gi < granularities.size(); ++gi) {
      const calib::ca_table t = cals[gi].ca();
      nlohmann::ordered_json g;
      g["granularity"] = to_string(granularities[gi]);
      g["file"] = path_for(out_path, granularities[gi], several);
      g["steps_per_unit"] = cals[gi].steps;
      g["sparsity"] = nlohmann::ordered_json::array();
      for (int k : k_values) {
        const auto sp = calib::sparsity(t, k, dominant_above, non_dominant_below);
        const int m_k = t.k_index(k);
        double max_ca = 0, mean_ca = 0;
        for (int l = 0; l < t.num_layers; ++l)
          for (int u = 0; u < t.num_units; ++u)
            for (double v : t.unit_values(m_k, l, u)) {
              max_ca = std::max(max_ca, v);
              mean_ca += v;
            }
        mean_ca /= static_cast<double>(sp.count);
        double chance = 0;
        for (std::int64_t st = 0; st < steps; ++st) {
          const double t_ctx = static_cast<double>(prefill + st + 1);
          chance += std::min<double>(k, t_ctx) / t_ctx / static_cast<double>(steps);
        }
        std::printf("%-11s %6d %8.3f %9.2f%% %9.1f%% %8lld %8.3f %8.3f\n",
                    to_string(granularities[gi]), k, chance, 100 * sp.dominant,
                    100 * sp.non_dominant, static_cast<long long>(sp.count), mean_ca, max_ca);
        g["sparsity"].push_back({{"k", k},
                                 {"chance_ca", chance},
                                 {"dominant", sp.dominant},
                                 {"non_dominant", sp.non_dominant},
                                 {"entries", sp.count},
                                 {"mean_ca", mean_ca},
                                 {"max_ca", max_ca}});
      }
      stats["granularities"].push_back(g);
    }

    // Overlap with other calibrations (FASA Table 10).
    for (std::size_t oi = 0; oi < others.size(); ++oi) {
      const calib::calibration& other = others[oi];
      const std::string& path = compare_paths[oi];
      const auto gi = static_cast<std::size_t>(
          std::find(granularities.begin(), granularities.end(), other.granularity) -
          granularities.begin());
      const compare_result cr = compare_with(cals[gi], other, path, sel_k, tip);
      std::printf(
          "\nDominant-set overlap with %s (per %s, top %d of %d FCs at K = %d; two random sets "
          "would share %.0f %%; FASA Table 10 reports 65.5-98.4 %% between calibration datasets, "
          "row averages above 73 %%)\n",
          path.c_str(), to_string(other.granularity), tip, c.head_dim / 2, sel_k,
          100.0 * tip / (c.head_dim / 2));
      for (std::size_t l0 = 0; l0 < cr.per_layer.size(); l0 += 15) {
        const std::size_t l1 = std::min(cr.per_layer.size(), l0 + 15);
        std::printf("layer    ");
        for (std::size_t l = l0; l < l1; ++l) std::printf("%5zu", l);
        std::printf("\noverlap %%");
        for (std::size_t l = l0; l < l1; ++l) std::printf("%5.0f", 100 * cr.per_layer[l]);
        std::printf("\n");
      }
      std::printf("mean over layers and heads: %.1f %%\n", 100 * cr.mean);
      // the same at every other window both measured
      nlohmann::ordered_json by_k = nlohmann::ordered_json::array();
      std::printf("at every K measured by both:");
      for (int k : k_values)
        if (std::find(other.k_values.begin(), other.k_values.end(), k) != other.k_values.end()) {
          const double o = compare_with(cals[gi], other, path, k, tip).mean;
          std::printf("  K=%d: %.1f %%", k, 100 * o);
          by_k.push_back({{"k", k}, {"mean", o}});
        }
      std::printf("\n");
      for (auto& g : stats["granularities"])
        if (g["granularity"] == to_string(other.granularity)) {
          if (!g.contains("compare")) g["compare"] = nlohmann::ordered_json::array();
          g["compare"].push_back({{"file", path},
                                  {"k", sel_k},
                                  {"n_tip", tip},
                                  {"chance", static_cast<double>(tip) / (c.head_dim / 2)},
                                  {"per_layer", cr.per_layer},
                                  {"mean", cr.mean},
                                  {"mean_at_k", by_k}});
        }
    }

    // The full table.
    if (!csv_path.empty()) {
      write_file(csv_path, "the CSV", [&](std::ofstream& out) {
        out << "granularity,k,layer,unit,fc,mean_ca,dominant\n";
        for (std::size_t gi = 0; gi < granularities.size(); ++gi) {
          const calib::ca_table t = cals[gi].ca();
          const auto& dom = cals[gi].dominant;
          for (int mk = 0; mk < t.num_k(); ++mk)
            for (int l = 0; l < t.num_layers; ++l)
              for (int u = 0; u < t.num_units; ++u) {
                const auto& d = dom[static_cast<std::size_t>(l)][static_cast<std::size_t>(u)];
                for (int i = 0; i < t.num_fcs; ++i) {
                  char buf[160];
                  std::snprintf(
                      buf, sizeof buf, "%s,%d,%d,%d,%d,%.6f,%d\n", to_string(granularities[gi]),
                      t.k_values[static_cast<std::size_t>(mk)], l, u, i, t.at(mk, l, u, i),
                      t.k_values[static_cast<std::size_t>(mk)] == sel_k &&
                          std::find(d.begin(), d.end(), i) != d.end());
                  out << buf;
                }
              }
        }
      });
      std::printf("\nwrote %s\n", csv_path.c_str());
    }
    if (!heatmap_path.empty())
      for (std::size_t gi = 0; gi < granularities.size(); ++gi) {
        const std::string path = path_for(heatmap_path, granularities[gi], several);
        eval::svg::write_svg(
            path, eval::svg::render(ca_heat_map(
                      cals[gi], map_k, tip, fs::path(model_path).stem().string(),
                      fs::path(text_path).filename().string(), samples, prefill, steps)));
        std::printf("wrote %s (K = %d)\n", path.c_str(), map_k);
      }
    if (!stats_path.empty()) {
      write_file(stats_path, "the stats JSON",
                 [&](std::ofstream& out) { out << stats.dump(2) << "\n"; });
      std::printf("wrote %s\n", stats_path.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fasa-calibrate: %s\n", e.what());
    return 2;
  }
}
