// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Builders for a model's per-layer attentions from its llama_config: every layer dense, or a
// sparse composition in every layer except the ones kept dense (the paper's code keeps layer 0
// dense; so do we by default). The work is done by fasa/model/layer_builders.hpp, which needs
// only the attention shape and RoPE (and so builds layers for CUDA code too).

#include <memory>
#include <vector>

#include "fasa/model/layer_builders.hpp"
#include "fasa/model/llama_weights.hpp"

namespace fasa::model {

// The layers of model `c`, each with room for `capacity` tokens.
inline layer_stack stack_of(
    const llama_config& c, std::int64_t capacity,
    positional::fc_mapping mapping = positional::fc_mapping::rotation_pairs) {
  c.validate();
  return {c.n_layers, c.attention(capacity), c.rope(mapping)};
}

template <class Backend>
std::vector<std::unique_ptr<layer_attention>> dense_layers(const llama_config& c,
                                                           std::int64_t capacity, Backend be = {}) {
  return dense_layers<Backend>(stack_of(c, capacity), be);
}

// The oracle top-k in every non-dense layer.
template <class Backend>
std::vector<std::unique_ptr<layer_attention>> oracle_layers(const llama_config& c,
                                                            const layer_plan& plan,
                                                            selector::oracle_topk sel,
                                                            Backend be = {}) {
  return oracle_layers<Backend>(stack_of(c, plan.capacity, plan.mapping), plan, sel, be);
}

// FASA-C in every non-dense layer; dominant[l] holds layer l's FC sets per selection unit
// (from calibration, at the same granularity and FC mapping).
template <class Backend>
std::vector<std::unique_ptr<layer_attention>> fasa_c_layers(
    const llama_config& c, const layer_plan& plan, const calib::dominant_fc_sets& dominant,
    selection_granularity granularity, token_budget budget, forced_tokens force = {},
    Backend be = {}) {
  return fasa_c_layers<Backend>(stack_of(c, plan.capacity, plan.mapping), plan, dominant,
                                granularity, budget, force, be);
}

}  // namespace fasa::model
