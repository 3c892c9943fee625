// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0

// The model tools' `--backend cuda`: each layer a SparseAttention on backend::cuda (see
// fasa/backends/cuda/backend.cuh), built by the same table as the CPU backends' layers.

#include "fasa/backends/cuda/backend.cuh"
#include "layers_cuda.hpp"

namespace fasa::tools {

std::vector<std::unique_ptr<model::layer_attention>> build_cuda_layers(const layers_request& r,
                                                                       const std::string& element) {
  using backend::device_element;
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  FASA_CHECK(e == cudaSuccess && devices > 0, "--backend cuda: no usable CUDA device here (",
             e == cudaSuccess ? "none found" : cudaGetErrorString(e), ")");
  if (element == "bf16") return build_layers_for<backend::cuda<device_element::bf16>>(r);
  if (element == "fp16") return build_layers_for<backend::cuda<device_element::fp16>>(r);
  if (element == "fp32") return build_layers_for<backend::cuda<device_element::fp32>>(r);
  FASA_FAIL("unknown CUDA cache element '", element, "'; known: bf16, fp16, fp32");
}

}  // namespace fasa::tools
