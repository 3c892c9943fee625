// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// The bridge between the model tools (plain C++) and the CUDA backend as a SparseAttention
// policy (layers_cuda.cu, compiled by nvcc only where CUDA is found): a model's per-layer
// attentions with their caches on the GPU, for `--backend cuda` in fasa-eval, fasa-generate and
// the others.

#include <memory>
#include <string>
#include <vector>

#include "../layer_request.hpp"

namespace fasa::tools {

// The request's layers on backend::cuda with caches of `element`: bf16, fp16 or fp32.
std::vector<std::unique_ptr<model::layer_attention>> build_cuda_layers(const layers_request& r,
                                                                       const std::string& element);

}  // namespace fasa::tools
