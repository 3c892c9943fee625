// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
//
// fasa-eval: scores selectors against dense and the oracle on a real model, one protocol per
// subcommand (see --help of each):
//   ppl        the paper's perplexity protocol (dense prefill of P tokens, D decoded tokens)
//   retrieval  needle-in-a-haystack and passkey accuracy over lengths and depths
//   agreement  recall against the oracle, attention mass and output error, compound CA
//   fidelity   greedy generation against dense greedy generation
//   longbench  LongBench jsonl files with the official prompts and metrics
//   overlap    how much of each decode step's selection the previous steps selected
// Every selector, budget, N_tip, GQA mode and FC mapping is a flag taking a comma-separated
// list; every combination is evaluated, on the same dense prefixes.

#include <CLI/CLI.hpp>

#include <cstdio>

#include "eval/commands.hpp"

int main(int argc, char** argv) {
  using namespace fasa::tools::eval;
  CLI::App app{
      "fasa-eval: evaluate sparse-attention selectors against dense and the oracle on a real "
      "model. Each protocol is a subcommand; `fasa-eval <protocol> --help` lists its flags."};
  common_flags flags;
  protocol_commands protocols;
  protocols.add_to(app, flags, [](CLI::App*) {});
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return run_protocol(*protocols.parsed(), flags);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nfasa-eval: error: %s\n", e.what());
    return 1;
  }
}
