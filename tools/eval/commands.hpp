// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Every protocol as a CLI11 subcommand, shared by fasa-eval and fasa-ablate.

#include <utility>
#include <vector>

#include "agreement.hpp"
#include "driver.hpp"
#include "fidelity.hpp"
#include "longbench.hpp"
#include "overlap.hpp"
#include "ppl.hpp"
#include "retrieval.hpp"

namespace fasa::tools::eval {

struct protocol_commands {
  ppl_protocol ppl;
  retrieval_protocol retrieval;
  agreement_protocol agreement;
  fidelity_protocol fidelity;
  longbench_protocol longbench;
  overlap_protocol overlap;
  std::vector<std::pair<CLI::App*, protocol*>> commands;

  // Adds the subcommands to `app`, each with the common flags; `extra(cmd)` adds a tool's own.
  template <class Extra>
  void add_to(CLI::App& app, common_flags& flags, Extra extra) {
    auto add = [&](auto& proto, const char* name, const char* help) {
      auto* cmd = app.add_subcommand(name, help);
      flags.add_to(cmd);
      proto.add_options(cmd);
      extra(cmd);
      commands.emplace_back(cmd, &proto);
    };
    add(ppl, "ppl",
        "perplexity: dense prefill of P tokens, then D tokens decoded with the selector (the "
        "paper's protocol)");
    add(retrieval, "retrieval",
        "needle-in-a-haystack / passkey accuracy over prompt lengths and needle depths");
    add(agreement, "agreement",
        "on real decode steps: recall of the oracle's top-B, attention mass and output error, "
        "and the compound CA of the dominant FCs against random FCs (FASA Table 1)");
    add(fidelity, "fidelity",
        "greedy generation with each selector against dense greedy generation");
    add(longbench, "longbench",
        "LongBench-format jsonl: the official prompt and metric of the task, scored against the "
        "references and against the dense model's output");
    add(overlap, "overlap",
        "on real decode steps: how much of step t's selection steps t-1 .. t-k selected, per "
        "layer and unit, and per KV head over the group's union (a GPU row cache for FASA-M)");
    app.require_subcommand(1);
  }

  protocol* parsed() const {
    for (const auto& [cmd, proto] : commands)
      if (cmd->parsed()) return proto;
    return nullptr;
  }
};

}  // namespace fasa::tools::eval
