// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
//
// fasa-ablate: sweeps budget x N_tip x selector x GQA mode x FC mapping through any fasa-eval
// protocol, one CSV row per run (per-sample rows beside it), resumable: rerun the same command
// and only the runs missing from --out are run. --plot-dir draws the protocol's metric against
// the budget, one line per selector setting.

#include <CLI/CLI.hpp>

#include <cstdio>

#include "eval/commands.hpp"

int main(int argc, char** argv) {
  using namespace fasa::tools::eval;
  CLI::App app{
      "fasa-ablate: resumable sweeps of selector x budget x N_tip x GQA mode x FC mapping "
      "through a fasa-eval protocol. `fasa-ablate <protocol> --help` lists the flags; each "
      "knob takes a comma-separated list and the sweep runs their product."};
  common_flags flags;
  // A sweep's defaults: the budgets of the paper's LongBench table and the N_tip ablation
  // scaled to this head_dim (0 = head_dim/8), both GQA modes, both FC mappings.
  flags.budgets = {64, 128, 256, 512};
  flags.n_tips = {4, 0, 16};
  flags.modes = {"query_head", "kv_head"};
  flags.mappings = {"rotation_pairs", "adjacent_dims"};
  std::string out;
  protocol_commands protocols;
  protocols.add_to(app, flags, [&](CLI::App* cmd) {
    cmd->add_option("--out", out,
                    "the sweep's CSV: one row per run; existing rows with the same variant and "
                    "protocol settings are kept and not run again")
        ->required();
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return run_sweep(*protocols.parsed(), flags, out);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nfasa-ablate: error: %s\n", e.what());
    return 1;
  }
}
