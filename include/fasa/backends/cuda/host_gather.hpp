// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// FASA-M's host-side gather (offload_fetch::host_gather): the CPU copies each step's missing
// far rows (the rest of the key and the value of a token, 2 * head_dim - slab_width elements)
// out of the far tier into one compact staging buffer in pinned memory, which a kernel then
// reads in one sequential sweep. It trades the GPU's scattered reads of many gigabytes of
// mapped host memory (each a translation the GPU must walk, fasa-bench --bus-probe) for the
// CPUs', and a contiguous transfer over the bus.
// Plain C++ (no CUDA): the decoder runs it in a host node of its step (cudaLaunchHostFunc), and
// the CPU tests check it against a naive loop.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "fasa/core/error.hpp"
#include "fasa/policies/storage/split_offload.hpp"

namespace fasa::cuda {

// A fixed team of worker threads that runs one job at a time, the caller taking part.
class gather_team {
 public:
  // threads: workers besides the caller (0: the caller alone).
  explicit gather_team(int threads) {
    FASA_CHECK(threads >= 0 && threads <= 256, "gather_team: threads must be in [0, 256], got ",
               threads);
    workers_.reserve(static_cast<std::size_t>(threads));
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this, i] { work(i + 1); });
  }
  ~gather_team() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      ++generation_;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
  }
  gather_team(const gather_team&) = delete;
  gather_team& operator=(const gather_team&) = delete;

  // Threads that run a job, the caller included.
  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs job(i, size()) on every thread i of the team (the caller is i = 0); returns when all
  // have finished.
  // Jobs from several threads (decoders on several streams) run one after another.
  void run(const std::function<void(int, int)>& job) {
    std::lock_guard<std::mutex> one_job(run_mutex_);
    if (workers_.empty()) {
      job(0, 1);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &job;
      pending_ = static_cast<int>(workers_.size());
      ++generation_;
    }
    wake_.notify_all();
    job(0, size());
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
    job_ = nullptr;
  }

 private:
  void work(int i) {
    std::uint64_t seen = 0;
    for (;;) {
      const std::function<void(int, int)>* job = nullptr;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (stop_) return;
        job = job_;
      }
      (*job)(i, size());
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex run_mutex_, mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(int, int)>* job_ = nullptr;
  std::uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

// One step's gather. Pair p = b * kv_heads + kv lists count[p] missing tokens at tok + p * pool;
// miss m of pair p goes to staging row offsets[p] + m, each row the token's rest of the key
// (rest_width elements, storage order) then its value (head_dim elements). far: the far tier of
// sequence 0 (host pointer), sequence b's at far + b * far_stride.
template <class Elem>
struct far_gather {
  storage::split_offload st{};
  const Elem* far = nullptr;
  std::int64_t far_stride = 0;
  int batch = 0;
  std::int64_t pool = 0;
  const std::int32_t* tok = nullptr;  // [pairs, pool]
  const int* count = nullptr;         // [pairs]
  Elem* stage = nullptr;              // [sum of counts, row_elements()]
  std::int64_t* offsets = nullptr;    // [pairs + 1] (out)

  std::int64_t row_elements() const { return st.rest_width() + st.head_dim(); }
  std::int64_t pairs() const { return std::int64_t{batch} * st.num_kv_heads(); }

  // offsets[] from the counts; returns the rows in all.
  std::int64_t plan() const {
    std::int64_t sum = 0;
    for (std::int64_t p = 0; p < pairs(); ++p) {
      offsets[p] = sum;
      sum += count[p];
    }
    offsets[pairs()] = sum;
    return sum;
  }

  // Copies staging rows [r0, r1) (after plan()).
  void copy(std::int64_t r0, std::int64_t r1) const {
    if (r0 >= r1) return;
    const int heads = st.num_kv_heads();
    // A cursor over the rows: the pair p holding row r (the last p with offsets[p] <= r), and
    // where that row's rest and value sit in the far tier.
    struct cursor {
      std::int64_t p;
      const Elem *rest = nullptr, *value = nullptr;
    };
    const auto move_to = [&](cursor& c, std::int64_t r) {
      while (offsets[c.p + 1] <= r) ++c.p;
      const int b = static_cast<int>(c.p / heads), kv = static_cast<int>(c.p % heads);
      const std::int64_t t = tok[c.p * pool + (r - offsets[c.p])];
      const Elem* base = far + b * far_stride;
      c.rest = base + st.far_offset(st.rest_row(kv, t));
      c.value = base + st.far_offset(st.value_row(kv, t));
    };
    const std::int64_t first = std::upper_bound(offsets, offsets + pairs() + 1, r0) - offsets - 1;
    cursor now{first}, ahead{first};
    constexpr int distance = 8;  // rows prefetched ahead of the copy
    const std::size_t rest_bytes = static_cast<std::size_t>(st.rest_width()) * sizeof(Elem);
    const std::size_t value_bytes = static_cast<std::size_t>(st.head_dim()) * sizeof(Elem);
    for (std::int64_t r = r0; r < r1; ++r) {
      if (r + distance < r1) {
        move_to(ahead, r + distance);
        __builtin_prefetch(ahead.rest);
        __builtin_prefetch(ahead.value);
      }
      move_to(now, r);
      Elem* dst = stage + r * row_elements();
      std::memcpy(dst, now.rest, rest_bytes);
      std::memcpy(dst + st.rest_width(), now.value, value_bytes);
    }
  }

  // plan() then copy() of every row, shared by the team's threads in equal runs.
  void run(gather_team& team) const {
    const std::int64_t rows = plan();
    team.run([&](int i, int n) { copy(rows * i / n, rows * (i + 1) / n); });
  }
};

}  // namespace fasa::cuda
