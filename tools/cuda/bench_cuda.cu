// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
//
// fasa-bench --backend cuda: one attention layer's decode step on the GPU, dense flash-decoding
// against FASA-C (TIP over the dominant-dim slab, radix top-k, FAC gather), at a model's
// attention shape over contexts x batch sizes x N_fac. Per case: the median time of a CUDA-graph
// replay of each variant, measured interleaved with the L2 flushed before every replay (each
// layer of a real model reads a different cache), their ratio, the bytes each moves, the
// bandwidth reached against the device-to-device copy bandwidth measured at the start, and the
// cost-model ceiling 1 / (N_tip/d + N_fac/t) (FASA Eq. 8). A stage breakdown (TIP, top-k, FAC)
// comes from an eager step with events. With --dump-dir the outputs and dominant dims are
// written for benchmarks/cuda/peers.py, which times PyTorch's peers on the same tensors and
// checks their outputs against these.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>

#include "bench_cuda.hpp"
#include "fasa/backends/cuda/batch_decode.cuh"
#include "fasa/compose/dominant_plan.hpp"
#include "fasa/policies/positional/rope.hpp"

namespace fasa::tools {
namespace {

using cuda::device_buffer;

struct timer_events {
  cudaEvent_t a, b;
  timer_events() {
    FASA_CUDA_CHECK(cudaEventCreate(&a));
    FASA_CUDA_CHECK(cudaEventCreate(&b));
  }
  ~timer_events() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }
  float ms() const {
    float t = 0;
    FASA_CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
    return t;
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Bytes per second of `issue` (one transfer of `bytes` on stream s), median of `reps` after two
// untimed ones.
template <class Issue>
double median_gbs(cudaStream_t s, int reps, double bytes, Issue&& issue) {
  timer_events ev;
  std::vector<double> gbs;
  for (int rep = 0; rep < reps + 2; ++rep) {
    FASA_CUDA_CHECK(cudaEventRecord(ev.a, s));
    issue();
    FASA_CUDA_CHECK(cudaEventRecord(ev.b, s));
    FASA_CUDA_CHECK(cudaEventSynchronize(ev.b));
    if (rep >= 2) gbs.push_back(bytes / (ev.ms() * 1e-3) / 1e9);
  }
  return median(gbs);
}

// Device-to-device copy of a large buffer: bytes read plus bytes written per second, median.
double copy_bandwidth_gbs(cudaStream_t s) {
  const std::size_t bytes = std::size_t{2} << 30;
  device_buffer<char> src(bytes), dst(bytes);
  FASA_CUDA_CHECK(cudaMemset(src.data(), 1, bytes));
  return median_gbs(s, 10, 2.0 * static_cast<double>(bytes), [&] {
    FASA_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDeviceToDevice, s));
  });
}

__global__ void read_mapped(const uint4* src, uint4* dst, std::size_t n) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    dst[i] = src[i];
}

// 1 GiB of pinned host memory to the device per second, median: by the copy engine
// (cudaMemcpyAsync), or read by a kernel straight from the mapped memory (zero_copy: 16-byte
// loads, as FASA-M's fetch reads).
double host_read_gbs(cudaStream_t s, int sms, bool zero_copy) {
  const std::size_t bytes = std::size_t{1} << 30;
  cuda::pinned_buffer<char> src;
  src.allocate(bytes, "fasa-bench's host-to-device probe");
  std::memset(src.data(), 1, bytes);
  device_buffer<char> dst(bytes);
  return median_gbs(s, 6, static_cast<double>(bytes), [&] {
    if (!zero_copy) {
      FASA_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyHostToDevice, s));
      return;
    }
    read_mapped<<<static_cast<unsigned>(sms * 8), 256, 0, s>>>(
        reinterpret_cast<const uint4*>(src.device_data()), reinterpret_cast<uint4*>(dst.data()),
        bytes / 16);
    FASA_CUDA_CHECK_LAUNCH("read_mapped");
  });
}

// A captured decode step, replayed for timing.
struct graph {
  cudaGraph_t g = nullptr;
  cudaGraphExec_t exec = nullptr;
  template <class F>
  graph(cudaStream_t s, F&& body) {
    FASA_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    body();
    FASA_CUDA_CHECK(cudaStreamEndCapture(s, &g));
    FASA_CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
  }
  ~graph() {
    if (exec) cudaGraphExecDestroy(exec);
    if (g) cudaGraphDestroy(g);
  }
  void replay(cudaStream_t s) const { FASA_CUDA_CHECK(cudaGraphLaunch(exec, s)); }
};

// N_tip random distinct FCs per unit; the query heads of a group share their KV head's set
// unless distinct (then the group's slab is the union of its heads' sets).
std::vector<std::vector<int>> random_fcs(const cuda_bench_options& o, selection_granularity g,
                                         std::uint32_t seed) {
  std::mt19937 gen(seed);
  const int units = g == selection_granularity::query_head ? o.heads : o.kv_heads;
  const int group = o.heads / o.kv_heads;
  std::vector<std::vector<int>> sets;
  for (int u = 0; u < units; ++u) {
    if (g == selection_granularity::query_head && !o.distinct_group_fcs && u % group != 0) {
      sets.push_back(sets.back());
      continue;
    }
    std::vector<int> all(static_cast<std::size_t>(o.head_dim / 2));
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), gen);
    sets.emplace_back(all.begin(), all.begin() + o.n_tip);
  }
  return sets;
}

void write_floats(const std::string& path, const std::vector<float>& v) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(v.data()),
            static_cast<std::streamsize>(v.size() * sizeof(float)));
  FASA_CHECK(out.good(), "fasa-bench: cannot write ", path);
}

cuda::offload_options huge_pages_only(bool huge) {
  cuda::offload_options oo{};
  oo.huge_pages = huge;
  return oo;
}

cuda::offload_fetch fetch_of(const std::string& name) {
  FASA_CHECK(name == "zero_copy" || name == "host_gather", "fasa-bench: unknown --offload-fetch '",
             name, "'; known: zero_copy, host_gather");
  return name == "zero_copy" ? cuda::offload_fetch::zero_copy : cuda::offload_fetch::host_gather;
}

