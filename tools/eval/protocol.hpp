// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// A protocol: one way of scoring a variant on the model (perplexity, retrieval, agreement,
// fidelity, LongBench). fasa-eval runs one protocol over the variants named on its command line;
// fasa-ablate sweeps a grid of variants through the same protocol objects.

#include <memory>
#include <string>
#include <vector>

#include "session.hpp"

namespace fasa::tools::eval {

struct protocol_result {
  row summary;               // one row for the variant
  std::vector<row> samples;  // one row per sample (window, prompt, needle, ...)
};

class protocol {
 public:
  virtual ~protocol() = default;
  virtual std::string name() const = 0;
  // The protocol's settings as text: rows of a resumed sweep are reused only under the same.
  virtual std::string settings() const = 0;
  // Scores one variant.
  virtual protocol_result run(session& s, const variant& v) = 0;
  // After every variant ran: columns that compare variants (e.g. to dense), plots.
  virtual void finish(std::vector<row>& summaries, std::vector<row>& samples) {
    (void)summaries;
    (void)samples;
  }
  // The headline metric (fasa-ablate plots it against the budget) and whether higher is better.
  virtual std::string metric() const = 0;
  // Columns of the printed summary table.
  virtual std::vector<std::string> table_columns() const = 0;
  // Where plots go (set by the driver from --plot-dir; empty: no plots).
  std::string plot_dir;
};

// The summary row of the dense variant, if it ran.
inline const row* dense_summary(const std::vector<row>& summaries) {
  for (const auto& r : summaries)
    if (r.text("selector") == "dense") return &r;
  return nullptr;
}

}  // namespace fasa::tools::eval
