// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
//
// A consumer of an installed (or add_subdirectory'd) fasa: builds a dense SparseAttention on the
// reference backend and decodes two tokens. With one cached token softmax puts all weight on
// it, so each query head's output is exactly the value of its KV head: a check that cannot pass
// by accident.

#include <fasa/fasa.hpp>

#include <cmath>
#include <cstdio>
#include <exception>
#include <vector>

int main() {
  try {
    // 4 query heads over 2 KV heads (GQA group of 2), head_dim 64, room for 8 tokens.
    const fasa::attention_shape shape{4, 2, 64, 8};
    const auto pe = fasa::positional::rope::interleaved(shape.head_dim, 10000.0);
    auto attention = fasa::make_dense<fasa::backend::cpu_reference>(shape, pe);

    const int d = shape.head_dim;
    std::vector<float> q(static_cast<std::size_t>(shape.num_q_heads * d));   // [4, 64]
    std::vector<float> k(static_cast<std::size_t>(shape.num_kv_heads * d));  // [2, 64]
    std::vector<float> v(k.size());                                          // [2, 64]
    std::vector<float> out(q.size());                                        // [4, 64]
    for (std::size_t i = 0; i < q.size(); ++i) q[i] = std::sin(0.1f * static_cast<float>(i));
    for (std::size_t i = 0; i < k.size(); ++i) {
      k[i] = std::cos(0.2f * static_cast<float>(i));
      v[i] = 0.01f * static_cast<float>(i) - 0.5f;
    }

    attention.decode(q, k, v, out);
    for (int h = 0; h < shape.num_q_heads; ++h) {
      const int kv = shape.kv_head_of(h);
      for (int i = 0; i < d; ++i) {
        const float got = out[static_cast<std::size_t>(h * d + i)];
        const float want = v[static_cast<std::size_t>(kv * d + i)];
        if (!(std::fabs(got - want) <= 1e-6f + 1e-6f * std::fabs(want))) {
          std::printf("FAIL: head %d dim %d: out %.9g, expected the only value %.9g\n", h, i, got,
                      want);
          return 1;
        }
      }
    }

    attention.decode(q, k, v, out);  // a second token: attention over two cached tokens
    for (const float x : out) {
      if (!std::isfinite(x)) {
        std::printf("FAIL: non-finite output after the second decode step\n");
        return 1;
      }
    }
    if (attention.size() != 2) {
      std::printf("FAIL: the cache holds %lld tokens, expected 2\n",
                  static_cast<long long>(attention.size()));
      return 1;
    }
    std::printf("fasa %d.%d.%d consumer: dense attention on %s decoded 2 tokens, ok\n",
                FASA_VERSION_MAJOR, FASA_VERSION_MINOR, FASA_VERSION_PATCH,
                fasa::backend::cpu_reference::name);
    return 0;
  } catch (const std::exception& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
}
