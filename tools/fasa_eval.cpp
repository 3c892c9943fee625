// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
//
// fasa-eval: scores selectors against dense and the oracle on a real model, one protocol per
// subcommand (see --help of each):
//   ppl        the paper's perplexity protocol (dense prefill of P tokens, D decoded tokens)
// Every selector, budget, N_tip, GQA mode and FC mapping is a flag taking a comma-separated
// list; every combination is evaluated, on the same dense prefixes.

#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

#include "eval/driver.hpp"
#include "eval/ppl.hpp"

int main(int argc, char** argv) {
  using namespace fasa::tools::eval;
  CLI::App app{
      "fasa-eval: evaluate sparse-attention selectors against dense and the oracle on a real "
      "model"};
  app.require_subcommand(1);
  common_flags flags;
  ppl_protocol ppl;
  auto* ppl_cmd = app.add_subcommand(
      "ppl", "perplexity: dense prefill of P tokens, then D tokens decoded with the selector");
  flags.add_to(ppl_cmd);
  ppl.add_options(ppl_cmd);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    protocol* p = nullptr;
    if (ppl_cmd->parsed()) p = &ppl;
    return run_protocol(*p, flags);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nfasa-eval: error: %s\n", e.what());
    return 1;
  }
}