struct row {
  std::int64_t context;
  int batch;
  std::string granularity;
  std::int64_t n_fac;
  int slab_width;
  double dense_ms, fasa_ms, speedup, ceiling;
  double dense_bytes, fasa_bytes, score_bytes;
  double dense_gbs, fasa_gbs;
  double prep_ms, tip_ms, filter_ms, finish_ms, fac_ms;
  // FASA-M (--offload; 0 where not run): the share of its row pool emptied before each step,
  // the rows that step fetched (over the batch and KV heads) and their bytes
  double miss_share = 0, fetched_rows = 0;
  std::string fetch;  // FASA-M: how the rows came (offload_fetch)
  double m_ms = 0, m_vs_c = 0, m_vs_dense = 0, bus_bytes = 0, bus_floor_ms = 0, m_fetch_ms = 0,
         m_attend_ms = 0, m_max_diff = 0;
  // GPU bytes of the KV cache per configuration (FASA-M: slab + working buffer), host bytes
  double dense_kv = 0, c_kv = 0, m_kv = 0, m_host = 0;
};

template <class Elem>
int run(const cuda_bench_options& o) {
  FASA_CHECK(o.heads % o.kv_heads == 0, "fasa-bench: --heads must be a multiple of --kv-heads");
  FASA_CHECK(!o.budgets.empty() && *std::min_element(o.budgets.begin(), o.budgets.end()) >= 1,
             "fasa-bench: every --budget must be a token count >= 1 on the cuda backend");
  cudaDeviceProp prop{};
  FASA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  int driver = 0, runtime = 0;
  FASA_CUDA_CHECK(cudaDriverGetVersion(&driver));
  FASA_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  cudaStream_t stream;
  FASA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const double copy_gbs = copy_bandwidth_gbs(stream);
  const double h2d_gbs = o.offload ? host_read_gbs(stream, prop.multiProcessorCount, false) : 0.0;
  const double zc_gbs = o.offload ? host_read_gbs(stream, prop.multiProcessorCount, true) : 0.0;
  std::printf("# GPU: %s, %d SMs, %.1f GiB, L2 %.0f MiB; driver %d, runtime %d\n", prop.name,
              prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0,
              prop.l2CacheSize / 1048576.0, driver, runtime);
  std::printf("# device-to-device copy bandwidth (read + write): %.0f GB/s\n", copy_gbs);
  if (o.offload)
    std::printf(
        "# host-to-device: %.1f GB/s by cudaMemcpyAsync from pinned memory, %.1f GB/s "
        "read by a kernel from mapped pinned memory (zero-copy); the bus floor of a case "
        "is its FASA-M bytes over the faster\n",
        h2d_gbs, zc_gbs);
  if (o.offload)
    std::printf("# FASA-M's far tier: %s\n", o.offload_huge_pages
                                                 ? "transparent huge pages, cudaHostRegister"
                                                 : "cudaHostAlloc (mapped, portable)");
  std::printf("# shape: %d query heads, %d KV heads, head_dim %d, %s; N_tip %d; %d reps, median\n",
              o.heads, o.kv_heads, o.head_dim, cuda::elem_traits<Elem>::name, o.n_tip, o.reps);
  if (!o.dump_dir.empty()) std::filesystem::create_directories(o.dump_dir);
  std::ofstream index;
  if (!o.dump_dir.empty()) index.open(o.dump_dir + "/cases.jsonl");

  // The host-gather decoders' threads, one team for all.
  std::shared_ptr<cuda::gather_team> team;
  if (o.offload && std::count(o.offload_fetch.begin(), o.offload_fetch.end(), "host_gather") > 0) {
    team = std::make_shared<cuda::gather_team>(cuda::default_gather_threads());
    std::printf("# FASA-M host gather: %d threads\n", team->size());
  }
  device_buffer<char> flush(std::size_t{256} << 20);  // > L2: evicts the cache between replays
  const auto flush_l2 = [&] {
    FASA_CUDA_CHECK(cudaMemsetAsync(flush.data(), 0, flush.bytes(), stream));
  };
  timer_events ev;
  std::vector<row> rows;
  const auto elem = static_cast<double>(sizeof(Elem));
  const std::int64_t max_budget = *std::max_element(o.budgets.begin(), o.budgets.end());

  for (int batch : o.batches)
    for (std::int64_t t : o.contexts) {
      const attention_shape shape{o.heads, o.kv_heads, o.head_dim, t};
      const double kv_bytes = static_cast<double>(batch) * o.kv_heads * t * 2.0 * o.head_dim * elem;
      const double need = 2 * kv_bytes + 3.0 * batch * o.heads * t * 4.0;
      if (need > o.max_gib * 1073741824.0) {
        std::printf("# skipped context %lld batch %d: needs %.1f GiB (> --max-gib %.0f)\n",
                    static_cast<long long>(t), batch, need / 1073741824.0, o.max_gib);
        continue;
      }
      const std::vector<int> lengths(static_cast<std::size_t>(batch), static_cast<int>(t));
      // Queries: hashed, rounded to the cache's element type (the PyTorch peers get the same).
      const std::size_t qn = static_cast<std::size_t>(batch) * o.heads * o.head_dim;
      std::vector<float> q_host(qn);
      for (int b = 0; b < batch; ++b)
        for (int h = 0; h < o.heads; ++h)
          for (int dim = 0; dim < o.head_dim; ++dim) {
            const auto plane = cuda::kernels::hashed_plane(cuda::kernels::hashed_tensor::query, b,
                                                           h, batch, o.heads);
            const float x =
                cuda::kernels::hashed_uniform(o.seed, plane, static_cast<std::uint32_t>(dim));
            q_host[(static_cast<std::size_t>(b) * o.heads + h) * o.head_dim + dim] =
                cuda::elem_traits<Elem>::to_float(cuda::elem_traits<Elem>::from_float(x));
          }
      device_buffer<float> q, out_dense(qn), out_fasa(qn);
      q.upload(q_host);

      cuda::batch_decoder<Elem, selector::dense, storage::contiguous> dense(
          shape, batch, selector::dense{}, storage::contiguous::for_shape(shape));
      dense.set_split_options(o.splits);
      dense.set_lengths(lengths);
      dense.fill_hashed(o.seed);
      const graph dense_graph(stream, [&] { dense.decode(q.data(), out_dense.data(), stream); });
      dense_graph.replay(stream);
      FASA_CUDA_CHECK(cudaStreamSynchronize(stream));
      const std::string tag = std::to_string(t) + "-" + std::to_string(batch);
      if (!o.dump_dir.empty())
        write_floats(o.dump_dir + "/dense-" + tag + ".f32", out_dense.download());

      for (const std::string& gname : o.granularities) {
        FASA_CHECK(gname == "kv_head" || gname == "query_head", "fasa-bench: unknown granularity '",
                   gname, "'; known: kv_head, query_head");
        const auto g =
            gname == "kv_head" ? selection_granularity::kv_head : selection_granularity::query_head;
        const auto pe = positional::rope::interleaved(o.head_dim, 500000.0);
        const auto fcs = random_fcs(o, g, o.seed + 17);
        const dominant_plan plan(pe, shape, g, fcs, cuda::vec_elems<Elem>);
        cuda::batch_decoder<Elem, selector::fasa_tip, storage::split_dominant> fasa(
            shape, batch, plan.tip(token_budget::tokens(max_budget)), plan.storage());
        fasa.set_split_options(o.splits);
        fasa.set_lengths(lengths);
        fasa.fill_hashed(o.seed);
        using fasa_m_decoder =
            cuda::batch_decoder<Elem, selector::fasa_tip, storage::split_offload>;
        // One FASA-M decoder per --offload-fetch mode; the first owns the tiers, the others
        // read them (each its own row pool).
        std::vector<std::unique_ptr<fasa_m_decoder>> fms;
        const double host_need = static_cast<double>(batch) * o.kv_heads * t *
                                 (2.0 * o.head_dim - plan.slab_width()) * elem;
        if (o.offload && host_need > o.max_host_gib * 1073741824.0)
          std::printf(
              "# FASA-M skipped at context %lld batch %d: its far tier needs %.1f GiB of "
              "pinned host memory (> --max-host-gib %.0f)\n",
              static_cast<long long>(t), batch, host_need / 1073741824.0, o.max_host_gib);
        else if (o.offload) {
          for (const std::string& fname : o.offload_fetch) {
            cuda::offload_options oo{};
            oo.huge_pages = o.offload_huge_pages;
            oo.fetch = fetch_of(fname);
            oo.team = team;
            const cuda::shared_cache<Elem> tiers =
                fms.empty() ? cuda::shared_cache<Elem>{} : fms[0]->shared();
            fms.push_back(std::make_unique<fasa_m_decoder>(
                shape, batch, plan.tip(token_budget::tokens(max_budget)), plan.offload_storage(),
                tiers, oo));
            fms.back()->set_split_options(o.splits);
            fms.back()->set_lengths(lengths);
          }
          fms[0]->fill_hashed(o.seed);
        }
        device_buffer<float> out_m(qn);
        // FASA-M's steps, one per --offload-fetch mode and --offload-miss share: the share of
        // the pool emptied, then the step (a replay repeats its selection, so without it every
        // row would be a hit).
        struct m_case {
          fasa_m_decoder* d;
          double share;
        };
        std::vector<m_case> cases;
        for (auto& d : fms)
          for (double share : o.offload_miss) cases.push_back({d.get(), share});
        const auto m_step = [&](const m_case& c, const cuda::stage_events* se) {
          c.d->forget_pool_share(c.share, o.seed, stream);
          c.d->decode(q.data(), out_m.data(), stream, se);
        };
        for (std::int64_t n_fac : o.budgets) {
          fasa.set_budget(token_budget::tokens(n_fac));
          const graph fasa_graph(stream, [&] { fasa.decode(q.data(), out_fasa.data(), stream); });
          std::vector<std::unique_ptr<graph>> m_graphs;
          for (auto& d : fms) d->set_budget(token_budget::tokens(n_fac));
          for (const m_case& c : cases)
            m_graphs.push_back(std::make_unique<graph>(stream, [&] { m_step(c, nullptr); }));
          std::vector<double> dense_ms, fasa_ms;
          std::vector<std::vector<double>> m_ms(cases.size());
          std::vector<const graph*> graphs = {&dense_graph, &fasa_graph};
          std::vector<std::vector<double>*> times = {&dense_ms, &fasa_ms};
          for (std::size_t i = 0; i < cases.size(); ++i) {
            graphs.push_back(m_graphs[i].get());
            times.push_back(&m_ms[i]);
          }
          for (int rep = 0; rep < o.warmup + o.reps; ++rep) {
            for (std::size_t which = 0; which < graphs.size(); ++which) {
              flush_l2();
              FASA_CUDA_CHECK(cudaEventRecord(ev.a, stream));
              graphs[which]->replay(stream);
              FASA_CUDA_CHECK(cudaEventRecord(ev.b, stream));
              FASA_CUDA_CHECK(cudaEventSynchronize(ev.b));
              if (rep >= o.warmup) times[which]->push_back(ev.ms());
            }
          }
          // Stage breakdown: eager steps with events between the stages.
          cuda::stage_events se;
          const std::vector<cudaEvent_t*> marks = {&se.start,    &se.prepared, &se.scored,
                                                   &se.filtered, &se.selected, &se.done};
          for (cudaEvent_t* e : marks) FASA_CUDA_CHECK(cudaEventCreate(e));
          std::vector<std::vector<double>> stage(marks.size() - 1);
          for (int rep = 0; rep < std::max(3, o.reps / 3); ++rep) {
            flush_l2();
            fasa.decode(q.data(), out_fasa.data(), stream, &se);
            FASA_CUDA_CHECK(cudaEventSynchronize(se.done));
            for (std::size_t i = 0; i + 1 < marks.size(); ++i) {
              float ms = 0;
              FASA_CUDA_CHECK(cudaEventElapsedTime(&ms, *marks[i], *marks[i + 1]));
              stage[i].push_back(ms);
            }
          }
          for (cudaEvent_t* e : marks) cudaEventDestroy(*e);
          // FASA-M's stages after the top-k, per share: the pool's plan and the fetch over the
          // bus, then the attention; the rows fetched; the answer against FASA-C's.
          std::vector<std::vector<double>> m_fetch(cases.size()), m_attend(cases.size());
          std::vector<double> m_diff(cases.size(), 0), m_rows(cases.size(), 0);
          for (std::size_t i = 0; i < cases.size(); ++i) {
            cuda::stage_events me;
            const std::vector<cudaEvent_t*> mm = {&me.start,    &me.prepared, &me.scored,
                                                  &me.filtered, &me.selected, &me.fetched,
                                                  &me.done};
            for (cudaEvent_t* e : mm) FASA_CUDA_CHECK(cudaEventCreate(e));
            for (int rep = 0; rep < std::max(3, o.reps / 3); ++rep) {
              flush_l2();
              m_step(cases[i], &me);
              FASA_CUDA_CHECK(cudaEventSynchronize(me.done));
              float a = 0, b = 0;
              FASA_CUDA_CHECK(cudaEventElapsedTime(&a, me.selected, me.fetched));
              FASA_CUDA_CHECK(cudaEventElapsedTime(&b, me.fetched, me.done));
              m_fetch[i].push_back(a);
              m_attend[i].push_back(b);
            }
            for (cudaEvent_t* e : mm) cudaEventDestroy(*e);
            m_rows[i] = static_cast<double>(cases[i].d->fetched_rows());
            // FASA-M must give FASA-C's answer (the same rows, the same arithmetic).
            fasa.decode(q.data(), out_fasa.data(), stream);
            FASA_CUDA_CHECK(cudaStreamSynchronize(stream));
            const std::vector<float> oc = out_fasa.download(), om = out_m.download();
            for (std::size_t j = 0; j < oc.size(); ++j)
              m_diff[i] = std::max(m_diff[i], static_cast<double>(std::abs(oc[j] - om[j])));
            if (std::isnan(m_diff[i]) ||
                std::any_of(om.begin(), om.end(), [](float x) { return std::isnan(x); }))
              m_diff[i] = INFINITY;
          }

          row r{};
          r.context = t;
          r.batch = batch;
          r.granularity = gname;
          r.n_fac = n_fac;
          r.slab_width = plan.slab_width();
          r.dense_ms = median(dense_ms);
          r.fasa_ms = median(fasa_ms);
          r.speedup = r.dense_ms / r.fasa_ms;
          r.ceiling = 1.0 / (static_cast<double>(o.n_tip) / o.head_dim +
                             static_cast<double>(n_fac) / static_cast<double>(t));
          const int units = fasa.units();
          r.dense_bytes = kv_bytes;
          // TIP reads each KV head's slab once; FAC gathers n_fac K and V rows per unit.
          r.fasa_bytes =
              static_cast<double>(batch) * o.kv_heads * t * plan.slab_width() * elem +
              static_cast<double>(batch) * units * std::min(n_fac, t) * 2.0 * o.head_dim * elem;
          // Scores: written once by TIP, read twice by the top-k's first pass.
          r.score_bytes = 3.0 * batch * units * t * 4.0;
          r.dense_gbs = r.dense_bytes / (r.dense_ms * 1e-3) / 1e9;
          r.fasa_gbs = (r.fasa_bytes + r.score_bytes) / (r.fasa_ms * 1e-3) / 1e9;
          r.prep_ms = median(stage[0]);
          r.tip_ms = median(stage[1]);
          r.filter_ms = median(stage[2]);
          r.finish_ms = median(stage[3]);
          r.fac_ms = median(stage[4]);
          r.dense_kv = static_cast<double>(dense.kv_device_bytes());
          r.c_kv = static_cast<double>(fasa.kv_device_bytes());
          std::printf(
              "ctx %6lld batch %2d %-10s N_fac %4lld | dense %8.4f ms (%4.0f GB/s, %3.0f%% of "
              "copy) "
              "| FASA-C %8.4f ms | speedup %5.2fx of ceiling %5.2fx (%3.0f%%) | eager stages: prep "
              "%.4f TIP %.4f filter %.4f finish %.4f FAC %.4f ms\n",
              static_cast<long long>(t), batch, gname.c_str(), static_cast<long long>(n_fac),
              r.dense_ms, r.dense_gbs, 100 * r.dense_gbs / copy_gbs, r.fasa_ms, r.speedup,
              r.ceiling, 100 * r.speedup / r.ceiling, r.prep_ms, r.tip_ms, r.filter_ms, r.finish_ms,
              r.fac_ms);
          if (fms.empty()) rows.push_back(r);
          for (std::size_t i = 0; i < cases.size(); ++i) {
            row m = r;
            m.miss_share = cases[i].share;
            m.fetch = cuda::name_of(cases[i].d->fetch());
            m.fetched_rows = m_rows[i];
            m.m_ms = median(m_ms[i]);
            m.m_vs_c = m.m_ms / m.fasa_ms;
            m.m_vs_dense = m.dense_ms / m.m_ms;
            // Each fetched row crosses with its rest dims and its value.
            m.bus_bytes = m.fetched_rows * (2.0 * o.head_dim - plan.slab_width()) * elem;
            m.bus_floor_ms = m.bus_bytes / (std::max(h2d_gbs, zc_gbs) * 1e9) * 1e3;
            m.m_fetch_ms = median(m_fetch[i]);
            m.m_attend_ms = median(m_attend[i]);
            m.m_max_diff = m_diff[i];
            // a decoder reading the first one's tiers holds only its pool: add the near tier
            m.m_kv = static_cast<double>(cases[i].d->kv_device_bytes() +
                                         (cases[i].d->owns_cache() ? 0 : fms[0]->cache_bytes()));
            m.m_host = static_cast<double>(fms[0]->host_bytes());
            rows.push_back(m);
            const double per_unit = static_cast<double>(batch) * units * std::min(n_fac, t);
            std::printf(
                "    FASA-M %-11s %.2f of the pool emptied: %8.4f ms = %.2fx FASA-C, %.2fx faster "
                "than dense | fetched %.0f rows (%.3f of the units' kept rows), bus %.2f MB/step, "
                "floor %.4f ms, plan + fetch %.4f ms, attend %.4f ms | max |FASA-M - FASA-C| "
                "%.3g | GPU KV: dense %.3f GiB, FASA-C %.3f, FASA-M %.3f (%.3f of dense) + host "
                "%.3f GiB\n",
                m.fetch.c_str(), m.miss_share, m.m_ms, m.m_vs_c, m.m_vs_dense, m.fetched_rows,
                m.fetched_rows / per_unit, m.bus_bytes / 1e6, m.bus_floor_ms, m.m_fetch_ms,
                m.m_attend_ms, m.m_max_diff, m.dense_kv / 1073741824.0, m.c_kv / 1073741824.0,
                m.m_kv / 1073741824.0, m.m_kv / m.dense_kv, m.m_host / 1073741824.0);
          }
          std::fflush(stdout);

          if (!o.dump_dir.empty()) {
            // The graph's own output, from the last replay.
            FASA_CUDA_CHECK(cudaStreamSynchronize(stream));
            const std::string name =
                "fasa-" + tag + "-" + gname + "-" + std::to_string(n_fac) + ".f32";
            write_floats(o.dump_dir + "/" + name, out_fasa.download());
            // The kept tokens of every (sequence, unit), for the peer's tie-aware check.
            std::vector<std::int32_t> kept;
            for (int b = 0; b < batch; ++b)
              for (int u = 0; u < units; ++u) {
                const auto sel = fasa.selected(b, u);
                kept.insert(kept.end(), sel.begin(), sel.end());
              }
            const std::string sel_name =
                "sel-" + tag + "-" + gname + "-" + std::to_string(n_fac) + ".i32";
            std::ofstream sel_out(o.dump_dir + "/" + sel_name, std::ios::binary);
            sel_out.write(reinterpret_cast<const char*>(kept.data()),
                          static_cast<std::streamsize>(kept.size() * sizeof(std::int32_t)));
            FASA_CHECK(sel_out.good(), "fasa-bench: cannot write ", sel_name);
            std::ostringstream js;
            js << "{\"context\":" << t << ",\"batch\":" << batch << ",\"heads\":" << o.heads
               << ",\"kv_heads\":" << o.kv_heads << ",\"head_dim\":" << o.head_dim
               << ",\"dtype\":\"" << cuda::elem_traits<Elem>::name << "\",\"seed\":" << o.seed
               << ",\"granularity\":\"" << gname << "\",\"n_fac\":" << n_fac
               << ",\"n_tip\":" << o.n_tip << ",\"dense_file\":\"dense-" << tag
               << ".f32\",\"fasa_file\":\"" << name << "\",\"sel_file\":\"" << sel_name
               << "\",\"dense_ms\":" << r.dense_ms << ",\"fasa_ms\":" << r.fasa_ms << ",\"dims\":[";
            for (int u = 0; u < units; ++u) {
              js << (u ? "," : "") << "[";
              const auto dims = plan.unit_dims(u);
              for (std::size_t i = 0; i < dims.size(); ++i) js << (i ? "," : "") << dims[i];
              js << "]";
            }
            js << "]}\n";
            index << js.str() << std::flush;
          }
        }
      }
    }

  if (!o.csv.empty()) {
    std::ofstream csv(o.csv);
    csv << "gpu,driver,runtime,copy_gbs,heads,kv_heads,head_dim,dtype,n_tip,context,batch,"
           "granularity,n_fac,slab_width,dense_ms,fasa_ms,speedup,ceiling,fraction_of_ceiling,"
           "dense_bytes,fasa_bytes,score_bytes,dense_gbs,dense_fraction_of_copy,fasa_gbs,prep_ms,"
           "tip_ms,filter_ms,finish_ms,fac_ms,h2d_gbs,zero_copy_gbs,fasam_ms,fasam_vs_fasac,"
           "dense_vs_fasam,bus_bytes,bus_floor_ms,fasam_fetch_ms,fasam_attend_ms,fasam_max_diff,"
           "dense_kv_bytes,fasac_kv_bytes,fasam_kv_bytes,fasam_host_bytes,miss_share,fetched_"
           "rows,offload_fetch\n";
    for (const row& r : rows)
      csv << '"' << prop.name << "\"," << driver << ',' << runtime << ',' << copy_gbs << ','
          << o.heads << ',' << o.kv_heads << ',' << o.head_dim << ','
          << cuda::elem_traits<Elem>::name << ',' << o.n_tip << ',' << r.context << ',' << r.batch
          << ',' << r.granularity << ',' << r.n_fac << ',' << r.slab_width << ',' << r.dense_ms
          << ',' << r.fasa_ms << ',' << r.speedup << ',' << r.ceiling << ','
          << r.speedup / r.ceiling << ',' << r.dense_bytes << ',' << r.fasa_bytes << ','
          << r.score_bytes << ',' << r.dense_gbs << ',' << r.dense_gbs / copy_gbs << ','
          << r.fasa_gbs << ',' << r.prep_ms << ',' << r.tip_ms << ',' << r.filter_ms << ','
          << r.finish_ms << ',' << r.fac_ms << ',' << h2d_gbs << ',' << zc_gbs << ',' << r.m_ms
          << ',' << r.m_vs_c << ',' << r.m_vs_dense << ',' << r.bus_bytes << ',' << r.bus_floor_ms
          << ',' << r.m_fetch_ms << ',' << r.m_attend_ms << ',' << r.m_max_diff << ',' << r.dense_kv
          << ',' << r.c_kv << ',' << r.m_kv << ',' << r.m_host << ',' << r.miss_share << ','
          << r.fetched_rows << ',' << r.fetch << '\n';
    FASA_CHECK(csv.good(), "fasa-bench: cannot write ", o.csv);
    std::printf("# wrote %s\n", o.csv.c_str());
  }
  FASA_CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
}

