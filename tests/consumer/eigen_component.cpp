// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
//
// A consumer of the fasa::eigen component: its usage requirements (Eigen's include directory,
// OpenMP's flags when fasa was built with them) reach the consumer through the target alone.

#include <Eigen/Core>
#include <fasa/fasa.hpp>

#include <cstdio>

#if defined(_OPENMP)
#include <omp.h>
#endif

int main() {
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
  std::printf("fasa::eigen consumer: Eigen %d.%d.%d, %d OpenMP thread(s), backend tag %s, ok\n",
              EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION, threads,
              fasa::backend::cpu_eigen::name);
  return 0;
}
