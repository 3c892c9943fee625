// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// The bridge between fasa-bench (plain C++) and its CUDA benchmark (bench_cuda.cu, compiled by
// nvcc only where CUDA is found).

#include <cstdint>
#include <string>
#include <vector>

#include "fasa/backends/cuda/split_options.hpp"

namespace fasa::tools {

struct cuda_bench_options {
  std::vector<std::int64_t> contexts = {4096, 8192, 16384, 32768, 65536, 131072};
  std::vector<int> batches = {1, 8, 32};
  std::vector<std::int64_t> budgets = {256, 1024, 2048};  // N_fac, tokens
  std::vector<std::string> granularities = {"kv_head", "query_head"};
  int n_tip = 16;
  int heads = 32;
  int kv_heads = 8;
  int head_dim = 128;
  std::string dtype = "bf16";
  int reps = 30;
  int warmup = 5;
  bool distinct_group_fcs = false;
  std::uint32_t seed = 1;
  std::string csv;                  // one row per (context, batch, granularity, N_fac)
  std::string dump_dir;             // outputs and dominant dims for benchmarks/cuda/peers.py
  double max_gib = 100;             // skip cases whose caches would need more device memory
  bool offload = false;             // also time FASA-M (far tier in pinned host memory)
  bool offload_huge_pages = false;  // FASA-M's far tier in transparent huge pages
  std::vector<double> offload_miss = {1.0, 0.25};  // pool shares emptied before each FASA-M step
  // FASA-M's fetch modes (cuda::offload_fetch by name), each its own rows, in the same run
  std::vector<std::string> offload_fetch = {"zero_copy"};
  double max_host_gib = 64;    // skip FASA-M where its far tier would pin more host memory
  bool capacity = false;       // the capacity sweep (run_capacity) instead of the step sweep
  int layers = 32;             // --capacity: attention layers of the model
  double weights_gib = 15.0;   // --capacity: GPU memory the weights take
  bool whole_step = true;      // --capacity: also time all --layers layers as one step
  bool bus_probe = false;      // scattered reads of pinned host memory (run_bus_probe) alone
  cuda::split_options splits;  // of both decoders
};

// Runs the sweep; prints the table, writes the CSV. Returns the process exit code.
int run_cuda_bench(const cuda_bench_options& o);

}  // namespace fasa::tools
