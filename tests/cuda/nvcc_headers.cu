// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
//
// Compile-only check: the host/device headers (config, core, policies, compose) compile with
// nvcc for sm_90 in C++20, and the FASA_HOST_DEVICE policy math instantiates in device code.
// Nothing here runs; CI builds it where nvcc exists, with or without a GPU.
//
// Flags (tests/CMakeLists.txt): -std=c++20, sm_90, and, in CI (CMAKE_COMPILE_WARNING_AS_ERROR,
// cmake/fasa_warnings.cmake), nvcc's warnings as errors. No extra nvcc
// flags are needed, and two are deliberately NOT passed:
//  - --expt-relaxed-constexpr would let FASA_HOST_DEVICE code call host-only constexpr functions
//    (std::min, std::numeric_limits<T>::max, ...) on the device. Without it nvcc only *warns*
//    (#20013-D) about such a call from a __host__ __device__ function, hence
//    `-Werror all-warnings` in CI: this check exists to catch exactly that.
//  - --extended-lambda: the key-reader lambda below is created in device code, where it is
//    implicitly __device__; only a lambda created on the host and passed to a kernel needs it.

#include <cstdint>

#include "fasa/compose/dominant_plan.hpp"
#include "fasa/compose/selection.hpp"
#include "fasa/compose/sparse_attention.hpp"
#include "fasa/compose/variants.hpp"
#include "fasa/config.hpp"
#include "fasa/core/budget.hpp"
#include "fasa/core/error.hpp"
#include "fasa/core/shape.hpp"
#include "fasa/core/topk.hpp"
#include "fasa/policies/backend/tags.hpp"
#include "fasa/policies/concepts.hpp"
#include "fasa/policies/positional/rope.hpp"
#include "fasa/policies/selector/dense.hpp"
#include "fasa/policies/selector/fasa_tip.hpp"
#include "fasa/policies/selector/oracle_topk.hpp"
#include "fasa/policies/storage/contiguous.hpp"
#include "fasa/policies/storage/split_dominant.hpp"

static_assert(FASA_COMPILING_WITH_NVCC == 1, "this file must be compiled by nvcc");

namespace {

// keys(token, dim) -> post-RoPE key value, read from k: [seq_len, head_dim] row-major.
struct row_major_keys {
  const float* k;  // [seq_len, head_dim]
  int head_dim;
  __device__ float operator()(std::int64_t token, int dim) const {
    return k[token * head_dim + dim];
  }
};

// One thread per token: rotate the token's key row in place with RoPE at its position, then
// score the token with TIP (dominant dims only), the oracle (all dims) and dense.
// q: [head_dim], already rotated; k: [seq_len, head_dim], pre-RoPE; scores: [3, seq_len].
__global__ void score_tokens(fasa::positional::rope pe, fasa::selector::fasa_tip tip,
                             fasa::selector::oracle_topk oracle, fasa::selector::dense dense,
                             const float* q, float* k, std::int64_t seq_len, float* scores) {
  const std::int64_t j = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= seq_len) return;
  const int d = pe.head_dim();
  pe.rotate(k + j * d, j);

  const fasa::unit_queries uq{q, 1, d, 0, 0};
  // Both kinds of key reader: a lambda created in device code (implicitly __device__, so no
  // --extended-lambda) and a functor with a __device__ call operator.
  const auto lambda_keys = [k, d](std::int64_t token, int dim) { return k[token * d + dim]; };
  const row_major_keys functor_keys{k, d};
  scores[j] = tip.score(uq, lambda_keys, j);
  scores[seq_len + j] = oracle.score(uq, functor_keys, j);
  scores[2 * seq_len + j] = dense.score(uq, functor_keys, j) +
                            static_cast<float>(tip.keep(seq_len) + oracle.keep(seq_len));
  (void)fasa::num_selection_units(fasa::attention_shape{d, d, d, seq_len}, tip.granularity());
}

}  // namespace

// Host side: the launch compiles with the policies passed by value (they are trivially
// copyable). Never called from a test; it only forces the kernel's instantiation.
void fasa_nvcc_headers_launch(const fasa::positional::rope& pe, const fasa::selector::fasa_tip& tip,
                              const float* q, float* k, std::int64_t seq_len, float* scores) {
  const unsigned blocks = static_cast<unsigned>((seq_len + 127) / 128);
  score_tokens<<<blocks, 128>>>(pe, tip, fasa::selector::oracle_topk{}, fasa::selector::dense{}, q,
                                k, seq_len, scores);
}
