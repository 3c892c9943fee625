// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Builders for a model's per-layer attentions from the attention shape and RoPE alone (no
// weights, no Eigen, so CUDA code can build layers too): every layer dense, or a sparse
// composition in every layer except the ones kept dense (the paper's code keeps layer 0 dense;
// so do we by default). fasa/model/layers.hpp takes these from a llama_config. Runtime names
// ("fasa", "oracle") become these calls in the tools' one dispatch table, not here.

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "fasa/calib/dominant_sets.hpp"
#include "fasa/compose/variants.hpp"
#include "fasa/model/layer_attention.hpp"
#include "fasa/policies/positional/rope.hpp"

namespace fasa::model {

struct layer_plan {
  std::int64_t capacity = 0;         // tokens each layer's cache holds
  std::vector<int> dense_layers{0};  // layers that stay dense whatever the selector
  positional::fc_mapping mapping = positional::fc_mapping::rotation_pairs;

  bool is_dense(int layer) const {
    return std::find(dense_layers.begin(), dense_layers.end(), layer) != dense_layers.end();
  }
};

// What every layer of a model shares: how many, each one's attention shape (capacity
// included) and its RoPE.
struct layer_stack {
  int n_layers = 0;
  attention_shape shape;
  positional::rope pe;
};

// The slab width multiple a backend's kernels need of a dominant_plan (Backend::slab_multiple,
// else 1): the CUDA backend streams whole 16-byte vectors.
template <class Backend>
constexpr int slab_multiple_of() {
  if constexpr (requires { Backend::slab_multiple; })
    return Backend::slab_multiple;
  else
    return 1;
}

// Builds layer l with make_sparse(l, shape, pe) unless the plan keeps it dense.
template <class Backend, class MakeSparse>
std::vector<std::unique_ptr<layer_attention>> build_layers(const layer_stack& s,
                                                           const layer_plan& plan,
                                                           MakeSparse make_sparse,
                                                           Backend be = {}) {
  for (int l : plan.dense_layers)
    FASA_CHECK(l >= 0 && l < s.n_layers, "dense layer ", l, " does not exist (the model has ",
               s.n_layers, " layers)");
  std::vector<std::unique_ptr<layer_attention>> layers;
  for (int l = 0; l < s.n_layers; ++l) {
    if (plan.is_dense(l))
      layers.push_back(make_layer_attention(make_dense<Backend>(s.shape, s.pe, be),
                                            std::string("dense on ") + Backend::name));
    else
      layers.push_back(make_sparse(l, s.shape, s.pe));
  }
  return layers;
}

template <class Backend>
std::vector<std::unique_ptr<layer_attention>> dense_layers(const layer_stack& s, Backend be = {}) {
  layer_plan plan;
  plan.capacity = s.shape.capacity;
  plan.dense_layers.clear();
  for (int l = 0; l < s.n_layers; ++l) plan.dense_layers.push_back(l);
  return build_layers<Backend>(
      s, plan,
      [](int, const attention_shape&, const positional::rope&) {
        return std::unique_ptr<layer_attention>();
      },
      be);
}

// The oracle top-k in every non-dense layer.
template <class Backend>
std::vector<std::unique_ptr<layer_attention>> oracle_layers(const layer_stack& s,
                                                            const layer_plan& plan,
                                                            selector::oracle_topk sel,
                                                            Backend be = {}) {
  return build_layers<Backend>(
      s, plan,
      [&](int, const attention_shape& shape, const positional::rope& pe) {
        return make_layer_attention(make_oracle<Backend>(shape, pe, sel, be),
                                    std::string("oracle_topk on ") + Backend::name);
      },
      be);
}

// A composition built from each layer's dominant_plan in every non-dense layer; dominant[l] holds
// layer l's FC sets per selection unit (from calibration, at the same granularity and FC
// mapping). make(plan, pe) returns the SparseAttention; `name` labels it.
template <class Backend, class Make>
std::vector<std::unique_ptr<layer_attention>> dominant_plan_layers(
    const layer_stack& s, const layer_plan& plan, const calib::dominant_fc_sets& dominant,
    selection_granularity granularity, const std::string& name, Backend be, const Make& make) {
  FASA_CHECK(static_cast<int>(dominant.size()) == s.n_layers, name, " layers: dominant sets for ",
             dominant.size(), " layers, the model has ", s.n_layers);
  return build_layers<Backend>(
      s, plan,
      [&](int l, const attention_shape& shape, const positional::rope& pe) {
        auto owned = std::make_shared<const dominant_plan>(pe, shape, granularity,
                                                           dominant[static_cast<std::size_t>(l)],
                                                           slab_multiple_of<Backend>());
        return make_layer_attention(make(*owned, pe), name + " on " + Backend::name, owned);
      },
      be);
}

// FASA-C in every non-dense layer.
template <class Backend>
std::vector<std::unique_ptr<layer_attention>> fasa_c_layers(
    const layer_stack& s, const layer_plan& plan, const calib::dominant_fc_sets& dominant,
    selection_granularity granularity, token_budget budget, forced_tokens force = {},
    Backend be = {}) {
  return dominant_plan_layers<Backend>(s, plan, dominant, granularity, "fasa_c", be,
                                       [&](const dominant_plan& p, const positional::rope& pe) {
                                         return make_fasa_c<Backend>(p, pe, budget, force, be);
                                       });
}

// FASA-M in every non-dense layer: FASA-C's selections and arithmetic on the two-tier layout
// (storage::split_offload: the slab near, the rest of the keys and the values far). On
// backend::cuda the far tier is pinned host memory; on the CPU backends both tiers are one buffer
// and the answers are FASA-C's.
template <class Backend>
std::vector<std::unique_ptr<layer_attention>> fasa_m_layers(
    const layer_stack& s, const layer_plan& plan, const calib::dominant_fc_sets& dominant,
    selection_granularity granularity, token_budget budget, forced_tokens force = {},
    Backend be = {}) {
  return dominant_plan_layers<Backend>(s, plan, dominant, granularity, "fasa_m", be,
                                       [&](const dominant_plan& p, const positional::rope& pe) {
                                         return make_fasa_m<Backend>(p, pe, budget, force, be);
                                       });
}

}  // namespace fasa::model
