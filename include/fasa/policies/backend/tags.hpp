// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Backend tags. A tag only names a backend and carries its runtime knobs; the code lives in
// fasa/backends/<name>/ as a specialisation of fasa::backend_impl<Tag>.

#include "fasa/policies/concepts.hpp"

namespace fasa::backend {

// Naive loops with one comment per formula step: the oracle of every test.
struct cpu_reference {
  using policy_tag = attention_backend_tag;
  static constexpr const char* name = "cpu_reference";
};

// Eigen matrix-vector products, multi-threaded over heads with OpenMP.
struct cpu_eigen {
  using policy_tag = attention_backend_tag;
  static constexpr const char* name = "cpu_eigen";
  int threads = 0;  // 0: OpenMP's default
};

// The CPU model of FASA-M (fasa/backends/cpu/offload.hpp): a tiered layout's near tier
// (storage::split_offload's key slab, the GPU's part) and far tier (the rest of the keys and the
// values, the host's part) in two separate buffers. Selectors score from the near tier; each step
// the kept rows' far elements are copied into a staging buffer, and every copied element is
// counted: the traffic a GPU backend sends over the bus, checked by the tests. The arithmetic is
// the reference backend's, so its outputs equal the reference's bit for bit. With row_pool (the
// CUDA backend's way), each KV head keeps the rows it fetched in a pool of as many rows as its
// units keep, and a step copies only the kept tokens the pool lacks, each once for the group;
// without, every unit's kept rows cross at every step.
struct cpu_offload {
  using policy_tag = attention_backend_tag;
  static constexpr const char* name = "cpu_offload";
  bool row_pool = true;
};

// The element type a GPU cache stores (accumulation is fp32 whatever it is).
enum class device_element { bf16, fp16, fp32 };

// The CUDA backend: the sequence's KV cache in device memory, every step on the GPU kernels of
// fasa/backends/cuda/ (include fasa/backends/cuda/backend.cuh; nvcc only). Its kernels stream
// 16-byte vectors, so a split_dominant slab must be a whole number of them: slab_multiple is
// what the layer builders pass to dominant_plan.
template <device_element E = device_element::bf16>
struct cuda {
  using policy_tag = attention_backend_tag;
  static constexpr const char* name = E == device_element::bf16   ? "cuda_bf16"
                                      : E == device_element::fp16 ? "cuda_fp16"
                                                                  : "cuda_fp32";
  static constexpr device_element element = E;
  static constexpr int slab_multiple = E == device_element::fp32 ? 4 : 8;
};

static_assert(AttentionBackend<cpu_reference>);
static_assert(AttentionBackend<cpu_eigen>);
static_assert(AttentionBackend<cpu_offload>);
static_assert(AttentionBackend<cuda<>>);

}  // namespace fasa::backend
