// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Running one protocol over a list of variants: fasa-eval's loop (fasa-ablate adds resuming).

#include <cstdio>
#include <string>
#include <vector>

#include <map>
#include <numeric>

#include "fasa/eval/svg_plot.hpp"
#include "protocol.hpp"

namespace fasa::tools::eval {

// The file beside `path` with `suffix` before its extension: runs.csv -> runs.samples.csv.
inline std::string beside(const std::string& path, const std::string& suffix) {
  const fs::path p(path);
  return (p.parent_path() / (p.stem().string() + suffix + p.extension().string())).string();
}

inline void check_output_path(const std::string& path, const char* flag) {
  if (path.empty()) return;
  const fs::path dir = fs::path(path).parent_path();
  FASA_CHECK(dir.empty() || fs::is_directory(dir), flag, " '", path, "': the folder '",
             dir.string(), "' does not exist");
}

// Runs every variant, prints the summary table, writes --csv/--json (summary rows there, the
// per-sample rows beside them as *.samples.csv / inside the JSON).
inline int run_protocol(protocol& p, const common_flags& f) {
  check_output_path(f.csv, "--csv");
  check_output_path(f.json, "--json");
  if (!f.plot_dir.empty()) {
    fs::create_directories(f.plot_dir);
    p.plot_dir = f.plot_dir;
  }
  session s(f.session);
  const auto variants = f.variants(s.config());
  std::fprintf(stderr, "%s: %zu variant(s) on %s (%s)\n", p.name().c_str(), variants.size(),
               s.config().name.c_str(), p.settings().c_str());
  std::vector<row> summaries, samples;
  for (const auto& v : variants) {
    auto r = p.run(s, v);
    summaries.push_back(std::move(r.summary));
    for (auto& x : r.samples) samples.push_back(std::move(x));
  }
  p.finish(summaries, samples);
  std::printf("%s on %s (%s)\n\n", p.name().c_str(), s.config().name.c_str(), p.settings().c_str());
  std::vector<std::string> cols;
  for (const auto& c : p.table_columns())
    for (const auto& r : summaries)
      if (r.find(c)) {
        cols.push_back(c);
        break;
      }
  print_table(summaries, cols);
  if (!f.csv.empty()) {
    write_csv(summaries, f.csv);
    write_csv(samples, beside(f.csv, ".samples"));
    std::printf("\nwrote %s and %s\n", f.csv.c_str(), beside(f.csv, ".samples").c_str());
  }
  if (!f.json.empty()) {
    auto meta = run_meta(p.name(), f, s);
    meta["settings"] = p.settings();
    meta["samples"] = nlohmann::json::array();
    for (const auto& r : samples) meta["samples"].push_back(to_json(r));
    write_json(summaries, meta, f.json);
    std::printf("wrote %s\n", f.json.c_str());
  }
  return 0;
}

// ---- fasa-ablate: resumable sweeps ------------------------------------------------------------

// Reads a CSV written by write_csv; cells that parse as numbers become numbers.
inline std::vector<row> read_csv(const std::string& path) {
  const std::string text = read_text_file(path, "CSV file");
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> rec;
  std::string cell;
  bool quoted = false, any = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (quoted) {
      if (ch == '"' && i + 1 < text.size() && text[i + 1] == '"')
        cell += '"', ++i;
      else if (ch == '"')
        quoted = false;
      else
        cell += ch;
    } else if (ch == '"') {
      quoted = any = true;
    } else if (ch == ',') {
      rec.push_back(std::move(cell));
      cell.clear();
      any = true;
    } else if (ch == '\n') {
      rec.push_back(std::move(cell));
      cell.clear();
      records.push_back(std::move(rec));
      rec.clear();
      any = false;
    } else {
      cell += ch;
      any = true;
    }
  }
  FASA_CHECK(!quoted, "CSV file '", path, "' ends inside a quoted cell");
  if (any) rec.push_back(std::move(cell)), records.push_back(std::move(rec));
  std::vector<row> rows;
  if (records.empty()) return rows;
  const auto& header = records.front();
  for (std::size_t r = 1; r < records.size(); ++r) {
    FASA_CHECK(records[r].size() == header.size(), "CSV file '", path, "' line ", r + 1, " has ",
               records[r].size(), " cells, the header ", header.size());
    row x;
    for (std::size_t c = 0; c < header.size(); ++c) {
      const std::string& v = records[r][c];
      char* end = nullptr;
      const double d = std::strtod(v.c_str(), &end);
      if (!v.empty() && end == v.c_str() + v.size() && header[c] != "variant")
        x.set(header[c], d);
      else
        x.set(header[c], v);
    }
    rows.push_back(std::move(x));
  }
  return rows;
}

// Writes through a temporary file, so an interrupted sweep never leaves half a CSV.
inline void write_csv_atomically(const std::vector<row>& rows, const std::string& path) {
  const std::string tmp = path + ".tmp";
  write_csv(rows, tmp);
  fs::rename(tmp, path);
}

