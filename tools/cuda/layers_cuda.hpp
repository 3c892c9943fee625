// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// The bridge between the model tools (plain C++) and the CUDA backend as a SparseAttention
// policy (layers_cuda.cu, compiled by nvcc only where CUDA is found): a model's per-layer
// attentions with their caches on the GPU, for `--backend cuda` in fasa-eval, fasa-generate and
// the others.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fasa/calib/dominant_sets.hpp"
#include "fasa/model/layer_builders.hpp"

namespace fasa::tools {

struct cuda_layers_request {
  explicit cuda_layers_request(model::layer_stack s) : stack(std::move(s)) {}
  std::string selector = "fasa";  // dense | oracle | fasa
  std::string element = "bf16";   // the cache's element type: bf16 | fp16 | fp32
  model::layer_stack stack;
  model::layer_plan plan;
  token_budget budget = token_budget::tokens(256);
  selection_granularity granularity = selection_granularity::query_head;
  calib::dominant_fc_sets dominant;  // fasa: per layer, per unit
};

// Whether this build has the CUDA backend (false: build_cuda_layers throws saying so).
bool have_cuda_layers();

std::vector<std::unique_ptr<model::layer_attention>> build_cuda_layers(
    const cuda_layers_request& r);

}  // namespace fasa::tools
