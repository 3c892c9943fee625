// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
//
// fasa-eval: scores selectors against dense and the oracle on a real model, one protocol per
// subcommand (see --help of each):
//   ppl        the paper's perplexity protocol (dense prefill of P tokens, D decoded tokens)
//   retrieval  needle-in-a-haystack and passkey accuracy over lengths and depths
//   agreement  recall against the oracle, attention mass and output error, compound CA
//   fidelity   greedy generation against dense greedy generation
// Every selector, budget, N_tip, GQA mode and FC mapping is a flag taking a comma-separated
// list; every combination is evaluated, on the same dense prefixes.

#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

#include "eval/agreement.hpp"
#include "eval/driver.hpp"
#include "eval/fidelity.hpp"
#include "eval/ppl.hpp"
#include "eval/retrieval.hpp"

int main(int argc, char** argv) {
  using namespace fasa::tools::eval;
  CLI::App app{
      "fasa-eval: evaluate sparse-attention selectors against dense and the oracle on a real "
      "model"};
  app.require_subcommand(1);
  common_flags flags;
  ppl_protocol ppl;
  retrieval_protocol retrieval;
  agreement_protocol agreement;
  fidelity_protocol fidelity;
  std::vector<std::pair<CLI::App*, protocol*>> commands;
  auto add = [&](auto& proto, const char* name, const char* help) {
    auto* cmd = app.add_subcommand(name, help);
    flags.add_to(cmd);
    proto.add_options(cmd);
    commands.emplace_back(cmd, &proto);
  };
  add(ppl, "ppl", "perplexity: dense prefill of P tokens, then D tokens decoded with the selector");
  add(retrieval, "retrieval",
      "needle-in-a-haystack / passkey accuracy over prompt lengths and needle depths");
  add(agreement, "agreement",
      "on real decode steps: recall of the oracle's top-B, attention mass and output error, and "
      "the compound CA of the dominant FCs against random FCs (FASA Table 1)");
  add(fidelity, "fidelity", "greedy generation with each selector against dense greedy generation");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [cmd, proto] : commands)
      if (cmd->parsed()) return run_protocol(*proto, flags);
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nfasa-eval: error: %s\n", e.what());
    return 1;
  }
}