// metric vs budget, one line per (selector, N_tip, mode, mapping); dense as a flat line.
inline void plot_sweep(const protocol& p, const std::vector<row>& summaries,
                       const std::string& path) {
  std::map<std::string, fasa::eval::svg::series> lines;
  double lo = 1e300, hi = -1e300;
  bool fractions = false;
  for (const auto& r : summaries) {
    if (r.text("selector") == "dense" || !r.find(p.metric())) continue;
    const double b = r.number("budget");
    lo = std::min(lo, b), hi = std::max(hi, b);
    fractions = fractions || b < 1;
  }
  if (lo > hi) return;
  for (const auto& r : summaries) {
    if (!r.find(p.metric())) continue;
    std::string name = r.text("selector");
    if (name == "dense") {
      auto& s = lines[name];
      s.name = name;
      s.x = {lo, hi};
      s.y = {r.number(p.metric()), r.number(p.metric())};
      continue;
    }
    name += " " + r.text("granularity");
    if (r.text("selector") == "fasa") name += " n_tip=" + r.text("n_tip") + " " + r.text("mapping");
    for (const char* f : {"sinks", "recent"})
      if (r.find(f) && r.number(f) > 0) name += std::string(" ") + f + "=" + r.text(f);
    auto& s = lines[name];
    s.name = name;
    s.x.push_back(r.number("budget"));
    s.y.push_back(r.number(p.metric()));
  }
  fasa::eval::svg::line_chart chart;
  chart.title = p.name() + ": " + p.metric() + " vs budget (" + p.settings() + ")";
  chart.x_title = fractions ? "budget (fraction of the context)" : "budget N_fac (tokens)";
  chart.y_title = p.metric();
  chart.log2_x = !fractions;
  for (auto& line : lines) {
    auto& s = line.second;  // not a structured binding: the lambda below captures it (clang 14)
    std::vector<std::size_t> order(s.x.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](auto a, auto b) { return s.x[a] < s.x[b]; });
    fasa::eval::svg::series sorted{s.name, {}, {}};
    for (auto i : order) sorted.x.push_back(s.x[i]), sorted.y.push_back(s.y[i]);
    chart.lines.push_back(std::move(sorted));
  }
  fasa::eval::svg::write_svg(path, fasa::eval::svg::render(chart));
  std::fprintf(stderr, "wrote %s\n", path.c_str());
}

// Runs the variants not yet in `out` (same variant and protocol settings), rewriting `out` and
// its *.samples.csv after each, so a stopped sweep resumes where it stopped.
inline int run_sweep(protocol& p, const common_flags& f, const std::string& out) {
  check_output_path(out, "--out");
  const std::string samples_path = beside(out, ".samples");
  std::vector<row> summaries, samples;
  if (fs::exists(out)) summaries = read_csv(out);
  if (fs::exists(samples_path)) samples = read_csv(samples_path);
  session s(f.session);
  const auto variants = f.variants(s.config());
  std::string settings = p.settings() + " calibration=";
  for (const auto& c : f.session.calibration_files)
    settings += fs::path(c).filename().string() + ";";
  if (f.session.calibration_files.empty())
    settings += "measured:" + fs::path(f.session.calibration_text).filename().string();
  auto done = [&](const variant& v) {
    for (const auto& r : summaries)
      if (r.text("variant") == v.key() && r.text("settings") == settings &&
          r.text("protocol") == p.name())
        return true;
    return false;
  };
  std::size_t todo = 0;
  for (const auto& v : variants) todo += !done(v);
  std::fprintf(stderr, "fasa-ablate %s: %zu runs in the grid, %zu already in %s, %zu to run\n",
               p.name().c_str(), variants.size(), variants.size() - todo, out.c_str(), todo);
  std::size_t ran = 0;
  for (const auto& v : variants) {
    if (done(v)) continue;
    std::fprintf(stderr, "\n[%zu/%zu] %s\n", ++ran, todo, v.key().c_str());
    auto r = p.run(s, v);
    r.summary.set("protocol", p.name()).set("settings", settings);
    summaries.push_back(std::move(r.summary));
    for (auto& x : r.samples) samples.push_back(std::move(x.set("settings", settings)));
    p.finish(summaries, samples);
    write_csv_atomically(summaries, out);
    write_csv_atomically(samples, samples_path);
  }
  // Only this protocol's rows under these settings are compared and plotted.
  std::vector<row> mine;
  for (const auto& r : summaries)
    if (r.text("protocol") == p.name() && r.text("settings") == settings) mine.push_back(r);
  std::printf("%s sweep on %s (%s): %zu runs\n\n", p.name().c_str(), s.config().name.c_str(),
              settings.c_str(), mine.size());
  std::vector<std::string> cols;
  for (const auto& c : p.table_columns())
    for (const auto& r : mine)
      if (r.find(c)) {
        cols.push_back(c);
        break;
      }
  print_table(mine, cols);
  if (!f.plot_dir.empty()) {
    fs::create_directories(f.plot_dir);
    plot_sweep(p, mine, (fs::path(f.plot_dir) / (p.name() + "_vs_budget.svg")).string());
  }
  return 0;
}

}  // namespace fasa::tools::eval
