// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
//
// A consumer of the fasa::eigen component: its usage requirements (Eigen's include directory,
// OpenMP's flags when fasa was built with them) reach the consumer through the target alone.
// Where the Eigen backend header is installed, it also decodes one token with it: with a single
// cached token every query head's output is exactly its KV head's value.

#include <Eigen/Core>
#include <fasa/fasa.hpp>

#if __has_include(<fasa/backends/cpu/eigen.hpp>)
#include <fasa/backends/cpu/eigen.hpp>
#endif

#include <cmath>
#include <cstdio>
#include <exception>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

// Returns the name of the backend that decoded, or nullptr on failure (printed).
const char* decode_with_eigen_backend() {
#if __has_include(<fasa/backends/cpu/eigen.hpp>)
  const fasa::attention_shape shape{4, 2, 64, 8};  // GQA group of 2, head_dim 64
  const auto pe = fasa::positional::rope::interleaved(shape.head_dim, 10000.0);
  auto attention = fasa::make_dense<fasa::backend::cpu_eigen>(shape, pe);
  const int d = shape.head_dim;
  std::vector<float> q(static_cast<std::size_t>(shape.num_q_heads * d), 0.25f);  // [4, 64]
  std::vector<float> k(static_cast<std::size_t>(shape.num_kv_heads * d), 0.5f);  // [2, 64]
  std::vector<float> v(k.size());                                                // [2, 64]
  std::vector<float> out(q.size());                                              // [4, 64]
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.01f * static_cast<float>(i) - 0.5f;
  attention.decode(q, k, v, out);
  for (int h = 0; h < shape.num_q_heads; ++h) {
    for (int i = 0; i < d; ++i) {
      const float got = out[static_cast<std::size_t>(h * d + i)];
      const float want = v[static_cast<std::size_t>(shape.kv_head_of(h) * d + i)];
      if (!(std::fabs(got - want) <= 1e-6f + 1e-6f * std::fabs(want))) {
        std::printf("FAIL: cpu_eigen head %d dim %d: out %.9g, expected %.9g\n", h, i, got, want);
        return nullptr;
      }
    }
  }
  return fasa::backend::cpu_eigen::name;
#else
  return "no Eigen backend header installed; skipped";
#endif
}

}  // namespace

int main() {
  try {
    Eigen::VectorXf a = Eigen::VectorXf::LinSpaced(64, 0.0f, 1.0f);
    const float dot = a.dot(a);
    if (!(dot > 0.0f)) {
      std::printf("FAIL: Eigen dot product %g\n", dot);
      return 1;
    }
#if defined(_OPENMP)
    const int threads = omp_get_max_threads();
#else
    const int threads = 1;
#endif
    const char* decoded = decode_with_eigen_backend();
    if (decoded == nullptr) return 1;
    std::printf("fasa::eigen consumer: Eigen %d.%d.%d, %d OpenMP thread(s), decode: %s, ok\n",
                EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION, threads, decoded);
    return 0;
  } catch (const std::exception& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
}
