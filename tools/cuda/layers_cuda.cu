// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0

// The model tools' `--backend cuda`: each layer a SparseAttention on backend::cuda (see
// fasa/backends/cuda/backend.cuh), built by the same layer builders as the CPU backends.

#include "fasa/backends/cuda/backend.cuh"
#include "layers_cuda.hpp"

namespace fasa::tools {

namespace {

template <class Backend>
std::vector<std::unique_ptr<model::layer_attention>> build_on(const cuda_layers_request& r) {
  if (r.selector == "dense") return model::dense_layers<Backend>(r.stack);
  if (r.selector == "oracle") {
    selector::oracle_topk sel;
    sel.budget = r.budget;
    sel.mode = r.granularity;
    return model::oracle_layers<Backend>(r.stack, r.plan, sel);
  }
  if (r.selector == "fasa")
    return model::fasa_c_layers<Backend>(r.stack, r.plan, r.dominant, r.granularity, r.budget);
  FASA_FAIL("unknown selector '", r.selector, "'; known: dense, oracle, fasa");
}

}  // namespace

bool have_cuda_layers() { return true; }

std::vector<std::unique_ptr<model::layer_attention>> build_cuda_layers(
    const cuda_layers_request& r) {
  using backend::device_element;
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  FASA_CHECK(e == cudaSuccess && devices > 0, "--backend cuda: no usable CUDA device here (",
             e == cudaSuccess ? "none found" : cudaGetErrorString(e), ")");
  if (r.element == "bf16") return build_on<backend::cuda<device_element::bf16>>(r);
  if (r.element == "fp16") return build_on<backend::cuda<device_element::fp16>>(r);
  if (r.element == "fp32") return build_on<backend::cuda<device_element::fp32>>(r);
  FASA_FAIL("unknown CUDA cache element '", r.element, "'; known: bf16, fp16, fp32");
}

}  // namespace fasa::tools