// --capacity: per context, the largest batch whose KV caches for `layers` attention layers fit
// the GPU beside the weights (--weights-gib) with dense, FASA-C and FASA-M, from the bytes each
// decoder allocates per sequence (its KV cache per layer, and one layer's scratch: the selection
// buffers are reused layer after layer); then one layer's step timed at that batch, and the
// decode throughput it implies (batch / (layers x step); attention alone, no projections or MLP).
struct capacity_row {
  std::int64_t context;
  std::string granularity, config;
  double kv_per_seq = 0, scratch_per_seq = 0, fixed = 0, host_per_seq = 0;
  std::int64_t max_batch = 0;
  double step_ms = 0, tokens_per_s = 0, fetched_rows = 0;
  // The whole step: `layers` decoders (each its own cache and scratch) replayed as one graph, at
  // the largest batch where they all fit (GPU and, for FASA-M, --max-host-gib); 0 where not run.
  std::int64_t step_batch = 0;
  double whole_step_ms = 0, whole_tokens_per_s = 0;
};

template <class Elem>
int run_capacity(const cuda_bench_options& o) {
  FASA_CHECK(o.heads % o.kv_heads == 0, "fasa-bench: --heads must be a multiple of --kv-heads");
  FASA_CHECK(o.layers >= 1, "fasa-bench: --layers must be >= 1");
  cudaDeviceProp prop{};
  FASA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t stream;
  FASA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const double gib = 1073741824.0;
  const double budget = static_cast<double>(prop.totalGlobalMem) - (o.weights_gib + 2.0) * gib;
  FASA_CHECK(budget > 0, "fasa-bench --capacity: --weights-gib ", o.weights_gib,
             " plus 2 GiB of activations leave nothing of the GPU's ", prop.totalGlobalMem / gib,
             " GiB");
  const std::int64_t n_fac = o.budgets.front();
  const double share = o.offload_miss.back();
  std::printf(
      "# GPU: %s, %.1f GiB; %d layers of %d query / %d KV heads, d %d, %s; weights %.1f "
      "GiB + 2 GiB of activations leave %.1f GiB for the KV caches and one layer's "
      "scratch\n",
      prop.name, prop.totalGlobalMem / gib, o.layers, o.heads, o.kv_heads, o.head_dim,
      cuda::elem_traits<Elem>::name, o.weights_gib, budget / gib);
  std::printf(
      "# FASA: N_tip %d, N_fac %lld; FASA-M with %.2f of its row pool emptied before "
      "each step; times: one layer's step (graph replay, L2 flushed), median of %d\n",
      o.n_tip, static_cast<long long>(n_fac), share, o.reps);
  device_buffer<char> flush(std::size_t{256} << 20);
  timer_events ev;
  std::vector<capacity_row> rows;
  const auto time_graph = [&](const graph& g) {
    std::vector<double> ms;
    for (int rep = 0; rep < o.warmup + o.reps; ++rep) {
      FASA_CUDA_CHECK(cudaMemsetAsync(flush.data(), 0, flush.bytes(), stream));
      FASA_CUDA_CHECK(cudaEventRecord(ev.a, stream));
      g.replay(stream);
      FASA_CUDA_CHECK(cudaEventRecord(ev.b, stream));
      FASA_CUDA_CHECK(cudaEventSynchronize(ev.b));
      if (rep >= o.warmup) ms.push_back(ev.ms());
    }
    return median(ms);
  };
  // A batch's queries, hashed: device [batch, heads, head_dim].
  const auto hashed_queries = [&](std::int64_t batch) {
    std::vector<float> host(static_cast<std::size_t>(batch) * o.heads * o.head_dim);
    for (std::size_t i = 0; i < host.size(); ++i)
      host[i] = cuda::kernels::hashed_uniform(o.seed, 7, static_cast<std::uint32_t>(i));
    device_buffer<float> q;
    q.upload(host);
    return q;
  };
  for (std::int64_t t : o.contexts)
    for (const std::string& gname : o.granularities) {
      const auto g =
          gname == "kv_head" ? selection_granularity::kv_head : selection_granularity::query_head;
      const attention_shape shape{o.heads, o.kv_heads, o.head_dim, t};
      const auto pe = positional::rope::interleaved(o.head_dim, 500000.0);
      const dominant_plan plan(pe, shape, g, random_fcs(o, g, o.seed + 17), cuda::vec_elems<Elem>);
      const auto sel = plan.tip(token_budget::tokens(n_fac));
      // One configuration: its bytes per sequence from decoders of 1 and 2 sequences, its
      // largest batch, and its step at that batch.
      const auto measure = [&](const std::string& config, auto make, auto step) {
        if (gname != o.granularities.front() && config == "dense") return;  // once per context
        capacity_row r{};
        r.context = t;
        r.granularity = config == "dense" ? "-" : gname;
        r.config = config;
        {
          auto one = make(1);
          auto two = make(2);
          r.kv_per_seq = static_cast<double>(two->kv_device_bytes() - one->kv_device_bytes());
          r.scratch_per_seq = static_cast<double>((two->device_bytes() - two->kv_device_bytes()) -
                                                  (one->device_bytes() - one->kv_device_bytes()));
          r.fixed = static_cast<double>(one->device_bytes()) - r.kv_per_seq - r.scratch_per_seq;
          r.host_per_seq = static_cast<double>(two->host_bytes() - one->host_bytes());
        }
        r.max_batch = static_cast<std::int64_t>((budget - r.fixed) /
                                                (o.layers * r.kv_per_seq + r.scratch_per_seq));
        if (r.max_batch < 1) {
          std::printf("ctx %6lld %-10s %-6s | not one sequence fits\n", static_cast<long long>(t),
                      r.granularity.c_str(), config.c_str());
          rows.push_back(r);
          return;
        }
        const int batch = static_cast<int>(std::min<std::int64_t>(r.max_batch, 65535));
        if (r.host_per_seq * batch > o.max_host_gib * gib) {
          std::printf(
              "ctx %6lld %-10s %-6s | largest batch %lld; not timed: one layer's far "
              "tier needs %.1f GiB of pinned host memory (> --max-host-gib %.0f)\n",
              static_cast<long long>(t), r.granularity.c_str(), config.c_str(),
              static_cast<long long>(r.max_batch), r.host_per_seq * batch / gib, o.max_host_gib);
          rows.push_back(r);
          return;
        }
        auto dec = make(batch);
        const std::vector<int> lengths(static_cast<std::size_t>(batch), static_cast<int>(t));
        dec->set_split_options(o.splits);
        dec->set_lengths(lengths);
        dec->fill_hashed(o.seed);
        device_buffer<float> q = hashed_queries(batch), out(q.size());
        const graph gr(stream, [&] { step(*dec, q.data(), out.data()); });
        r.step_ms = time_graph(gr);
        r.tokens_per_s = batch / (o.layers * r.step_ms * 1e-3);
        if constexpr (requires { dec->fetched_rows(); }) r.fetched_rows = dec->fetched_rows();
        std::printf(
            "ctx %6lld %-10s %-6s | per sequence: %.1f MiB of KV per layer, %.1f MiB of "
            "scratch, %.1f MiB of host memory per layer | largest batch %5lld | one "
            "layer %.4f ms | %.0f tokens/s over %d layers\n",
            static_cast<long long>(t), r.granularity.c_str(), config.c_str(),
            r.kv_per_seq / 1048576.0, r.scratch_per_seq / 1048576.0, r.host_per_seq / 1048576.0,
            static_cast<long long>(r.max_batch), r.step_ms, r.tokens_per_s, o.layers);
        std::fflush(stdout);
        if (o.whole_step && o.layers > 1) {
          // The whole step: every layer its own decoder, so each layer reads its own cache, as in
          // a model. Each decoder has its own scratch here (a model would reuse one layer's), and
          // FASA-M's far tiers of all layers must fit the host, so the batch may be smaller.
          std::int64_t b = static_cast<std::int64_t>(
              (budget - o.layers * r.fixed) / (o.layers * (r.kv_per_seq + r.scratch_per_seq)));
          if (r.host_per_seq > 0)
            b = std::min(
                b, static_cast<std::int64_t>(o.max_host_gib * gib / (o.layers * r.host_per_seq)));
          b = std::min<std::int64_t>(b, 65535);
          if (b < 1) {
            std::printf("    whole step of %d layers: not one sequence fits\n", o.layers);
          } else {
            dec.reset();
            std::vector<decltype(make(1))> decs;
            const std::vector<int> lens(static_cast<std::size_t>(b), static_cast<int>(t));
            for (int l = 0; l < o.layers; ++l) {
              decs.push_back(make(static_cast<int>(b)));
              decs.back()->set_split_options(o.splits);
              decs.back()->set_lengths(lens);
              decs.back()->fill_hashed(o.seed + static_cast<std::uint32_t>(l));
            }
            device_buffer<float> qw = hashed_queries(b), ow(qw.size());
            // A layer's input is the last one's output in a model; the same query here.
            const graph whole(stream, [&] {
              for (auto& d : decs) step(*d, qw.data(), ow.data());
            });
            r.step_batch = b;
            r.whole_step_ms = time_graph(whole);
            r.whole_tokens_per_s = static_cast<double>(b) / (r.whole_step_ms * 1e-3);
            std::printf(
                "    whole step of %d layers at batch %lld: %.3f ms (%.4f ms a layer) | %.0f "
                "tokens/s\n",
                o.layers, static_cast<long long>(b), r.whole_step_ms, r.whole_step_ms / o.layers,
                r.whole_tokens_per_s);
            std::fflush(stdout);
          }
        }
        rows.push_back(r);
      };
      using dense_t = cuda::batch_decoder<Elem, selector::dense, storage::contiguous>;
      using fasac_t = cuda::batch_decoder<Elem, selector::fasa_tip, storage::split_dominant>;
      using fasam_t = cuda::batch_decoder<Elem, selector::fasa_tip, storage::split_offload>;
      measure(
          "dense",
          [&](int b) {
            return std::make_unique<dense_t>(shape, b, selector::dense{},
                                             storage::contiguous::for_shape(shape));
          },
          [&](dense_t& d, const float* q, float* out) { d.decode(q, out, stream); });
      measure(
          "FASA-C", [&](int b) { return std::make_unique<fasac_t>(shape, b, sel, plan.storage()); },
          [&](fasac_t& d, const float* q, float* out) { d.decode(q, out, stream); });
      measure(
          "FASA-M",
          [&](int b) {
            return std::make_unique<fasam_t>(shape, b, sel, plan.offload_storage(),
                                             cuda::shared_cache<Elem>{},
                                             huge_pages_only(o.offload_huge_pages));
          },
          [&](fasam_t& d, const float* q, float* out) {
            d.forget_pool_share(share, o.seed, stream);
            d.decode(q, out, stream);
          });
    }
  if (!o.csv.empty()) {
    std::ofstream csv(o.csv);
    csv << "gpu,heads,kv_heads,head_dim,dtype,n_tip,n_fac,layers,weights_gib,budget_bytes,"
           "miss_share,context,granularity,config,kv_bytes_per_seq_layer,scratch_bytes_per_seq,"
           "fixed_bytes,host_bytes_per_seq_layer,max_batch,step_ms,tokens_per_s,fetched_rows,"
           "step_batch,whole_step_ms,whole_tokens_per_s\n";
    for (const capacity_row& r : rows)
      csv << '"' << prop.name << "\"," << o.heads << ',' << o.kv_heads << ',' << o.head_dim << ','
          << cuda::elem_traits<Elem>::name << ',' << o.n_tip << ',' << n_fac << ',' << o.layers
          << ',' << o.weights_gib << ',' << budget << ',' << share << ',' << r.context << ','
          << r.granularity << ',' << r.config << ',' << r.kv_per_seq << ',' << r.scratch_per_seq
          << ',' << r.fixed << ',' << r.host_per_seq << ',' << r.max_batch << ',' << r.step_ms
          << ',' << r.tokens_per_s << ',' << r.fetched_rows << ',' << r.step_batch << ','
          << r.whole_step_ms << ',' << r.whole_tokens_per_s << '\n';
    FASA_CHECK(csv.good(), "fasa-bench: cannot write ", o.csv);
    std::printf("# wrote %s\n", o.csv.c_str());
  }
  FASA_CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
}

