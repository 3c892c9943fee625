// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Running one protocol over a list of variants: fasa-eval's loop (fasa-ablate adds resuming).

#include <cstdio>
#include <string>
#include <vector>

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
  std::printf("%s on %s (%s)\n\n", p.name().c_str(), s.config().name.c_str(),
              p.settings().c_str());
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

}  // namespace fasa::tools::eval
