// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// What a model tool asks of its attention layers: a selector by name, its knobs and the model's
// layer stack, with no weights, CLI or JSON in sight, so that a .cu file can build from it too.
// build_layers_for<Backend> is the tools' one table from selector names to the layer builders:
// common.hpp runs it for the CPU backends, cuda/layers_cuda.cu for backend::cuda.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fasa/calib/dominant_sets.hpp"
#include "fasa/core/error.hpp"
#include "fasa/model/layer_builders.hpp"

namespace fasa::tools {

struct layers_request {
  explicit layers_request(model::layer_stack s) : stack(std::move(s)) {}
  model::layer_stack stack;
  std::string selector = "fasa";  // dense | oracle | fasa
  model::layer_plan plan;
  token_budget budget = token_budget::tokens(256);
  selection_granularity granularity = selection_granularity::query_head;
  forced_tokens force;               // oracle, fasa: tokens kept before ranking (default none)
  calib::dominant_fc_sets dominant;  // fasa: per layer, per unit
  bool offload = false;              // fasa: FASA-M's two-tier layout (storage::split_offload)
};

template <class Backend>
std::vector<std::unique_ptr<model::layer_attention>> build_layers_for(const layers_request& r) {
  if (r.selector == "dense") return model::dense_layers<Backend>(r.stack);
  if (r.selector == "oracle") {
    selector::oracle_topk sel;
    sel.budget = r.budget;
    sel.mode = r.granularity;
    sel.force = r.force;
    return model::oracle_layers<Backend>(r.stack, r.plan, sel);
  }
  if (r.selector == "fasa" && r.offload)
    return model::fasa_m_layers<Backend>(r.stack, r.plan, r.dominant, r.granularity, r.budget,
                                         r.force);
  if (r.selector == "fasa")
    return model::fasa_c_layers<Backend>(r.stack, r.plan, r.dominant, r.granularity, r.budget,
                                         r.force);
  FASA_FAIL("unknown selector '", r.selector, "'; known: dense, oracle, fasa");
}

}  // namespace fasa::tools