// --bus-probe: how fast a kernel reads scattered rows of mapped pinned host memory, as FASA-M's
// fetch does, against the footprint the rows are drawn from and the row size. Per case: n rows
// at random row-aligned places in the first `footprint` bytes (or, "split", each row in two
// pieces of 192 and 256 bytes from two halves: the far tier's rest-of-key and value arrays),
// 16-byte loads, a warp's lanes on consecutive vectors of a row; GB/s of row bytes, median.
// Where the rate falls with the footprint, address translation (GPU TLB, host IOMMU) limits the
// fetch; where it falls with the row size, the link's small-read efficiency does.
__global__ void read_rows(const uint4* src, const std::int64_t* first, const std::int64_t* second,
                          int vecs_first, int vecs, uint4* dst, std::int64_t rows) {
  const std::int64_t items = rows * vecs;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < items;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / vecs;
    const int c = static_cast<int>(i % vecs);
    const std::int64_t at = c < vecs_first ? first[r] + c : second[r] + (c - vecs_first);
    dst[i] = src[at];
  }
}

int run_bus_probe(const cuda_bench_options& o) {
  cudaDeviceProp prop{};
  FASA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t stream;
  FASA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const double gib = 1073741824.0;
  const std::size_t most = static_cast<std::size_t>(o.max_host_gib * gib) & ~std::size_t{4095};
  std::printf("# GPU: %s, %d SMs; pinned host buffer %.1f GiB (%s)\n", prop.name,
              prop.multiProcessorCount, most / gib,
              o.offload_huge_pages ? "transparent huge pages, cudaHostRegister"
                                   : "cudaHostAlloc (mapped, portable)");
  cuda::pinned_buffer<char> host;
  host.allocate(most, "fasa-bench --bus-probe", o.offload_huge_pages);
  std::memset(host.data(), 1, most);
  const double seq_zc = host_read_gbs(stream, prop.multiProcessorCount, true);
  const double seq_ce = host_read_gbs(stream, prop.multiProcessorCount, false);
  std::printf("# sequential 1 GiB: %.1f GB/s zero-copy, %.1f GB/s cudaMemcpyAsync\n", seq_zc,
              seq_ce);
  const std::size_t moved = std::size_t{64} << 20;  // row bytes read per measurement
  device_buffer<uint4> dst(moved / 16 + 4096);
  std::mt19937_64 gen(o.seed);
  std::ofstream csv;
  if (!o.csv.empty()) {
    csv.open(o.csv);
    csv << "gpu,footprint_bytes,row_bytes,layout,rows,gbs,fraction_of_sequential\n";
  }
  for (std::size_t fp = std::size_t{64} << 20; fp <= most; fp *= 4) {
    for (int row_bytes : {64, 128, 256, 448, 1024, 4096}) {
      for (bool split : {false, true}) {
        if (split && row_bytes != 448) continue;
        const std::int64_t rows = static_cast<std::int64_t>(moved / row_bytes);
        std::vector<std::int64_t> a(static_cast<std::size_t>(rows)), b(a.size());
        if (!split) {
          std::uniform_int_distribution<std::int64_t> pick(0, fp / row_bytes - 1);
          for (auto& x : a) x = pick(gen) * (row_bytes / 16);
        } else {  // 192 bytes from the first half, 256 from the second
          const std::int64_t half = static_cast<std::int64_t>(fp / 2);
          std::uniform_int_distribution<std::int64_t> pa(0, half / 192 - 1), pb(0, half / 256 - 1);
          for (std::size_t i = 0; i < a.size(); ++i) {
            a[i] = pa(gen) * 12;
            b[i] = (half + pb(gen) * 256) / 16;
          }
        }
        device_buffer<std::int64_t> da, db;
        da.upload(a);
        db.upload(b);
        const int vecs = row_bytes / 16;
        const double gbs = median_gbs(stream, 5, static_cast<double>(rows) * row_bytes, [&] {
          read_rows<<<static_cast<unsigned>(prop.multiProcessorCount * 8), 256, 0, stream>>>(
              reinterpret_cast<const uint4*>(host.device_data()), da.data(), db.data(),
              split ? 12 : vecs, vecs, dst.data(), rows);
          FASA_CUDA_CHECK_LAUNCH("read_rows");
        });
        std::printf(
            "footprint %8.3f GiB | rows of %4d B %-5s | %7.1f GB/s (%3.0f%% of sequential)\n",
            fp / gib, row_bytes, split ? "split" : "", gbs, 100 * gbs / seq_zc);
        std::fflush(stdout);
        if (csv.is_open())
          csv << '"' << prop.name << "\"," << fp << ',' << row_bytes << ','
              << (split ? "split" : "whole") << ',' << rows << ',' << gbs << ',' << gbs / seq_zc
              << '\n';
      }
    }
  }
  FASA_CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
}

}  // namespace

int run_cuda_bench(const cuda_bench_options& o) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::cerr << "fasa-bench: --backend cuda needs a CUDA device; none is visible\n";
    return 2;
  }
  if (o.bus_probe) return run_bus_probe(o);
  if (o.dtype == "bf16") return o.capacity ? run_capacity<__nv_bfloat16>(o) : run<__nv_bfloat16>(o);
  if (o.dtype == "fp16") return o.capacity ? run_capacity<__half>(o) : run<__half>(o);
  std::cerr << "fasa-bench: unknown --dtype '" << o.dtype << "'; known: bf16, fp16\n";
  return 2;
}

}  // namespace fasa::tools
