// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Builders for a model's per-layer attentions: every layer dense, or a sparse composition in
// every layer except the ones kept dense (the paper's code keeps layer 0 dense; so do we by
// default). Runtime names ("fasa", "oracle") become these calls in the tools' one dispatch
// table, not here.

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "fasa/calib/dominant_sets.hpp"
#include "fasa/compose/variants.hpp"
#include "fasa/model/layer_attention.hpp"
#include "fasa/model/llama_weights.hpp"

namespace fasa::model {

struct layer_plan {
  std::int64_t capacity = 0;         // tokens each layer's cache holds
  std::vector<int> dense_layers{0};  // layers that stay dense whatever the selector
  positional::fc_mapping mapping = positional::fc_mapping::rotation_pairs;

  bool is_dense(int layer) const {
    return std::find(dense_layers.begin(), dense_layers.end(), layer) != dense_layers.end();
  }
};

// Builds layer l with make_sparse(l, shape, pe) unless the plan keeps it dense.
template <class Backend, class MakeSparse>
std::vector<std::unique_ptr<layer_attention>> build_layers(const llama_config& c,
                                                           const layer_plan& plan,
                                                           MakeSparse make_sparse,
                                                           Backend be = {}) {
  c.validate();
  for (int l : plan.dense_layers)
    FASA_CHECK(l >= 0 && l < c.n_layers, "dense layer ", l, " does not exist (the model has ",
               c.n_layers, " layers)");
  const attention_shape shape = c.attention(plan.capacity);
  const positional::rope pe = c.rope(plan.mapping);
  std::vector<std::unique_ptr<layer_attention>> layers;
  for (int l = 0; l < c.n_layers; ++l) {
    if (plan.is_dense(l))
      layers.push_back(make_layer_attention(make_dense<Backend>(shape, pe, be),
                                            std::string("dense on ") + Backend::name));
    else
      layers.push_back(make_sparse(l, shape, pe));
  }
  return layers;
}

template <class Backend>
std::vector<std::unique_ptr<layer_attention>> dense_layers(const llama_config& c,
                                                           std::int64_t capacity, Backend be = {}) {
  layer_plan plan;
  plan.capacity = capacity;
  plan.dense_layers.clear();
  for (int l = 0; l < c.n_layers; ++l) plan.dense_layers.push_back(l);
  return build_layers<Backend>(
      c, plan,
      [](int, const attention_shape&, const positional::rope&) {
        return std::unique_ptr<layer_attention>();
      },
      be);
}

// The oracle top-k in every non-dense layer.
template <class Backend>
std::vector<std::unique_ptr<layer_attention>> oracle_layers(const llama_config& c,
                                                            const layer_plan& plan,
                                                            selector::oracle_topk sel,
                                                            Backend be = {}) {
  return build_layers<Backend>(
      c, plan,
      [&](int, const attention_shape& shape, const positional::rope& pe) {
        return make_layer_attention(make_oracle<Backend>(shape, pe, sel, be),
                                    std::string("oracle_topk on ") + Backend::name);
      },
      be);
}

// FASA-C in every non-dense layer; dominant[l] holds layer l's FC sets per selection unit
// (from calibration, at the same granularity and FC mapping).
template <class Backend>
std::vector<std::unique_ptr<layer_attention>> fasa_c_layers(
    const llama_config& c, const layer_plan& plan, const calib::dominant_fc_sets& dominant,
    selection_granularity granularity, token_budget budget, forced_tokens force = {},
    Backend be = {}) {
  FASA_CHECK(static_cast<int>(dominant.size()) == c.n_layers, "fasa_c_layers: dominant sets for ",
             dominant.size(), " layers, the model has ", c.n_layers);
  return build_layers<Backend>(
      c, plan,
      [&](int l, const attention_shape& shape, const positional::rope& pe) {
        auto owned = std::make_shared<const dominant_plan>(pe, shape, granularity,
                                                           dominant[static_cast<std::size_t>(l)]);
        return make_layer_attention(make_fasa_c<Backend>(*owned, pe, budget, force, be),
                                    std::string("fasa_c on ") + Backend::name, owned);
      },
      be);
}

}  // namespace fasa::model
