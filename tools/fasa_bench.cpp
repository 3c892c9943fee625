// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
// fasa-bench: decode-attention time of dense attention against FASA-C (TIP over a dominant-dim
// slab, then exact attention over the N_fac kept rows) on one backend, over context lengths.
//
// Per (context, N_fac) it reports the median time of one SparseAttention::decode step of each
// variant, measured interleaved in the same run, their ratio, the bytes each step reads (from
// step_stats), the cost-model ceiling 1 / (N_tip/d + N_fac/t) (FASA Eq. 8) and the fraction of
// it reached. A memory-bandwidth probe runs first so the dense baseline's GB/s can be read
// against what this machine can stream.

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "cli_checks.hpp"
#include "fasa/backends/cpu/eigen.hpp"
#include "fasa/backends/cuda/split_options.hpp"
#include "fasa/fasa.hpp"

#if FASA_BENCH_HAS_CUDA
#include "cuda/bench_cuda.hpp"
#endif

namespace {

using clock_type = std::chrono::steady_clock;

struct options {
  std::string backend = "eigen";
  std::vector<std::int64_t> contexts = {4096, 8192, 16384, 32768, 65536, 131072};
  std::vector<double> budgets = {256, 2048};
  int n_tip = 16;
  int heads = 32;
  int kv_heads = 8;
  int head_dim = 128;
  int reps = 21;
  int warmup = 5;
  int threads = 0;
  std::string granularity = "kv_head";
  bool distinct_group_fcs = false;
  std::uint64_t seed = 1;
  std::string csv;
  double bandwidth_mib = 512;
};

// ---- random data ------------------------------------------------------------------------------

// splitmix64: fast and good enough to fill gigabytes of cache with uniform noise.
struct splitmix {
  std::uint64_t x;
  std::uint64_t next() {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform() {  // [-1, 1)
    return static_cast<float>(static_cast<double>(next() >> 40) * (2.0 / 16777216.0) - 1.0);
  }
  void fill(std::vector<float>& v) {
    for (auto& x : v) x = uniform();
  }
};

// N_tip random distinct FCs per unit (more than the head has when n_tip > d/2, so that the
// library's own check reports it).
std::vector<std::vector<int>> random_fcs(const options& o, fasa::selection_granularity g,
                                         splitmix& rng) {
  const int num_fcs = o.head_dim / 2;
  const int units = g == fasa::selection_granularity::query_head ? o.heads : o.kv_heads;
  const int group = o.heads / std::max(1, o.kv_heads);
  std::vector<std::vector<int>> sets;
  for (int u = 0; u < units; ++u) {
    const bool reuse = g == fasa::selection_granularity::query_head && !o.distinct_group_fcs &&
                       group > 0 && u % group != 0;
    if (reuse) {  // the query heads of a group share their KV head's dominant FCs
      sets.push_back(sets.back());
      continue;
    }
    std::vector<int> all(static_cast<std::size_t>(std::max(num_fcs, 0)));
    std::iota(all.begin(), all.end(), 0);
    for (std::size_t i = all.size(); i > 1; --i) std::swap(all[i - 1], all[rng.next() % i]);
    std::vector<int> set;
    for (int i = 0; i < o.n_tip; ++i)
      set.push_back(all.empty() ? 0 : all[static_cast<std::size_t>(i) % all.size()]);
    sets.push_back(set);
  }
  return sets;
}

// A budget value: an integer is a token count (1, 256, ...; 0 is refused by the library), a
// value in (0, 1) a fraction of the context.
fasa::token_budget to_budget(double b) {
  if (b == std::floor(b)) return fasa::token_budget::tokens(static_cast<std::int64_t>(b));
  return fasa::token_budget::fraction(b);
}

std::string budget_label(double b) {
  std::ostringstream os;
  os << b;
  return os.str();
}

// ---- machine ----------------------------------------------------------------------------------

struct bandwidth {
  double copy_gbs = 0;  // memcpy: bytes read + bytes written per second
  double read_gbs = 0;  // a streaming sum: bytes read per second
};

int team_size(int threads) {
#if defined(_OPENMP)
  return threads > 0 ? threads : omp_get_max_threads();
#else
  (void)threads;
  return 1;
#endif
}

// Copies and sums a buffer far larger than the last-level cache, on the same number of threads
// as the benchmark, and keeps the best of several passes (as STREAM does: what the machine can
// do, not what a noisy moment allowed).
bandwidth measure_bandwidth(double mib, int threads) {
  const auto n = static_cast<std::int64_t>(mib * 1024 * 1024 / sizeof(float));
  std::vector<float> src(static_cast<std::size_t>(n), 1.0f), dst(static_cast<std::size_t>(n), 0.0f);
  const int team = team_size(threads);
  std::vector<double> copy_s, read_s;
  double sink = 0;
  for (int rep = 0; rep < 7; ++rep) {
    auto t0 = clock_type::now();
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(team)
#endif
    for (int part = 0; part < team; ++part) {
      const std::int64_t a = n * part / team, b = n * (part + 1) / team;
      std::memcpy(dst.data() + a, src.data() + a, static_cast<std::size_t>(b - a) * sizeof(float));
    }
    copy_s.push_back(std::chrono::duration<double>(clock_type::now() - t0).count());
    t0 = clock_type::now();
    double total = 0;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(team) reduction(+ : total)
#endif
    for (int part = 0; part < team; ++part) {
      const std::int64_t a = n * part / team, b = n * (part + 1) / team;
      total += Eigen::Map<const Eigen::ArrayXf>(src.data() + a, b - a).sum();
    }
    read_s.push_back(std::chrono::duration<double>(clock_type::now() - t0).count());
    sink += total + dst[static_cast<std::size_t>(rep)];
  }
  if (sink == -1) std::cerr << "";  // keep the passes from being optimised away
  const double bytes = static_cast<double>(n) * sizeof(float);
  return {2 * bytes / *std::min_element(copy_s.begin(), copy_s.end()) / 1e9,
          bytes / *std::min_element(read_s.begin(), read_s.end()) / 1e9};
}

// The 1-, 5- and 15-minute load averages: a busy machine makes every timing suspect.
std::string load_average() {
  std::ifstream in("/proc/loadavg");
  double a = 0, b = 0, c = 0;
  if (!(in >> a >> b >> c)) return "unknown";
  std::ostringstream os;
  os << a << ' ' << b << ' ' << c;
  return os.str();
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  return "unknown";
}

// ---- one sweep ----------------------------------------------------------------------------------

struct row {
  std::int64_t context;          // requested: the cache size at the first timed step of the run
  std::int64_t t_first, t_last;  // the cache sizes at the first and last timed steps
  std::string budget;
  std::int64_t n_fac;
  double dense_ms, fasa_ms, speedup, ceiling;
  std::int64_t dense_bytes, fasa_bytes;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

template <class Backend>
Backend make_backend(const options&) {
  return Backend{};
}
template <>
fasa::backend::cpu_eigen make_backend<fasa::backend::cpu_eigen>(const options& o) {
  return fasa::backend::cpu_eigen{o.threads};
}

fasa::selection_granularity parse_granularity(const std::string& g) {
  if (g == "kv_head") return fasa::selection_granularity::kv_head;
  if (g == "query_head") return fasa::selection_granularity::query_head;
  throw CLI::ValidationError("--granularity",
                             "unknown granularity '" + g + "'; known: kv_head, query_head");
}

// Every check the library makes on these flags, before any memory is touched.
void validate(const options& o) {
  const auto pe = fasa::positional::rope::rotate_half(o.head_dim, 500000.0);
  const fasa::attention_shape shape{o.heads, o.kv_heads, o.head_dim, 1};
  shape.validate();
  const auto g = parse_granularity(o.granularity);
  splitmix rng{o.seed};
  const fasa::dominant_plan plan(pe, shape, g, random_fcs(o, g, rng));
  for (double b : o.budgets) plan.tip(to_budget(b)).validate(shape);
}

// What SparseAttention::decode spends rotating one step's queries and key (RoPE), a cost inside
// both timings that no backend removes.
double rope_us_per_step(const options& o) {
  const auto pe = fasa::positional::rope::rotate_half(o.head_dim, 500000.0);
  std::vector<float> x(static_cast<std::size_t>(o.heads + o.kv_heads) * o.head_dim, 0.5f);
  std::vector<double> times;
  for (int rep = 0; rep < 51; ++rep) {
    const auto t0 = clock_type::now();
    for (int r = 0; r < o.heads + o.kv_heads; ++r)
      pe.rotate(x.data() + r * o.head_dim, 100000 + rep);
    times.push_back(std::chrono::duration<double>(clock_type::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2] * 1e6 + 0 * x[0];
}

template <class Backend>
std::vector<row> run_sweep(const options& o, std::ostream& log) {
  using namespace fasa;
  const auto pe = positional::rope::rotate_half(o.head_dim, 500000.0);
  const auto g = parse_granularity(o.granularity);
  const Backend be = make_backend<Backend>(o);
  const int steps_per_budget = o.warmup + o.reps;
  const auto qn = static_cast<std::size_t>(o.heads) * static_cast<std::size_t>(o.head_dim);
  const auto kn = static_cast<std::size_t>(o.kv_heads) * static_cast<std::size_t>(o.head_dim);
  std::vector<row> rows;
  splitmix rng{o.seed};

  for (const std::int64_t context : o.contexts) {
    // Each decode step adds a token: the caches hold the context plus every step of the run.
    const std::int64_t capacity = context + static_cast<std::int64_t>(steps_per_budget) *
                                                static_cast<std::int64_t>(o.budgets.size());
    const attention_shape shape{o.heads, o.kv_heads, o.head_dim, capacity};
    const dominant_plan plan(pe, shape, g, random_fcs(o, g, rng));
    // Both caches exist only inside this scope: memory stays bounded by the largest context.
    auto dense = make_dense<Backend>(shape, pe, be);
    auto fasa_c = make_fasa_c<Backend>(plan, pe, to_budget(o.budgets.front()), {}, be);

    // Fill with the same random tokens, so that the first timed step sees `context` tokens.
    const std::int64_t fill = std::max<std::int64_t>(0, context - 1 - o.warmup);
    log << "context " << context << ": filling " << fill << " tokens into both caches"
        << std::flush;
    const auto fill_start = clock_type::now();
    constexpr std::int64_t chunk = 2048;
    std::vector<float> k(kn * chunk), v(kn * chunk);
    for (std::int64_t done = 0; done < fill;) {
      const std::int64_t n = std::min(chunk, fill - done);
      k.resize(kn * static_cast<std::size_t>(n));
      v.resize(kn * static_cast<std::size_t>(n));
      rng.fill(k);
      rng.fill(v);
      if (n > 0) {
        dense.append(k, v);
        fasa_c.append(k, v);
      }
      done += n;
      if ((done / chunk) % 16 == 0 || done == fill) {
        log << '.' << std::flush;
      }
    }
    log << " " << std::chrono::duration<double>(clock_type::now() - fill_start).count() << " s\n";

    for (const double b : o.budgets) {
      fasa_c.set_selector(plan.tip(to_budget(b)));
      std::vector<float> q(qn), kk(kn), vv(kn), out(qn);
      std::vector<double> dense_s, fasa_s;
      step_stats dense_stats, fasa_stats;
      std::int64_t first_context = 0, last_context = 0;
      // Interleave the two variants so both see the same machine; the first steps warm up.
      for (int step = 0; step < steps_per_budget; ++step) {
        rng.fill(q);
        rng.fill(kk);
        rng.fill(vv);
        auto t0 = clock_type::now();
        const step_stats ds = dense.decode(q, kk, vv, out);
        auto t1 = clock_type::now();
        const step_stats fs = fasa_c.decode(q, kk, vv, out);
        auto t2 = clock_type::now();
        if (step < o.warmup) continue;
        if (step == o.warmup) {
          dense_stats = ds, fasa_stats = fs;
          first_context = fs.context;
        }
        last_context = fs.context;
        dense_s.push_back(std::chrono::duration<double>(t1 - t0).count());
        fasa_s.push_back(std::chrono::duration<double>(t2 - t1).count());
      }
      row r;
      r.context = context;
      r.t_first = first_context;
      r.t_last = last_context;
      r.budget = budget_label(b);
      r.n_fac = fasa_stats.kept;
      r.dense_ms = median(dense_s) * 1e3;
      r.fasa_ms = median(fasa_s) * 1e3;
      r.speedup = r.dense_ms / r.fasa_ms;
      // FASA Eq. 8: 2td / (2t N_tip + 2 N_fac d) = 1 / (N_tip/d + N_fac/t)
      r.ceiling = 1.0 / (static_cast<double>(o.n_tip) / o.head_dim +
                         static_cast<double>(r.n_fac) / static_cast<double>(r.t_first));
      r.dense_bytes = dense_stats.bytes_read();
      r.fasa_bytes = fasa_stats.bytes_read();
      rows.push_back(r);
      log << "  N_fac " << r.budget << ": dense " << r.dense_ms << " ms, fasa_c " << r.fasa_ms
          << " ms\n";
    }
  }
  return rows;
}

// ---- the one dispatch table from a --backend string to a type
// ------------------------------------

using sweep_fn = std::vector<row> (*)(const options&, std::ostream&);
struct backend_entry {
  std::string_view name;
  std::string_view about;
  sweep_fn run;
};
constexpr backend_entry kBackends[] = {
    {"eigen", "fasa::backend::cpu_eigen: Eigen packets, OpenMP threads",
     &run_sweep<fasa::backend::cpu_eigen>},
    {"reference", "fasa::backend::cpu_reference: naive loops in double (slow; the oracle)",
     &run_sweep<fasa::backend::cpu_reference>},
};

// The CUDA backend is timed by its own sweep (tools/cuda/bench_cuda.cu: batches, bf16, CUDA
// graphs), reached through the compiled bridge when CMake found nvcc.
constexpr const char* kCudaAbout =
    "fasa::cuda::batch_decoder: device-resident bf16/fp16 cache, split-KV dense decode vs FASA-C "
    "(TIP slab scores, radix top-k, FAC gather), CUDA graphs";

std::string known_backends() {
  std::string s;
  for (const auto& b : kBackends) s += (s.empty() ? "" : ", ") + std::string(b.name);
  return s + ", cuda";
}

const backend_entry* find_backend(std::string_view name) {
  for (const auto& b : kBackends)
    if (b.name == name) return &b;
  return nullptr;
}

// ---- output -------------------------------------------------------------------------------------

void print_table(const std::vector<row>& rows, const bandwidth& bw, std::ostream& os) {
  char line[512];
  std::snprintf(line, sizeof line, "%9s %7s %6s %10s %10s %8s %8s %7s %11s %11s %9s %9s\n",
                "context", "budget", "N_fac", "dense_ms", "fasa_c_ms", "speedup", "ceiling",
                "of_ceil", "dense_MB", "fasa_c_MB", "dense_GBs", "fasa_GBs");
  os << line;
  for (const auto& r : rows) {
    const double dense_gbs = r.dense_bytes / (r.dense_ms * 1e-3) / 1e9;
    const double fasa_gbs = r.fasa_bytes / (r.fasa_ms * 1e-3) / 1e9;
    std::snprintf(line, sizeof line,
                  "%9lld %7s %6lld %10.3f %10.3f %7.2fx %7.2fx %6.0f%% %11.2f %11.2f %9.2f %9.2f\n",
                  static_cast<long long>(r.context), r.budget.c_str(),
                  static_cast<long long>(r.n_fac), r.dense_ms, r.fasa_ms, r.speedup, r.ceiling,
                  100.0 * r.speedup / r.ceiling, r.dense_bytes / 1e6, r.fasa_bytes / 1e6, dense_gbs,
                  fasa_gbs);
    os << line;
  }
  if (!rows.empty() && bw.read_gbs > 0) {
    double best = 0;
    for (const auto& r : rows) best = std::max(best, r.dense_bytes / (r.dense_ms * 1e-3) / 1e9);
    std::snprintf(line, sizeof line,
                  "dense reaches up to %.2f GB/s: %.0f%% of the measured read bandwidth "
                  "(%.2f GB/s), %.0f%% of memcpy's (%.2f GB/s, read + write)\n",
                  best, 100 * best / bw.read_gbs, bw.read_gbs, 100 * best / bw.copy_gbs,
                  bw.copy_gbs);
    os << line;
  }
}

void write_csv(const std::string& path, const std::vector<row>& rows, const options& o,
               const bandwidth& bw) {
  std::ofstream f(path);
  if (!f) throw std::runtime_error("cannot write --csv file '" + path + "'");
  f << "backend,threads,granularity,heads,kv_heads,head_dim,n_tip,context,t_first,t_last,budget,"
       "n_fac,dense_ms,"
       "fasa_c_ms,speedup,ceiling,fraction_of_ceiling,dense_bytes,fasa_c_bytes,dense_gbs,"
       "fasa_c_gbs,read_gbs,copy_gbs\n";
  for (const auto& r : rows)
    f << o.backend << ',' << team_size(o.threads) << ',' << o.granularity << ',' << o.heads << ','
      << o.kv_heads << ',' << o.head_dim << ',' << o.n_tip << ',' << r.context << ',' << r.t_first
      << ',' << r.t_last << ',' << r.budget << ',' << r.n_fac << ',' << r.dense_ms << ','
      << r.fasa_ms << ',' << r.speedup << ',' << r.ceiling << ',' << r.speedup / r.ceiling << ','
      << r.dense_bytes << ',' << r.fasa_bytes << ',' << r.dense_bytes / (r.dense_ms * 1e-3) / 1e9
      << ',' << r.fasa_bytes / (r.fasa_ms * 1e-3) / 1e9 << ',' << bw.read_gbs << ',' << bw.copy_gbs
      << '\n';
}

}  // namespace

namespace fasa::tools {
// The flags only --backend cuda reads (the rest are shared with the CPU backends).
struct cuda_options_cli {
  std::vector<int> batches = {1, 8, 32};
  std::string dtype = "bf16";
  std::string dump_dir;
  double max_gib = 100;
  bool offload = false;
  bool offload_huge_pages = false;
  std::vector<double> offload_miss = {1.0, 0.25};
  std::vector<std::string> offload_fetch = {"zero_copy"};
  double max_host_gib = 64;
  bool capacity = false;
  int layers = 32;
  double weights_gib = 15.0;
  bool whole_step = true;
  bool bus_probe = false;
  int sort_selection = 1;  // splits.sort_selection as 0/1 (CLI11 reads a bool option as a flag)
  fasa::cuda::split_options splits;
};
}  // namespace fasa::tools

namespace {

int run_cuda(const options& o, const fasa::tools::cuda_options_cli& c, bool budgets_given) {
#if FASA_BENCH_HAS_CUDA
  fasa::tools::cuda_bench_options g;
  g.contexts = o.contexts;
  if (budgets_given) {
    g.budgets.clear();
    for (double b : o.budgets) {
      if (b < 1 || b != std::floor(b)) {
        std::cerr << "fasa-bench: --backend cuda takes token budgets (integers >= 1), got " << b
                  << '\n';
        return 2;
      }
      g.budgets.push_back(static_cast<std::int64_t>(b));
    }
  }
  g.granularities.clear();
  std::stringstream list(o.granularity);
  for (std::string item; std::getline(list, item, ',');) g.granularities.push_back(item);
  g.n_tip = o.n_tip;
  g.heads = o.heads;
  g.kv_heads = o.kv_heads;
  g.head_dim = o.head_dim;
  g.reps = o.reps;
  g.warmup = o.warmup;
  g.distinct_group_fcs = o.distinct_group_fcs;
  g.seed = static_cast<std::uint32_t>(o.seed);
  g.csv = o.csv;
  g.batches = c.batches;
  g.dtype = c.dtype;
  g.dump_dir = c.dump_dir;
  g.max_gib = c.max_gib;
  g.offload = c.offload;
  g.offload_huge_pages = c.offload_huge_pages;
  g.offload_miss = c.offload_miss;
  g.offload_fetch = c.offload_fetch;
  g.capacity = c.capacity;
  g.layers = c.layers;
  g.weights_gib = c.weights_gib;
  g.whole_step = c.whole_step;
  g.bus_probe = c.bus_probe;
  g.max_host_gib = c.max_host_gib;
  g.splits = c.splits;
  g.splits.sort_selection = c.sort_selection != 0;
  try {
    return fasa::tools::run_cuda_bench(g);
  } catch (const std::exception& e) {
    std::cerr << "fasa-bench: " << e.what() << '\n';
    return 1;
  }
#else
  (void)o, (void)c, (void)budgets_given;
  std::cerr << "fasa-bench: this build has no CUDA backend (CMake found no nvcc); " << kCudaAbout
            << " needs a build with FASA_ENABLE_CUDA and a CUDA device\n";
  return 2;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  CLI::App app{
      "fasa-bench: decode-attention time of dense attention vs FASA-C (TIP + FAC) on one "
      "backend.\nFor each context length it fills a dense cache and a FASA-C cache (dominant-dim "
      "slab,\nrandom dominant FCs) with the same random tokens through SparseAttention::append, "
      "then\ntimes single decode steps of both, interleaved, and reports the median of each, "
      "their\nratio, the bytes each step reads, and the cost-model ceiling 1/(N_tip/d + "
      "N_fac/t)\n(FASA Eq. 8). Memory: two caches of 2*kv_heads*context*head_dim*4 bytes each at "
      "a time.\n--backend cuda runs the GPU sweep instead (tools/cuda/bench_cuda.cu): batches of "
      "bf16/fp16\nsequences, CUDA-graph replays with the L2 flushed, bandwidth against the "
      "measured copy\nbandwidth, a TIP/top-k/FAC breakdown; see benchmarks/cuda/run.sh."};
  app.add_option("--backend", o.backend, "Backend to time; known: " + known_backends())
      ->capture_default_str();
  app.add_option("--contexts", o.contexts,
                 "Context lengths in tokens (the cache size at the first timed step)")
      ->capture_default_str()
      ->delimiter(',')
      ->check(fasa::tools::whole_at_least(1, "a context holds at least 1 token", "TOKENS>=1"));
  app.add_option("--budgets", o.budgets,
                 "FASA-C token budgets N_fac: an integer is a token count, a value in (0,1) a "
                 "fraction of the context")
      ->capture_default_str()
      ->delimiter(',')
      ->check(fasa::tools::budget_check());
  app.add_option("--n-tip", o.n_tip, "Dominant FCs per selection unit (N_tip; 2*N_tip dims)")
      ->capture_default_str()
      ->check(fasa::tools::whole_in(1, 1 << 16));
  app.add_option("--heads", o.heads, "Query heads")
      ->capture_default_str()
      ->check(fasa::tools::whole_in(1, 4096));
  app.add_option("--kv-heads", o.kv_heads, "KV heads (GQA: heads must be a multiple)")
      ->capture_default_str()
      ->check(fasa::tools::whole_in(1, 4096));
  app.add_option("--head-dim", o.head_dim, "Dims per head (d)")
      ->capture_default_str()
      ->check(fasa::tools::whole_in(2, 4096));
  app.add_option("--reps", o.reps, "Timed decode steps per case (the median is reported)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_option("--warmup", o.warmup, "Untimed decode steps before the timed ones")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  app.add_option("--threads", o.threads,
                 "Threads of the eigen backend and of the bandwidth probe; 0: OpenMP's default "
                 "(the reference backend is single-threaded)")
      ->capture_default_str()
      ->check(CLI::Range(0, 4096));
  app.add_option("--granularity", o.granularity,
                 "Selection unit under GQA: kv_head (one TIP score and token set per KV head, "
                 "the group's queries summed) or query_head (the paper's per-head selection); "
                 "--backend cuda takes a comma list and times each")
      ->capture_default_str();
  app.add_flag("--distinct-group-fcs", o.distinct_group_fcs,
               "With --granularity query_head: draw each query head's dominant FCs "
               "independently (the slab becomes the union over the group) instead of sharing "
               "the KV head's");
  app.add_option("--seed", o.seed, "Seed of the random cache contents, queries and FC sets")
      ->capture_default_str()
      ->check(fasa::tools::seed_check());
  app.add_option("--csv", o.csv, "Also write the rows to this CSV file");
  fasa::tools::cuda_options_cli cuda_only;
  app.add_option("--batches", cuda_only.batches,
                 "--backend cuda: batch sizes (sequences decoded together)")
      ->capture_default_str()
      ->delimiter(',')
      ->check(fasa::tools::whole_at_least(1, "a batch holds at least 1 sequence", "SEQUENCES>=1"));
  app.add_option("--dtype", cuda_only.dtype, "--backend cuda: cache element type, bf16 or fp16")
      ->capture_default_str();
  app.add_option("--dump-dir", cuda_only.dump_dir,
                 "--backend cuda: write each case's outputs and dominant dims here for "
                 "benchmarks/cuda/peers.py (PyTorch peers on the same tensors)");
  app.add_option("--max-gib", cuda_only.max_gib,
                 "--backend cuda: skip cases whose caches need more device memory than this")
      ->capture_default_str()
      ->check(CLI::Range(1e-3, 1e6));
  app.add_flag("--offload", cuda_only.offload,
               "--backend cuda: also time FASA-M (the slab on the GPU, the other key dims and "
               "the values in pinned host memory, the kept rows fetched over the bus each step) "
               "in the same run and rows; prints the measured host-to-device bandwidth and each "
               "case's bus floor");
  app.add_flag("--offload-huge-pages", cuda_only.offload_huge_pages,
               "--backend cuda --offload: FASA-M's far tier in 2 MiB transparent huge pages "
               "pinned with cudaHostRegister instead of cudaHostAlloc");
  app.add_option("--offload-miss", cuda_only.offload_miss,
                 "--backend cuda --offload: shares of FASA-M's row pool emptied before each "
                 "replayed step (1: every kept row crosses the bus, as after a prefill; SmolLM2's "
                 "decoding misses 0.15-0.27 of a step's rows, docs/results.md): a FASA-M row per "
                 "share, each with the rows it fetched")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--offload-fetch", cuda_only.offload_fetch,
                 "--backend cuda --offload: how FASA-M's missing rows reach the GPU, rows of each "
                 "in the same run: zero_copy (a kernel reads them from mapped host memory), "
                 "host_gather (CPU threads gather them into a compact pinned buffer that a kernel "
                 "reads in one sweep)")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::IsMember({"zero_copy", "host_gather"}));
  app.add_flag("--capacity", cuda_only.capacity,
               "--backend cuda: instead of the step sweep, per context the largest batch whose "
               "KV caches for --layers layers fit the GPU beside --weights-gib with dense, FASA-C "
               "and FASA-M (the first --budgets value; FASA-M with the last --offload-miss "
               "share), one layer's step timed at that batch and the tokens/s it implies");
  app.add_option("--layers", cuda_only.layers, "--backend cuda --capacity: attention layers")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_flag("--bus-probe", cuda_only.bus_probe,
               "--backend cuda: instead of the sweeps, the rate at which a kernel reads scattered "
               "rows of pinned host memory (FASA-M's fetch) against the footprint they are drawn "
               "from (up to --max-host-gib) and the row size");
  app.add_flag("!--no-whole-step", cuda_only.whole_step,
               "--backend cuda --capacity: skip the whole step (all --layers layers, each its own "
               "decoder, replayed as one graph at the largest batch where they all fit)");
  app.add_option("--weights-gib", cuda_only.weights_gib,
                 "--backend cuda --capacity: GPU memory the model's weights take (Llama-3.1-8B "
                 "in bf16: 15 GiB)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--max-host-gib", cuda_only.max_host_gib,
                 "--backend cuda --offload: skip FASA-M where its far tier needs more pinned host "
                 "memory than this")
      ->capture_default_str()
      ->check(CLI::Range(1e-3, 1e6));
  app.add_option("--split-waves", cuda_only.splits.waves,
                 "--backend cuda: attention blocks launched, in multiples of the blocks the GPU "
                 "holds at once (flash-decoding split count)")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 1000.0));
  app.add_option("--split-gather-waves", cuda_only.splits.gather_waves,
                 "--backend cuda: the same for FASA-C's attention over the selected rows")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 1000.0));
  app.add_option("--split-min-chunk", cuda_only.splits.min_chunk,
                 "--backend cuda: tokens per attention split at least")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 30));
  app.add_option("--split-max", cuda_only.splits.max_splits,
                 "--backend cuda: attention splits per unit at most (the merge walks them)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--split-tip-waves", cuda_only.splits.tip_waves,
                 "--backend cuda: TIP blocks launched, in multiples of the blocks the GPU holds "
                 "at once (each strides over its share of the cached rows)")
      ->capture_default_str()
      ->check(CLI::Range(1e-6, 1000.0));
  app.add_option("--split-tip-stages", cuda_only.splits.tip_stages,
                 "--backend cuda: TIP's loads: 0 into registers, 3 through a cp.async ring of "
                 "3 passes in shared memory, -1 the ring under query_head granularity only")
      ->capture_default_str()
      ->check(fasa::tools::whole_in(-1, 3))
      ->check(CLI::IsMember({-1, 0, 3}));
  app.add_option("--split-tip-bulk", cuda_only.splits.tip_bulk,
                 "--backend cuda: TIP's loads as bulk copies (sm_90 TMA) of 16 KB tiles of rows "
                 "through a ring of this many tiles (2-4) where the scored rows are contiguous "
                 "(the FASA-C slab); 0: off; -1: 3 tiles under query_head granularity only")
      ->capture_default_str()
      ->check(fasa::tools::whole_in(-1, 4))
      ->check(CLI::IsMember({-1, 0, 2, 3, 4}));
  app.add_option("--split-pdl", cuda_only.splits.pdl,
                 "--backend cuda: programmatic dependent launch (sm_90) between the kernels of a "
                 "step, each launched while the one before it still runs: 1 on, 0 off, -1 on "
                 "at batch 1 only")
      ->capture_default_str()
      ->check(fasa::tools::whole_in(-1, 1))
      ->check(CLI::IsMember({-1, 0, 1}));
  app.add_option("--split-select-cluster", cuda_only.splits.select_cluster,
                 "--backend cuda: TIP and the top-k as one kernel of thread block clusters of "
                 "this many blocks (2, 4, 8, 16) per (sequence, KV head), sm_90; 0: three "
                 "kernels (TIP, filter, finish); -1: clusters sized to fill the GPU once")
      ->capture_default_str()
      ->check(fasa::tools::whole_in(-1, 16))
      ->check(CLI::IsMember({-1, 0, 2, 4, 8, 16}));
  app.add_option("--split-select-lead-from", cuda_only.splits.select_lead_from,
                 "--backend cuda: in the cluster kernel, the cluster size (2, 4, 8, 16) from "
                 "which block 0 alone finds each radix pass's bin and sends it to the other "
                 "blocks (one more barrier) instead of every block copying its counts; 0: never")
      ->capture_default_str()
      ->check(fasa::tools::whole_in(0, 16))
      ->check(CLI::IsMember({0, 2, 4, 8, 16}));
  app.add_option("--split-sort-selection", cuda_only.sort_selection,
                 "--backend cuda: 1 sorts each unit's kept tokens after the top-k (outputs repeat "
                 "bit for bit, FASA-M's equal FASA-C's), 0 leaves the top-k's order")
      ->capture_default_str()
      ->check(CLI::IsMember({0, 1}));
  app.add_option("--bandwidth-mib", o.bandwidth_mib,
                 "Buffer size of the memory-bandwidth probe in MiB (0 skips it)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 65536.0));
  CLI11_PARSE(app, argc, argv);

  if (o.backend == "cuda") return run_cuda(o, cuda_only, app.count("--budgets") > 0);
  // The CUDA sweep's own flags (their help begins with "--backend cuda:") are refused with
  // another backend instead of being ignored.
  for (const CLI::Option* opt : app.get_options())
    if (opt->count() > 0 && opt->get_description().rfind("--backend cuda:", 0) == 0) {
      std::cerr << "fasa-bench: " << opt->get_name()
                << " applies to --backend cuda only (this run: " << o.backend << ")\n";
      return 2;
    }
  const backend_entry* backend = find_backend(o.backend);
  if (!backend) {
    std::cerr << "fasa-bench: unknown backend '" << o.backend << "'; known: " << known_backends()
              << '\n';
    return 2;
  }
  try {
    validate(o);
  } catch (const CLI::ValidationError& e) {
    std::cerr << "fasa-bench: " << e.what() << '\n';
    return 2;
  } catch (const fasa::error& e) {
    std::cerr << "fasa-bench: " << e.what() << '\n';
    return 2;
  }

  try {
    const std::time_t now = std::time(nullptr);
    char date[64];
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", std::localtime(&now));
    std::cout << "fasa-bench " << FASA_VERSION_MAJOR << '.' << FASA_VERSION_MINOR << '.'
              << FASA_VERSION_PATCH << " | " << date << "\nbackend " << backend->name << " ("
              << backend->about << "), threads " << team_size(o.threads) << ", SIMD "
              << Eigen::SimdInstructionSetsInUse() << "\nmachine: " << cpu_model() << ", "
              << team_size(0) << " hardware threads\nshape: " << o.heads << " query heads, "
              << o.kv_heads << " KV heads, d = " << o.head_dim << ", N_tip = " << o.n_tip
              << ", granularity " << o.granularity
              << ", fp32 cache\nload average at start: " << load_average() << '\n';
    bandwidth bw;
    if (o.bandwidth_mib > 0) {
      bw = measure_bandwidth(o.bandwidth_mib, o.threads);
      std::cout << "memory bandwidth (" << o.bandwidth_mib << " MiB, " << team_size(o.threads)
                << " threads): memcpy " << bw.copy_gbs << " GB/s (read + write), read "
                << bw.read_gbs << " GB/s\n";
    }
    std::cout << "RoPE of one step's queries and key, inside both timings: " << rope_us_per_step(o)
              << " us\n"
              << std::flush;
    const auto rows = backend->run(o, std::cerr);
    std::cout << '\n';
    print_table(rows, bw, std::cout);
    std::cout << "load average at end: " << load_average() << '\n';
    if (!o.csv.empty()) write_csv(o.csv, rows, o, bw);
  } catch (const std::exception& e) {
    std::cerr << "fasa-bench: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
