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

static_assert(AttentionBackend<cpu_reference>);
static_assert(AttentionBackend<cpu_eigen>);

}  // namespace fasa::backend
