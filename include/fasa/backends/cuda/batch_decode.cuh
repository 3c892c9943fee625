// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// batch_decoder<Elem, Selector, Storage>: one attention layer's decode step on the GPU for a
// batch of sequences of different lengths, with the KV cache resident in device memory (bf16,
// fp16 or fp32 elements, fp32 accumulation) in any layout the kernels stream (contiguous,
// split_dominant). The selector's and the storage's math are the core policies themselves,
// passed into the kernels by value with their tables copied to the device.
//
// One decode step (decode()):
//   1. prepare_queries: attention queries in storage order; each unit's scoring query (done
//      by the cluster kernel of steps 2-3 itself where that runs);
//   2. tip_scores (selectors other than dense): a score per cached token and unit (FASA Eq. 6)
//      and the top-k's first radix digit, whose bin of the k-th best the last block finds;
//   3. topk_filter + topk_finish: the unit's keep(n) best tokens (FASA Eq. 7); steps 2-3 run
//      as one kernel of thread block clusters (tip_select_cluster) where split_options::
//      select_cluster asks for it and the GPU and the rows allow;
//   4. attend_split_mma (units of several query heads: tensor cores) or attend_split (one query
//      head per unit), then merge_splits: exact attention over the kept rows, gathered from the
//      cache, split over the token range (FASA Eq. 8; with one split per unit the attention
//      kernel writes the output and no merge runs); dense runs step 4 alone over every token.
// FASA-M (St = storage::split_offload): the cache's near tier (the slab) is device memory, its
// far tier (the rest of the keys, the values) pinned host memory mapped into the GPU; after step
// 3, plan_rows looks each KV head's kept tokens up in a device pool of recently fetched rows,
// fetch_rows copies the misses in (their far parts over the bus), and step 4 runs FASA-C's
// gathering attention kernels on the pool: the same rows, the same arithmetic, so the output
// equals FASA-C's (kernels/offload.cuh).
// No memset: the histograms and counters are zeroed once and left at zero by their last user.
// Every step is a kernel launch on the given stream with no host synchronisation, so a step can
// be captured in a CUDA graph (see benchmarks/cuda/).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <thread>
#include <type_traits>
#include <vector>

#include "fasa/backends/cuda/common.cuh"
#include "fasa/backends/cuda/host_gather.hpp"
#include "fasa/backends/cuda/kernels/attend_mma.cuh"
#include "fasa/backends/cuda/kernels/attend_split.cuh"
#include "fasa/backends/cuda/kernels/offload.cuh"
#include "fasa/backends/cuda/kernels/prepare.cuh"
#include "fasa/backends/cuda/kernels/tip_scores.cuh"
#include "fasa/backends/cuda/kernels/tip_select.cuh"
#include "fasa/backends/cuda/kernels/topk_radix.cuh"
#include "fasa/backends/cuda/split_options.hpp"
#include "fasa/policies/concepts.hpp"
#include "fasa/policies/selector/dense.hpp"
#include "fasa/policies/selector/fasa_tip.hpp"
#include "fasa/policies/selector/oracle_topk.hpp"

namespace fasa::cuda {

// The selector with its tables in device memory (kept alive by `tables`).
inline selector::dense device_copy(const selector::dense& s, device_buffer<std::int32_t>&) {
  return s;
}
inline selector::oracle_topk device_copy(const selector::oracle_topk& s,
                                         device_buffer<std::int32_t>&) {
  return s;
}
inline selector::fasa_tip device_copy(const selector::fasa_tip& s,
                                      device_buffer<std::int32_t>& tables) {
  tables.upload(std::vector<std::int32_t>(
      s.dims, s.dims + static_cast<std::int64_t>(s.num_units) * 2 * s.n_tip));
  selector::fasa_tip d = s;
  d.dims = tables.data();
  return d;
}

// Another decoder's cache, for a decoder that only reads it: sequence b starts at
// data + b * seq_stride; seq_stride 0 has every sequence of the batch read the same cache, each
// to its own length (the queries of a causal prefill, say). A FASA-M decoder's (split_offload)
// is two tiers: `data` the near one in device memory, `far` (a device-usable pointer into mapped
// pinned host memory, as pinned_buffer::device_data gives) the far one, sequence b's at far +
// b * far_stride; the owner of the tiers must tell the reader's row pool what it rewrites
// (batch_decoder::forget_tokens).
template <class Elem>
struct shared_cache {
  Elem* data = nullptr;
  std::int64_t seq_stride = 0;
  Elem* far = nullptr;
  std::int64_t far_stride = 0;
};

// FASA-M's host-side write (storage::split_offload): tokens t0 .. t0+count-1 of one sequence
// converted to Elem; the slab rows go to the near tier `near` on the device (one copy per KV
// head: its rows are contiguous), the rest and the values straight into the far tier `far` in
// pinned host memory. k_rot, v: [count, num_kv_heads, head_dim] fp32, keys rotated.
template <class Elem>
void write_offload_tokens(const storage::split_offload& st, Elem* near, Elem* far, std::int64_t t0,
                          std::int64_t count, std::span<const float> k_rot,
                          std::span<const float> v) {
  FASA_CUDA_CHECK(cudaDeviceSynchronize());  // no kernel may still read the far tier
  const int d = st.head_dim(), heads = st.num_kv_heads(), sw = st.slab_width;
  std::vector<Elem> slab(static_cast<std::size_t>(heads * count * sw));
  for (std::int64_t i = 0; i < count; ++i)
    for (int h = 0; h < heads; ++h)
      for (int dim = 0; dim < d; ++dim) {
        const std::size_t in = static_cast<std::size_t>((i * heads + h) * d + dim);
        const std::int64_t t = t0 + i;
        const int j = st.slot_of(h, dim);
        const Elem key = elem_traits<Elem>::from_float(k_rot[in]);
        if (j < sw)
          slab[static_cast<std::size_t>((h * count + i) * sw + j)] = key;
        else
          far[st.far_offset(st.key_index(h, t, dim))] = key;
        far[st.far_offset(st.value_index(h, t, dim))] = elem_traits<Elem>::from_float(v[in]);
      }
  for (int h = 0; h < heads; ++h)
    FASA_CUDA_CHECK(cudaMemcpy(
        near + st.slab_row(h, t0), slab.data() + static_cast<std::size_t>(h * count * sw),
        static_cast<std::size_t>(count * sw) * sizeof(Elem), cudaMemcpyHostToDevice));
}

// Optional events recorded between the stages of decode(), for benchmarks (`fetched`: after
// FASA-M's fetch of the kept rows, where it is set).
struct stage_events {
  cudaEvent_t start = nullptr, prepared = nullptr, scored = nullptr, filtered = nullptr,
              selected = nullptr, done = nullptr, fetched = nullptr;
};

// How a FASA-M step brings its missing rows' far parts to the GPU.
enum class offload_fetch {
  // fetch_rows reads them straight from the mapped far tier (scattered zero-copy reads).
  zero_copy,
  // The host gathers them into a compact pinned staging buffer in a host node of the step
  // (host_gather.hpp, several threads), then fetch_staged reads that buffer in one sequential
  // sweep: the scattered reads move to the CPU, the bus carries one contiguous run.
  host_gather,
};

inline const char* name_of(offload_fetch f) {
  return f == offload_fetch::zero_copy ? "zero_copy" : "host_gather";
}

// Worker threads (besides the calling one) of a host_gather decoder that brings none: half
// the hardware threads, 1 to 8.
inline int default_gather_threads() {
  const int hw = static_cast<int>(std::thread::hardware_concurrency());
  return std::clamp(hw / 2, 1, 8);
}

// How a FASA-M decoder allocates its far tier (see pinned_buffer::allocate) and fetches rows.
struct offload_options {
  bool huge_pages = false;
  // The row pool's per-step hash table in shared memory where it fits (else, or when false, in
  // device memory: tests run both).
  bool table_in_shared = true;
  offload_fetch fetch = offload_fetch::zero_copy;
  // host_gather: the threads that gather, shared by the decoders that name the same team (a
  // model's layers, say); null: the decoder makes its own of default_gather_threads().
  std::shared_ptr<gather_team> team;
};

template <class Elem, class Sel, class St>
class batch_decoder {
  static_assert(TokenSelector<Sel> && Sel::kind != score_kind::custom,
                "batch_decoder: the CUDA backend runs selectors whose score is a dot product "
                "(kind none, dot_all_dims or dot_dim_subset: dense, oracle_topk, fasa_tip); a "
                "selector with a custom score() needs a kernel of its own");
  static_assert(KVStorage<St> && StreamedLayout<St>,
                "batch_decoder: the CUDA backend streams the layouts that fasa::cuda::layout<> "
                "describes (storage::contiguous, storage::split_dominant)");

  // FASA-M: the far tier in host memory (see the file comment).
  static constexpr bool offloaded = std::is_same_v<St, storage::split_offload>;
  // The layout the attention kernels read: FASA-M's working buffer is laid out as FASA-C's
  // cache, so both run the same kernel instantiations and split plans.
  using attend_layout = std::conditional_t<offloaded, storage::split_dominant, St>;
  static_assert(!offloaded || Sel::kind == score_kind::dot_dim_subset,
                "batch_decoder: FASA-M's layout (storage::split_offload) keeps only the dominant "
                "slab on the GPU, so its selector must score on slab dims (fasa_tip); dense and "
                "oracle_topk read every dim: use storage::split_dominant or contiguous");

 public:
  using elem_type = Elem;
  static constexpr int vec = vec_elems<Elem>;

  // sel and st hold host tables (a dominant_plan's, say); they are copied to the device. The
  // decoder owns a cache of `batch` sequences unless `shared` names another decoder's (laid out
  // by the same storage), which it then reads and never writes.
  batch_decoder(const attention_shape& shape, int batch, const Sel& sel, const St& st,
                shared_cache<Elem> shared = {}, offload_options offload = {})
      : shape_(shape), batch_(batch), sel_(sel), st_(st), fetch_(offload.fetch) {
    shape.validate();
    sel.validate(shape);
    st.validate(shape);
    FASA_CHECK(batch >= 1, "batch_decoder: batch must be >= 1, got ", batch);
    FASA_CHECK(shape.head_dim == 64 || shape.head_dim == 128,
               "batch_decoder: the CUDA kernels are built for head_dim 64 and 128, got ",
               shape.head_dim);
    FASA_CHECK(shape.group_size() <= 8,
               "batch_decoder: GQA groups of up to 8 query heads per KV "
               "head are supported, got ",
               shape.group_size());
    FASA_CHECK(layout<St>::first_width(st) % vec == 0, "batch_decoder: the key slab is ",
               layout<St>::first_width(st), " dims wide; the ", elem_traits<Elem>::name,
               " kernels need a multiple of ", vec,
               " (build the dominant_plan with slab_multiple = ", vec, ")");
    FASA_CHECK(shape.capacity <= std::int64_t{1} << 30, "batch_decoder: capacity ", shape.capacity,
               " is beyond the 2^30 tokens the int32 indices allow");
    int device = 0;
    FASA_CUDA_CHECK(cudaGetDevice(&device));
    FASA_CUDA_CHECK(cudaDeviceGetAttribute(&sms_, cudaDevAttrMultiProcessorCount, device));
    sel_dev_ = device_copy(sel, sel_tables_);
    st_dev_ = layout<St>::device_copy(st, st_tables_);
    if (shared.data != nullptr) {
      FASA_CHECK(!offloaded || shared.far != nullptr,
                 "batch_decoder: a FASA-M decoder reading another's cache needs both tiers "
                 "(shared_cache::far)");
      FASA_CHECK(shared.seq_stride >= 0 && shared.far_stride >= 0,
                 "batch_decoder: a shared cache's strides must be >= 0");
      cache_ptr_ = shared.data;
      seq_stride_ = shared.seq_stride;
      far_ptr_ = shared.far;
      far_stride_ = shared.far_stride;
    } else if constexpr (offloaded) {
      // The near tier on the device, the far tier pinned (zeroed like the device cache).
      far_stride_ = st.far_elements();
      far_.allocate(static_cast<std::size_t>(batch) * static_cast<std::size_t>(far_stride_),
                    "batch_decoder (FASA-M): the far tier (key dims outside the slab and all "
                    "values) of every sequence",
                    offload.huge_pages);
      std::memset(far_.data(), 0, far_.bytes());
      far_ptr_ = far_.device_data();
      cache_.resize(static_cast<std::size_t>(batch) * static_cast<std::size_t>(st.near_elements()));
      FASA_CUDA_CHECK(cudaMemset(cache_.data(), 0, cache_.bytes()));
      cache_ptr_ = cache_.data();
      seq_stride_ = st.near_elements();
    } else {
      cache_.resize(static_cast<std::size_t>(batch) * static_cast<std::size_t>(seq_elements()));
      FASA_CUDA_CHECK(cudaMemset(cache_.data(), 0, cache_.bytes()));
      cache_ptr_ = cache_.data();
      seq_stride_ = seq_elements();
    }
    lengths_.assign(static_cast<std::size_t>(batch), 0);
    lengths_dev_.resize(static_cast<std::size_t>(batch));
    const auto d = static_cast<std::size_t>(shape.head_dim);
    const auto b = static_cast<std::size_t>(batch);
    q_att_.resize(b * static_cast<std::size_t>(shape.num_q_heads) * d);
    if constexpr (Sel::kind != score_kind::none) {
      units_ = num_selection_units(shape, sel.granularity());
      const auto rows = b * static_cast<std::size_t>(units_);
      const auto cap = static_cast<std::size_t>(shape.capacity);
      kcap_ = sel.keep(shape.capacity);
      q_tip_.resize(rows * d);
      // TIP's finished blocks per (sequence, KV head): zero between steps (its last block resets)
      done_.resize(b * static_cast<std::size_t>(shape.num_kv_heads));
      FASA_CUDA_CHECK(cudaMemset(done_.data(), 0, done_.bytes()));
      score_stride_ = (shape.capacity + 3) / 4 * 4;  // 16-byte aligned rows
      scores_.resize(rows * static_cast<std::size_t>(score_stride_));
      cand_.resize(rows * 2 * cap);
      idx_.resize(rows * static_cast<std::size_t>(kcap_));
      hist_.resize(rows * (kernels::topk_hist_bins + kernels::topk_count_fields));
      FASA_CUDA_CHECK(cudaMemset(hist_.data(), 0, hist_.bytes()));  // TIP keeps it zero after
      // Which storage positions each unit scores (the selector's score_dims, or every dim).
      std::vector<float> mask(static_cast<std::size_t>(units_) * d, 0.0f);
      for (int u = 0; u < units_; ++u) {
        const int kv =
            sel.granularity() == selection_granularity::query_head ? shape.kv_head_of(u) : u;
        for (int j = 0; j < shape.head_dim; ++j) {
          const int dim = layout<St>::dim_at(st, kv, j);
          bool scored = true;
          if constexpr (Sel::kind == score_kind::dot_dim_subset) {
            scored = false;
            for (std::int32_t sd : sel.score_dims(u)) scored = scored || sd == dim;
          }
          mask[static_cast<std::size_t>(u) * d + static_cast<std::size_t>(j)] =
              scored ? 1.0f : 0.0f;
        }
      }
      score_mask_.upload(mask);
      // Score the slab alone when every scored dim is in it, else whole rows.
      score_width_ = shape.head_dim;
      if constexpr (Sel::kind == score_kind::dot_dim_subset) {
        bool in_first = true;
        for (int u = 0; u < units_; ++u) {
          const int kv =
              sel.granularity() == selection_granularity::query_head ? shape.kv_head_of(u) : u;
          for (std::int32_t dim : sel.score_dims(u)) {
            bool found = false;
            for (int j = 0; j < layout<St>::first_width(st); ++j)
              found = found || layout<St>::dim_at(st, kv, j) == dim;
            in_first = in_first && found;
          }
        }
        if (in_first) score_width_ = layout<St>::first_width(st);
      }
      if constexpr (offloaded) {
        FASA_CHECK(score_width_ == layout<St>::first_width(st),
                   "batch_decoder (FASA-M): the selector scores dims outside the slab, which "
                   "lives alone on the GPU; build the selector and the storage from one "
                   "dominant_plan");
        // The row pool: P slots per (sequence, KV head), as many rows as its units keep.
        per_kv_ = sel.granularity() == selection_granularity::query_head ? shape.group_size() : 1;
        pool_ = per_kv_ * kcap_;
        work_st_ = st_dev_;  // the tables are its; only the pool's sizes differ
        work_st_.cap = pool_;
        work_stride_ = work_st_.buffer_elements();
        work_.resize(b * static_cast<std::size_t>(work_stride_));
        const auto pairs = b * static_cast<std::size_t>(shape.num_kv_heads);
        const auto slots = pairs * static_cast<std::size_t>(pool_);
        slot_tok_.resize(slots);
        FASA_CUDA_CHECK(cudaMemset(slot_tok_.data(), 0xff, slot_tok_.bytes()));  // -1: empty
        slot_idx_.resize(rows * static_cast<std::size_t>(kcap_));
        miss_tok_.resize(slots);
        miss_slot_.resize(slots);
        miss_count_.resize(pairs);
        FASA_CUDA_CHECK(cudaMemset(miss_count_.data(), 0, miss_count_.bytes()));
        hsize_ = 1;
        while (hsize_ < 2 * pool_) hsize_ *= 2;
        plan_smem_ = kernels::plan_smem_bytes(hsize_, pool_);
        int smem_max = 0;
        FASA_CUDA_CHECK(
            cudaDeviceGetAttribute(&smem_max, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
        if (!offload.table_in_shared || plan_smem_ + 4096 > smem_max) {  // in device memory
          plan_smem_ = 0;
          hash_.resize(pairs * 2 * static_cast<std::size_t>(hsize_));
          used_.resize(slots);
        } else if (plan_smem_ > 48 * 1024) {
          FASA_CUDA_CHECK(cudaFuncSetAttribute(kernels::plan_rows,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(plan_smem_)));
        }
        if (fetch_ == offload_fetch::host_gather) {
          // The misses in host memory, a staging row per slot, and the gather's host node.
          miss_tok_host_.allocate(slots, "batch_decoder (FASA-M, host gather): the miss lists");
          miss_count_host_.allocate(pairs, "batch_decoder (FASA-M, host gather): the miss counts");
          stage_off_.allocate(pairs + 1, "batch_decoder (FASA-M, host gather): staging offsets");
          gather_ = std::make_unique<gather_job>();
          auto& g = gather_->gather;
          g.st = st;
          stage_.allocate(slots * static_cast<std::size_t>(g.row_elements()),
                          "batch_decoder (FASA-M, host gather): the staging rows");
          g.far = host_pointer(far_ptr_);
          g.far_stride = far_stride_;
          g.batch = batch;
          g.pool = pool_;
          g.tok = miss_tok_host_.data();
          g.count = miss_count_host_.data();
          g.stage = stage_.data();
          g.offsets = stage_off_.data();
          gather_->team = offload.team ? std::move(offload.team)
                                       : std::make_shared<gather_team>(default_gather_threads());
        }
      }
      // Bulk copies need sm_90, each KV head's scored rows back to back (row pitch = the
      // scored width) and 16-byte aligned starts.
      int major = 0;
      FASA_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
      const std::int64_t pitch = layout<St>::first_row(st, 0, 1) - layout<St>::first_row(st, 0, 0);
      const auto aligned = [](std::int64_t elems) { return elems * sizeof(Elem) % 16 == 0; };
      sm90_ = major >= 9;
      tip_bulk_ok_ = major >= 9 && pitch == score_width_ &&
                     layout<St>::first_width(st) >= score_width_ && aligned(seq_stride_) &&
                     aligned(layout<St>::first_row(st, 1, 0)) &&
                     reinterpret_cast<std::uintptr_t>(cache_ptr_) % 16 == 0;
    } else {
      units_ = shape.num_kv_heads;
    }
  }

  const attention_shape& shape() const { return shape_; }
  int batch() const { return batch_; }
  int units() const { return units_; }
  const Sel& selector() const { return sel_; }
  const St& storage() const { return st_; }
  // Elements of one sequence's cache; sequence b starts at cache() + b * seq_elements() (in
  // an owned cache; a shared one has its own stride).
  std::int64_t seq_elements() const { return st_.buffer_elements(); }
  Elem* cache() { return cache_ptr_; }
  bool owns_cache() const { return cache_.data() != nullptr; }
  const St& device_storage() const { return st_dev_; }
  // Storage positions TIP streams per key row (the slab width for FASA-C).
  int score_width() const { return score_width_; }
  std::size_t device_bytes() const {
    return cache_.bytes() + q_att_.bytes() + q_tip_.bytes() + scores_.bytes() + cand_.bytes() +
           idx_.bytes() + part_o_.bytes() + part_lse_.bytes() + hist_.bytes() + done_.bytes() +
           score_mask_.bytes() + work_.bytes() + slot_tok_.bytes() + slot_idx_.bytes() +
           miss_tok_.bytes() + miss_slot_.bytes() + miss_count_.bytes() + hash_.bytes() +
           used_.bytes();
  }
  // Device bytes of the KV cache: the cache (for FASA-M its near tier) and FASA-M's row pool
  // (its rows and the token each slot holds).
  std::size_t kv_device_bytes() const { return cache_.bytes() + work_.bytes() + slot_tok_.bytes(); }
  // Device bytes of the cache the decoder owns (FASA-M: its near tier; 0 when shared).
  std::size_t cache_bytes() const { return cache_.bytes(); }
  // This decoder's cache as another decoder reads it (its shared_cache argument): for FASA-M
  // both tiers, each reader with its own row pool.
  shared_cache<Elem> shared() { return {cache_ptr_, seq_stride_, far_ptr_, far_stride_}; }
  // Pinned host bytes of FASA-M's far tier (0 for the other layouts).
  std::size_t host_bytes() const { return far_.bytes(); }
  // FASA-M: slots of the row pool per (sequence, KV head).
  std::int64_t pool_rows() const { return pool_; }
  // FASA-M: how missing rows reach the GPU.
  offload_fetch fetch() const { return fetch_; }
  // FASA-M: rows the last step copied over the bus, over the batch and its KV heads; each is
  // a whole row's far part, 2 * head_dim - slab_width elements (synchronises).
  std::int64_t fetched_rows() const {
    std::int64_t sum = 0;
    if constexpr (offloaded) {
      FASA_CUDA_CHECK(cudaDeviceSynchronize());
      for (int c : miss_count_.download()) sum += c;
    }
    return sum;
  }
  // FASA-M, for benchmarks: empties about `share` of the pool's slots, the same ones at every
  // call with one seed, so a replayed step (whose selection repeats) fetches that share of its
  // rows again, as a real step would fetch its new tokens. Asynchronous on `stream`; a graph may
  // capture it.
  void forget_pool_share(double share, std::uint32_t seed, cudaStream_t stream = nullptr) {
    if constexpr (offloaded) {
      FASA_CHECK(share >= 0 && share <= 1,
                 "batch_decoder::forget_pool_share: share must be in [0, 1], got ", share);
      const auto below = static_cast<std::uint64_t>(share * 4294967296.0);
      launch_kernel(kernels::forget_share,
                    dim3(static_cast<unsigned>(shape_.num_kv_heads), static_cast<unsigned>(batch_)),
                    256, 0, stream, slot_tok_.data(), pool_, shape_.num_kv_heads, seed, below);
      FASA_CUDA_CHECK_LAUNCH("forget_share");
    }
  }

  // Writes count tokens of sequence b at positions t0 .. t0+count-1 (host fp32, keys rotated).
  // k_rot, v: [count, num_kv_heads, head_dim].
  void write_tokens(int b, std::int64_t t0, std::span<const float> k_rot,
                    std::span<const float> v) {
    const std::int64_t row = std::int64_t{shape_.num_kv_heads} * shape_.head_dim;
    FASA_CHECK(owns_cache(),
               "batch_decoder::write_tokens: this decoder reads another's cache; "
               "write through the decoder that owns it");
    FASA_CHECK(b >= 0 && b < batch_, "batch_decoder::write_tokens: sequence ", b,
               " outside the batch of ", batch_);
    FASA_CHECK(!k_rot.empty() && static_cast<std::int64_t>(k_rot.size()) % row == 0 &&
                   v.size() == k_rot.size(),
               "batch_decoder::write_tokens: k has ", k_rot.size(), " and v ", v.size(),
               " values; both must be the same positive multiple of num_kv_heads*head_dim = ", row);
    const std::int64_t count = static_cast<std::int64_t>(k_rot.size()) / row;
    FASA_CHECK(t0 >= 0 && t0 + count <= shape_.capacity, "batch_decoder::write_tokens: tokens ", t0,
               " .. ", t0 + count - 1, " do not fit the capacity ", shape_.capacity);
    if constexpr (offloaded) {
      write_tiers(b, t0, count, k_rot, v);
      return;
    }
    device_buffer<float> k_dev, v_dev;
    k_dev.upload(std::vector<float>(k_rot.begin(), k_rot.end()));
    v_dev.upload(std::vector<float>(v.begin(), v.end()));
    const auto blocks = static_cast<unsigned>(
        std::min<std::int64_t>((static_cast<std::int64_t>(k_rot.size()) + 255) / 256, 4096));
    kernels::write_tokens<Elem><<<blocks, 256>>>(st_dev_, cache_.data(), seq_elements(), b, t0,
                                                 count, k_dev.data(), v_dev.data());
    FASA_CUDA_CHECK_LAUNCH("write_tokens");
    FASA_CUDA_CHECK(cudaDeviceSynchronize());
  }

  // Sets every sequence's length (tokens in its cache, the one being decoded included).
  void set_lengths(std::span<const int> lengths) {
    FASA_CHECK(static_cast<int>(lengths.size()) == batch_, "batch_decoder::set_lengths: got ",
               lengths.size(), " lengths for a batch of ", batch_);
    for (std::size_t b = 0; b < lengths.size(); ++b)
      FASA_CHECK(lengths[b] >= 1 && lengths[b] <= shape_.capacity,
                 "batch_decoder::set_lengths: sequence ", b, " has length ", lengths[b],
                 "; it must be in [1, capacity = ", shape_.capacity, "]");
    lengths_.assign(lengths.begin(), lengths.end());
    max_len_ = *std::max_element(lengths_.begin(), lengths_.end());
    FASA_CUDA_CHECK(cudaMemcpy(lengths_dev_.data(), lengths_.data(), lengths_.size() * sizeof(int),
                               cudaMemcpyHostToDevice));
    plan_splits();
  }
  std::span<const int> lengths() const { return lengths_; }

  // Fills tokens [0, length) of every sequence with kernels::hashed_uniform values.
  void fill_hashed(std::uint32_t seed) {
    FASA_CHECK(max_len_ > 0, "batch_decoder::fill_hashed: set_lengths first");
    FASA_CHECK(owns_cache(), "batch_decoder::fill_hashed: this decoder reads another's cache");
    const dim3 grid(static_cast<unsigned>(
                        std::min<std::int64_t>((max_len_ * shape_.head_dim + 255) / 256, 2048)),
                    static_cast<unsigned>(shape_.num_kv_heads), static_cast<unsigned>(batch_));
    const auto fill = [&](auto cache) {
      kernels::fill_hashed<Elem><<<grid, 256>>>(st_dev_, cache, lengths_dev_.data(), batch_, seed);
    };
    if constexpr (offloaded) {
      fill(tiers());
      FASA_CUDA_CHECK(cudaMemset(slot_tok_.data(), 0xff, slot_tok_.bytes()));  // all rewritten
    } else
      fill(kernels::flat_cache<Elem>{cache_.data(), seq_elements()});
    FASA_CUDA_CHECK_LAUNCH("fill_hashed");
    FASA_CUDA_CHECK(cudaDeviceSynchronize());
  }

  // One decode step for every sequence. q: device [batch, num_q_heads, head_dim] fp32,
  // post-RoPE; out: device [batch, num_q_heads, head_dim] fp32. Asynchronous on `stream`.
  void decode(const float* q, float* out, cudaStream_t stream = nullptr,
              const stage_events* ev = nullptr) {
    FASA_CHECK(max_len_ > 0, "batch_decoder::decode: set_lengths first");
    const int d = shape_.head_dim;
    if (ev) FASA_CUDA_CHECK(cudaEventRecord(ev->start, stream));
    const auto att_scale =
        static_cast<float>(1.4426950408889634 / std::sqrt(static_cast<double>(d)));
    const unsigned cluster = static_cast<unsigned>(select_cluster_blocks());
    if (cluster == 0) {  // the cluster kernel prepares its queries itself
      const int prep_blocks = std::max(shape_.num_q_heads, units_);
      launch_kernel(kernels::prepare_queries<St>,
                    dim3(static_cast<unsigned>(prep_blocks), static_cast<unsigned>(batch_)),
                    static_cast<unsigned>(d), 0, stream, st_dev_, shape_, sel_.granularity(),
                    score_mask_.data(), q, q_att_.data(), q_tip_.data(), att_scale);
      FASA_CUDA_CHECK_LAUNCH("prepare_queries");
    }
    if (ev) FASA_CUDA_CHECK(cudaEventRecord(ev->prepared, stream));
    kernels::attend_args a{};
    a.shape = shape_;
    a.q_att = q_att_.data();
    a.lengths = lengths_dev_.data();
    a.chunk = chunk_;
    a.max_splits = max_splits_;
    a.part_o = part_o_.data();
    a.part_lse = part_lse_.data();
    if constexpr (Sel::kind == score_kind::none) {
      a.gather = false;
      a.budget = token_budget::all();
      a.unit_is_query_head = false;
      if (ev) FASA_CUDA_CHECK(cudaEventRecord(ev->scored, stream));
      if (ev) FASA_CUDA_CHECK(cudaEventRecord(ev->filtered, stream));
      if (ev) FASA_CUDA_CHECK(cudaEventRecord(ev->selected, stream));
    } else {
      const selection_granularity g = sel_.granularity();
      kernels::tip_args t{};
      t.shape = shape_;
      t.granularity = g;
      t.q_tip = q_tip_.data();
      t.width = score_width_;
      t.lengths = lengths_dev_.data();
      t.forced = sel_.forced();
      t.scores = scores_.data();
      t.score_stride = score_stride_;
      t.budget = budget_of(sel_);
      t.hist = hist_.data();
      const std::size_t rows = static_cast<std::size_t>(batch_) * static_cast<std::size_t>(units_);
      t.counts = hist_.data() + rows * kernels::topk_hist_bins;
      t.tip_done = done_.data();
      // Lanes per row where the scored width fits the lanes kernels, else one thread per row.
      const int nv = score_width_ / vec;
      const int lpr = lanes_fit(nv) ? nv : 0;
      const std::int64_t per_block = lpr > 0 ? kernels::tip_threads / lpr * 4
                                             : kernels::tip_threads * kernels::tip_rows_per_thread;
      const int per_kv = g == selection_granularity::query_head ? shape_.group_size() : 1;
      kernels::topk_args k{};
      k.scores = scores_.data();
      k.score_stride = score_stride_;
      k.lengths = lengths_dev_.data();
      k.units = units_;
      k.budget = budget_of(sel_);
      k.counts = t.counts;
      k.out = idx_.data();
      k.out_stride = kcap_;
      k.cand = cand_.data();
      k.cand_stride = shape_.capacity;
      if (cluster > 0) {
        const kernels::select_out so{k.counts, k.out, k.out_stride, k.cand, k.cand_stride};
        const kernels::select_queries sq{q, score_mask_.data(), q_att_.data(), att_scale};
        with_select_kernel([&](auto kernel) {
          launch_cluster(kernel, cluster,
                         dim3(cluster, static_cast<unsigned>(shape_.num_kv_heads),
                              static_cast<unsigned>(batch_)),
                         kernels::tip_threads, 0, stream, st_dev_, cache_ptr_, seq_stride_, t, so,
                         sq, static_cast<unsigned>(split_.select_lead_from));
        });
        FASA_CUDA_CHECK_LAUNCH("tip_select_cluster");
        if (ev) FASA_CUDA_CHECK(cudaEventRecord(ev->scored, stream));
        if (ev) FASA_CUDA_CHECK(cudaEventRecord(ev->filtered, stream));
      } else {
        launch_by_count(per_kv, [&](auto umax) {
          with_head_dim([&](auto dim) {
            constexpr int D = decltype(dim)::value, UMAX = decltype(umax)::value;
            const auto launch = [&](auto kernel, int smem) {
              // split_options::tip_waves times the blocks the GPU holds at once, shared by the
              // (sequence, KV head) pairs, never more than the rows need. The kernel is the same
              // at every step, so its occupancy is asked once.
              if (tip_per_sm_ == 0) {
                if (smem > 0)  // a ring in dynamic shared memory
                  FASA_CUDA_CHECK(cudaFuncSetAttribute(
                      kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
                FASA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                    &tip_per_sm_, kernel, kernels::tip_threads, static_cast<std::size_t>(smem)));
              }
              const std::int64_t want = std::max<std::int64_t>(
                  1, static_cast<std::int64_t>(split_.tip_waves * sms_ * std::max(tip_per_sm_, 1)) /
                         (std::int64_t{shape_.num_kv_heads} * batch_));
              const dim3 tip_grid(
                  static_cast<unsigned>(std::min((max_len_ + per_block - 1) / per_block, want)),
                  static_cast<unsigned>(shape_.num_kv_heads), static_cast<unsigned>(batch_));
              launch_kernel(kernel, tip_grid, kernels::tip_threads, static_cast<std::size_t>(smem),
                            stream, st_dev_, cache_ptr_, seq_stride_, t);
            };
            const auto lanes = [&](auto lpr_c) {
              constexpr int L = decltype(lpr_c)::value;
              if (const int tiles = tip_bulk_tiles(); tiles > 0) {
                switch (tiles) {
                  case 2:
                    launch(kernels::tip_scores_bulk<Elem, St, D, UMAX, L, 2>,
                           kernels::tip_ring_bytes(2));
                    break;
                  case 3:
                    launch(kernels::tip_scores_bulk<Elem, St, D, UMAX, L, 3>,
                           kernels::tip_ring_bytes(3));
                    break;
                  default:
                    launch(kernels::tip_scores_bulk<Elem, St, D, UMAX, L, 4>,
                           kernels::tip_ring_bytes(4));
                }
              } else if (split_.tip_stages > 0 || (split_.tip_stages < 0 && UMAX > 1))
                launch(kernels::tip_scores_lanes<Elem, St, D, UMAX, L, 3>,
                       kernels::tip_ring_bytes(3));
              else
                launch(kernels::tip_scores_lanes<Elem, St, D, UMAX, L, 0>, 0);
            };
            if (!with_lanes(lpr, lanes)) launch(kernels::tip_scores<Elem, St, D, UMAX>, 0);
          });
        });
        FASA_CUDA_CHECK_LAUNCH("tip_scores");
        if (ev) FASA_CUDA_CHECK(cudaEventRecord(ev->scored, stream));
        const std::int64_t filter_per_row =
            std::clamp<std::int64_t>(std::int64_t{sms_} * 4 / static_cast<std::int64_t>(rows), 1,
                                     std::max<std::int64_t>(1, (max_len_ + 1023) / 1024));
        launch_kernel(kernels::topk_filter,
                      dim3(static_cast<unsigned>(filter_per_row), static_cast<unsigned>(rows)),
                      kernels::topk_filter_threads, 0, stream, k);
        FASA_CUDA_CHECK_LAUNCH("topk_filter");
        if (ev) FASA_CUDA_CHECK(cudaEventRecord(ev->filtered, stream));
        launch_kernel(kernels::topk_finish, static_cast<unsigned>(rows),
                      kernels::topk_finish_threads, 0, stream, k);
        FASA_CUDA_CHECK_LAUNCH("topk_finish");
      }
      if (split_.sort_selection && kcap_ <= kernels::sort_max_kept) {
        int bits = 1;
        while ((std::int64_t{1} << bits) < max_len_) ++bits;
        const auto sort = [&](auto kernel) {
          launch_kernel(kernel, static_cast<unsigned>(rows), kernels::sort_threads, 0, stream,
                        idx_.data(), kcap_, lengths_dev_.data(), units_, k.budget, bits);
        };
        const std::int64_t items = (kcap_ + kernels::sort_threads - 1) / kernels::sort_threads;
        if (items <= 1)
          sort(kernels::sort_kept<1>);
        else if (items <= 4)
          sort(kernels::sort_kept<4>);
        else if (items <= 16)
          sort(kernels::sort_kept<16>);
        else
          sort(kernels::sort_kept<32>);
        FASA_CUDA_CHECK_LAUNCH("sort_kept");
      }
      if (ev) FASA_CUDA_CHECK(cudaEventRecord(ev->selected, stream));
      a.gather = true;
      a.idx = idx_.data();
      a.idx_stride = kcap_;
      a.budget = k.budget;
      a.unit_is_query_head = g == selection_granularity::query_head;
    }
    // One split per unit: the attention kernel writes the output itself, no merge.
    const bool direct = max_splits_ == 1;
    a.out = direct ? out : nullptr;
    if constexpr (offloaded) {
      fetch_and_attend(a, out, direct, stream, ev);
    } else {
      attend(st_dev_, cache_ptr_, seq_stride_, a, out, direct, stream, ev);
    }
  }

  // Launches one of a step's kernels on `stream`, with programmatic dependent launch where
  // split_options::pdl asks for it (every step kernel begins with grid_dependency_sync, so the
  // kernel may be launched before its predecessor ends but does nothing until it has).
  template <class... P, class... A>
  void launch_kernel(void (*kernel)(P...), dim3 grid, dim3 block, std::size_t smem,
                     cudaStream_t stream, A... args) const {
    launch_cluster(kernel, 1, grid, block, smem, stream, args...);
  }
  // The same in clusters of `cluster` blocks along x (1: no cluster).
  template <class... P, class... A>
  void launch_cluster(void (*kernel)(P...), unsigned cluster, dim3 grid, dim3 block,
                      std::size_t smem, cudaStream_t stream, A... args) const {
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cudaLaunchAttribute attr[2]{};
    unsigned count = 0;
    if (pdl_active()) {
      attr[count].id = cudaLaunchAttributeProgrammaticStreamSerialization;
      attr[count++].val.programmaticStreamSerializationAllowed = 1;
    }
    if (cluster > 1) {
      attr[count].id = cudaLaunchAttributeClusterDimension;
      attr[count].val.clusterDim.x = cluster;
      attr[count].val.clusterDim.y = 1;
      attr[count++].val.clusterDim.z = 1;
    }
    cfg.attrs = attr;
    cfg.numAttrs = count;
    FASA_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, static_cast<P>(args)...));
  }

  // The tokens unit u of sequence b kept at the last step, ascending (synchronises). Dense
  // keeps everything: 0 .. n-1.
  std::vector<std::int32_t> selected(int b, int u) const {
    FASA_CHECK(b >= 0 && b < batch_ && u >= 0 && u < units_, "batch_decoder::selected: (", b, ", ",
               u, ") outside the batch of ", batch_, " x ", units_, " units");
    const std::int64_t n = lengths_[static_cast<std::size_t>(b)];
    std::vector<std::int32_t> out;
    if constexpr (Sel::kind == score_kind::none) {
      out.resize(static_cast<std::size_t>(n));
      for (std::int64_t i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = static_cast<int>(i);
    } else {
      FASA_CUDA_CHECK(cudaDeviceSynchronize());
      out.resize(static_cast<std::size_t>(sel_.keep(n)));
      FASA_CUDA_CHECK(cudaMemcpy(out.data(),
                                 idx_.data() + (static_cast<std::int64_t>(b) * units_ + u) * kcap_,
                                 out.size() * sizeof(std::int32_t), cudaMemcpyDeviceToHost));
      std::sort(out.begin(), out.end());
    }
    return out;
  }

  // The scores of unit u of sequence b at the last step (synchronises): [length].
  std::vector<float> scores(int b, int u) const {
    std::vector<float> out(static_cast<std::size_t>(lengths_[static_cast<std::size_t>(b)]));
    if constexpr (Sel::kind != score_kind::none) {
      FASA_CUDA_CHECK(cudaDeviceSynchronize());
      FASA_CUDA_CHECK(cudaMemcpy(
          out.data(), scores_.data() + (static_cast<std::int64_t>(b) * units_ + u) * score_stride_,
          out.size() * sizeof(float), cudaMemcpyDeviceToHost));
    }
    return out;
  }

  // Changes the token budget between steps (benchmarks sweep N_fac on one cache). The new
  // budget may keep no more than the budget the decoder was built with, whose index buffers it
  // reuses.
  void set_budget(token_budget budget) requires requires(Sel s) { s.budget; }
  {
    FASA_CHECK(budget.keep(shape_.capacity) <= kcap_,
               "batch_decoder::set_budget: the new budget "
               "keeps up to ",
               budget.keep(shape_.capacity), " tokens per unit, more than the ", kcap_,
               " this decoder was built for");
    sel_.budget = budget;
    sel_dev_.budget = budget;
    if (max_len_ > 0) plan_splits();
  }

  // How the attention stage splits each unit's tokens (benchmarks sweep it).
  void set_split_options(const split_options& o) {
    FASA_CHECK(o.tip_stages == -1 || o.tip_stages == 0 || o.tip_stages == 3,
               "batch_decoder::set_split_options: tip_stages must be -1 (auto), 0 (registers) "
               "or 3 (a cp.async ring of 3 passes), got ",
               o.tip_stages);
    FASA_CHECK(o.waves > 0 && o.gather_waves > 0 && o.tip_waves > 0 && o.min_chunk >= 1 &&
                   o.max_splits >= 1,
               "batch_decoder::set_split_options: waves, gather_waves and tip_waves must be > 0, "
               "min_chunk and max_splits >= 1; got ",
               o.waves, ", ", o.gather_waves, ", ", o.tip_waves, ", ", o.min_chunk, ", ",
               o.max_splits);
    FASA_CHECK(o.tip_bulk == -1 || o.tip_bulk == 0 || (o.tip_bulk >= 2 && o.tip_bulk <= 4),
               "batch_decoder::set_split_options: tip_bulk must be -1 (auto), 0 (off) or 2 to 4 "
               "tiles, got ",
               o.tip_bulk);
    FASA_CHECK(o.pdl >= -1 && o.pdl <= 1,
               "batch_decoder::set_split_options: pdl must be -1 (auto), 0 (off) or 1 (on), got ",
               o.pdl);
    FASA_CHECK(o.select_cluster == -1 || o.select_cluster == 0 || cluster_size(o.select_cluster),
               "batch_decoder::set_split_options: select_cluster must be -1 (auto), 0 (off) or "
               "2, 4, 8 or 16 blocks per cluster, got ",
               o.select_cluster);
    FASA_CHECK(o.select_lead_from == 0 || cluster_size(o.select_lead_from),
               "batch_decoder::set_split_options: select_lead_from must be 0 (never) or a "
               "cluster size of 2, 4, 8 or 16 blocks, got ",
               o.select_lead_from);
    if (o.tip_stages != split_.tip_stages || o.tip_bulk != split_.tip_bulk)
      tip_per_sm_ = 0;  // another TIP kernel: ask again
    split_ = o;
    if (max_len_ > 0) plan_splits();
  }
  const split_options& splits() const { return split_; }
  // The tiles of TIP's bulk-copy ring at this step, 0 where TIP loads otherwise
  // (split_options::tip_bulk; bulk copies need an sm_90 GPU and the scored rows back to back,
  // 4, 8 or 16 vectors wide).
  int tip_bulk_tiles() const {
    if constexpr (Sel::kind == score_kind::none) {
      return 0;
    } else {
      const int nv = score_width_ / vec;
      if (!tip_bulk_ok_ || !lanes_fit(nv)) return 0;
      // Auto: 3 tiles where a row is scored for several units (query_head), up to 8 % faster
      // there (NOTES.md v12); off under kv_head, where it measured slower. (Between v13 and
      // v15 it was off: its selections at 128K tokens x 32 sequences failed the PyTorch peer's
      // check until a cross-proxy fence before each refill fixed the race.)
      if (split_.tip_bulk >= 0) return split_.tip_bulk;
      const bool several_units =
          sel_.granularity() == selection_granularity::query_head && shape_.group_size() > 1;
      return several_units ? 3 : 0;
    }
  }
  // Blocks per cluster of the one-kernel TIP + top-k at this step (split_options::
  // select_cluster), 0 where the three-kernel path runs: the option off, a GPU before sm_90,
  // scored rows other than 4, 8 or 16 vectors wide, or more than 4 units per KV head.
  int select_cluster_blocks() {
    if constexpr (Sel::kind == score_kind::none) {
      return 0;
    } else {
      const int nv = score_width_ / vec;
      const int per_kv =
          sel_.granularity() == selection_granularity::query_head ? shape_.group_size() : 1;
      if (split_.select_cluster == 0 || !sm90_ || !lanes_fit(nv) ||
          per_kv > kernels::select_max_units)
        return 0;
      if (split_.select_cluster > 0) return split_.select_cluster;
      // Auto, as measured (NOTES.md v13): one unit per KV head only (kv_head granularity; under
      // query_head the kernel holds a group's units in registers and measured slower), and
      // contexts up to 32K tokens or at least as many (sequence, KV head) pairs as SMs (beyond
      // that, with fewer rows, the three kernels' wider filter measured faster); clusters of the
      // largest power of two in [2, 16] at most half the blocks that fill the GPU once.
      if (per_kv > 1 ||
          (max_len_ > 32768 && std::int64_t{shape_.num_kv_heads} * batch_ < std::int64_t{sms_}))
        return 0;
      if (select_per_sm_ == 0)
        with_select_kernel([&](auto kernel) {
          FASA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&select_per_sm_, kernel,
                                                                        kernels::tip_threads, 0));
        });
      const std::int64_t fill = std::int64_t{sms_} * std::max(select_per_sm_, 1) /
                                (std::int64_t{shape_.num_kv_heads} * batch_);
      int blocks = 2;
      while (blocks < 16 && blocks * 4 <= fill) blocks *= 2;
      return blocks;
    }
  }
  // Whether the step's kernels go out with programmatic dependent launch (split_options::pdl).
  bool pdl_active() const { return split_.pdl > 0 || (split_.pdl < 0 && batch_ == 1); }

  // Tokens per split of the attention stage and the number of splits at the current lengths.
  int chunk() const { return chunk_; }
  int max_splits() const { return max_splits_; }

 private:
  // The host address of mapped pinned memory the GPU addresses at `p`.
  static const Elem* host_pointer(const Elem* p) {
    cudaPointerAttributes attr{};
    FASA_CUDA_CHECK(cudaPointerGetAttributes(&attr, p));
    FASA_CHECK(attr.hostPointer != nullptr,
               "batch_decoder (FASA-M, host gather): the far tier is not host memory the CPU "
               "can read (shared_cache::far must be mapped pinned memory)");
    return static_cast<const Elem*>(attr.hostPointer);
  }

  // FASA-M: the two tiers as the kernels address them.
  kernels::tiers<Elem> tiers() {
    return {cache_ptr_, seq_stride_, far_ptr_, far_stride_, near_elements()};
  }
  std::int64_t near_elements() const { return storage::near_elements(st_); }

  // FASA-M: tokens t0 .. t0+count-1 of sequence b converted on the host; the slab rows go to
  // the device (one copy per KV head: its rows are contiguous), the rest and the values are
  // written straight into the pinned far tier, and the row pool forgets these tokens.
  void write_tiers(int b, std::int64_t t0, std::int64_t count, std::span<const float> k_rot,
                   std::span<const float> v) {
    if constexpr (offloaded) {
      write_offload_tokens<Elem>(st_, cache_.data() + b * seq_stride_,
                                 far_.data() + b * far_stride_, t0, count, k_rot, v);
      forget_tokens(b, t0, t0 + count);
    }
  }

 public:
  // FASA-M: empties the row pool's slots of sequence b that hold tokens t0 .. t1-1, whose rows
  // were rewritten (write_tokens does it for the decoder's own cache; the owner of a shared one
  // must). Synchronises.
  void forget_tokens(int b, std::int64_t t0, std::int64_t t1) {
    if constexpr (offloaded) {
      const int heads = shape_.num_kv_heads;
      // The pool's copies of these tokens are stale now.
      kernels::
          forget_tokens<<<dim3(static_cast<unsigned>(heads), static_cast<unsigned>(batch_)), 256>>>(
              slot_tok_.data(), pool_, heads, b, t0, t1);
      FASA_CUDA_CHECK_LAUNCH("forget_tokens");
      FASA_CUDA_CHECK(cudaDeviceSynchronize());
    }
  }

 private:
  // FASA-M's step 4: plan_rows turns each unit's kept tokens into row-pool slots and lists the
  // misses, fetch_rows copies them in (far parts over the bus), then FASA-C's attention kernel
  // gathers the same rows in the same order from the pool instead of the cache: the same output.
  void fetch_and_attend(const kernels::attend_args& a, float* out, bool direct, cudaStream_t stream,
                        const stage_events* ev) {
    if constexpr (offloaded) {
      kernels::pool_args p{};
      p.idx = idx_.data();
      p.idx_stride = kcap_;
      p.lengths = lengths_dev_.data();
      p.budget = a.budget;
      p.units = units_;
      p.per_kv = per_kv_;
      p.kv_heads = shape_.num_kv_heads;
      p.pool = pool_;
      p.slot_tok = slot_tok_.data();
      p.slot_idx = slot_idx_.data();
      p.miss_tok = miss_tok_.data();
      p.miss_slot = miss_slot_.data();
      p.miss_count = miss_count_.data();
      p.hsize = hsize_;
      p.hash_global = plan_smem_ > 0 ? nullptr : hash_.data();
      p.used_global = plan_smem_ > 0 ? nullptr : used_.data();
      const dim3 pairs(static_cast<unsigned>(shape_.num_kv_heads), static_cast<unsigned>(batch_));
      const bool gather = fetch_ == offload_fetch::host_gather;
      if (gather) {
        p.miss_tok_host = miss_tok_host_.device_data();
        p.miss_count_host = miss_count_host_.device_data();
      }
      launch_kernel(kernels::plan_rows, pairs, kernels::plan_threads,
                    static_cast<std::size_t>(plan_smem_), stream, p);
      FASA_CUDA_CHECK_LAUNCH("plan_rows");
      if (gather) FASA_CUDA_CHECK(cudaLaunchHostFunc(stream, gather_job::call, gather_.get()));
      // Enough 16-byte loads in flight for the link (a few blocks per SM over all pairs), at
      // most what a step's rows could need.
      const std::int64_t most =
          per_kv_ * sel_.keep(max_len_) * 2 * (shape_.head_dim / vec) / 256 + 1;
      const std::int64_t spread = std::max<std::int64_t>(
          1, 4 * std::int64_t{sms_} / (std::int64_t{shape_.num_kv_heads} * batch_));
      const dim3 fetch_grid(static_cast<unsigned>(std::min(most, spread)),
                            static_cast<unsigned>(shape_.num_kv_heads),
                            static_cast<unsigned>(batch_));
      with_head_dim([&](auto dim) {
        constexpr int D = decltype(dim)::value;
        if (gather)
          launch_kernel(kernels::fetch_staged<Elem, D>, fetch_grid, 256, 0, stream, st_dev_,
                        tiers(), static_cast<const Elem*>(stage_.device_data()),
                        static_cast<const std::int64_t*>(stage_off_.device_data()), work_st_,
                        work_.data(), work_stride_, p);
        else
          launch_kernel(kernels::fetch_rows<Elem, D>, fetch_grid, 256, 0, stream, st_dev_, tiers(),
                        work_st_, work_.data(), work_stride_, p);
      });
      FASA_CUDA_CHECK_LAUNCH("fetch_rows");
      if (ev && ev->fetched) FASA_CUDA_CHECK(cudaEventRecord(ev->fetched, stream));
      kernels::attend_args w = a;
      w.idx = slot_idx_.data();
      attend(work_st_, work_.data(), work_stride_, w, out, direct, stream, ev);
    }
  }

  // Step 4 over the cache laid out by `lay` at `cache`: the attention kernel, then the merge of
  // its splits (none with one split per unit).
  template <class L>
  void attend(const L& lay, Elem* cache, std::int64_t stride, const kernels::attend_args& a,
              float* out, bool direct, cudaStream_t stream, const stage_events* ev) {
    const int units = a.unit_is_query_head ? shape_.num_q_heads : shape_.num_kv_heads;
    const dim3 grid(static_cast<unsigned>(max_splits_), static_cast<unsigned>(units),
                    static_cast<unsigned>(batch_));
    with_attention_kernel<L>(a.unit_is_query_head, [&](auto kernel, int threads, int smem) {
      launch_kernel(kernel, grid, static_cast<unsigned>(threads), static_cast<std::size_t>(smem),
                    stream, lay, cache, stride, a);
    });
    FASA_CUDA_CHECK_LAUNCH("attend_split");
    if (!direct) {
      launch_kernel(kernels::merge_splits,
                    dim3(static_cast<unsigned>(shape_.num_q_heads), static_cast<unsigned>(batch_)),
                    static_cast<unsigned>(shape_.head_dim), 0, stream, a, out);
      FASA_CUDA_CHECK_LAUNCH("merge_splits");
    }
    if (ev) FASA_CUDA_CHECK(cudaEventRecord(ev->done, stream));
  }

  static token_budget budget_of(const Sel& s) {
    if constexpr (requires { s.budget; })
      return s.budget;
    else
      return token_budget::all();
  }

  // Runs f(std::integral_constant<int, P>) for the smallest P in {1, 2, 4, 8} >= count.
  template <class F>
  static void launch_by_count(int count, F&& f) {
    if (count <= 1)
      f(std::integral_constant<int, 1>{});
    else if (count <= 2)
      f(std::integral_constant<int, 2>{});
    else if (count <= 4)
      f(std::integral_constant<int, 4>{});
    else
      f(std::integral_constant<int, 8>{});
  }
  // Whether rows of nv 16-byte vectors are scored by TIP's lanes kernels: nv lanes a row, 4, 8
  // or 16 (a 32-dim bf16 slab: 4; whole rows at d = 128: 16).
  static constexpr bool lanes_fit(int nv) { return nv == 4 || nv == 8 || nv == 16; }
  // Whether c blocks make a cluster the one-kernel TIP + top-k is run with.
  static constexpr bool cluster_size(int c) { return c == 2 || c == 4 || c == 8 || c == 16; }
  // Runs f(std::integral_constant<int, L>) for L = lanes when lanes_fit(lanes); false, f not
  // run, for any other count.
  template <class F>
  static bool with_lanes(int lanes, F&& f) {
    switch (lanes) {
      case 4:
        f(std::integral_constant<int, 4>{});
        return true;
      case 8:
        f(std::integral_constant<int, 8>{});
        return true;
      case 16:
        f(std::integral_constant<int, 16>{});
        return true;
      default:
        return false;
    }
  }
  template <class F>
  void with_head_dim(F&& f) const {
    if (shape_.head_dim == 64)
      f(std::integral_constant<int, 64>{});
    else
      f(std::integral_constant<int, 128>{});
  }

  // Runs f(kernel) with the tip_select_cluster instance for this decoder's rows (callers check
  // select_cluster_blocks() first); 16-block clusters allowed (beyond the portable 8).
  template <class F>
  void with_select_kernel(F&& f) const {
    const int nv = score_width_ / vec;
    const int per_kv =
        sel_.granularity() == selection_granularity::query_head ? shape_.group_size() : 1;
    launch_by_count(per_kv, [&](auto umax) {
      constexpr int UMAX = decltype(umax)::value;
      if constexpr (UMAX <= kernels::select_max_units) {
        with_head_dim([&](auto dim) {
          constexpr int D = decltype(dim)::value;
          const auto run = [&](auto lpr_c) {
            constexpr int L = decltype(lpr_c)::value;
            const auto kernel = kernels::tip_select_cluster<Elem, St, D, UMAX, L>;
            static const bool configured = [&] {
              FASA_CUDA_CHECK(
                  cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
              return true;
            }();
            (void)configured;
            f(kernel);
          };
          with_lanes(nv, run);
        });
      }
    });
  }

  // Runs f(kernel, threads, dynamic shared memory) with the attention kernel that serves units
  // of one query head (per_query) or of a KV head's group: tensor cores when several query heads
  // share each row (attend_mma.cuh), else the CUDA-core kernel.
  template <class L = St, class F>
  void with_attention_kernel(bool per_query, F&& f) const {
    const int per_unit = per_query ? 1 : shape_.group_size();
    if constexpr (sizeof(Elem) == 2) {  // the tensor-core path takes 16-bit elements
      if (per_unit >= 2) {
        with_head_dim([&](auto dim) {
          constexpr int D = decltype(dim)::value;
          constexpr int smem = kernels::mma_smem_bytes<Elem, D>();
          const auto kernel = kernels::attend_split_mma<Elem, L, D>;
          static const bool configured = [&] {  // once per instantiation: > 48 KB of shared memory
            FASA_CUDA_CHECK(
                cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
            return true;
          }();
          (void)configured;
          f(kernel, kernels::mma_threads, smem);
        });
        return;
      }
    }
    launch_by_count(per_unit, [&](auto qmax) {
      with_head_dim([&](auto dim) {
        constexpr int D = decltype(dim)::value, QMAX = decltype(qmax)::value;
        constexpr int smem = kernels::attend_smem_bytes<Elem, D, QMAX>();
        const auto kernel = kernels::attend_split<Elem, L, D, QMAX>;
        static const bool configured = [&] {
          FASA_CUDA_CHECK(
              cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
          return true;
        }();
        (void)configured;
        f(kernel, kernels::attend_threads, smem);
      });
    });
  }

  // Chooses the attention split: about split_options::waves (gather_waves for FAC) times as
  // many blocks as the GPU holds resident (several waves of equal blocks let the block
  // scheduler even out SMs that stream slower), at most max_splits per unit (the merge's serial
  // walk), each at least min_chunk tokens long. The partial outputs are sized for it.
  void plan_splits() {
    std::int64_t count = max_len_;
    bool per_query = false;
    if constexpr (Sel::kind != score_kind::none) {
      count = sel_.keep(max_len_);
      per_query = sel_.granularity() == selection_granularity::query_head;
    }
    int per_sm = 0;
    with_attention_kernel<attend_layout>(per_query, [&](auto kernel, int threads, int smem) {
      FASA_CUDA_CHECK(
          cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
    });
    const std::int64_t units = per_query ? shape_.num_q_heads : shape_.num_kv_heads;
    const double waves = Sel::kind == score_kind::none ? split_.waves : split_.gather_waves;
    const std::int64_t target = static_cast<std::int64_t>(
        std::ceil(waves * static_cast<double>(sms_) * std::max(per_sm, 1)));
    const std::int64_t want_splits = std::clamp<std::int64_t>(
        (target + batch_ * units - 1) / (batch_ * units), 1, split_.max_splits);
    std::int64_t chunk = (count + want_splits - 1) / want_splits;
    chunk = std::max<std::int64_t>(chunk, split_.min_chunk);
    chunk = (chunk + 63) / 64 * 64;
    chunk_ = static_cast<int>(chunk);
    max_splits_ = static_cast<int>((count + chunk - 1) / chunk);
    const auto heads =
        static_cast<std::size_t>(batch_) * static_cast<std::size_t>(shape_.num_q_heads);
    part_o_.resize(heads * static_cast<std::size_t>(max_splits_) *
                   static_cast<std::size_t>(shape_.head_dim));
    part_lse_.resize(heads * static_cast<std::size_t>(max_splits_));
  }

  attention_shape shape_;
  int batch_;
  Sel sel_, sel_dev_{};
  St st_, st_dev_{};
  device_buffer<std::int32_t> sel_tables_, st_tables_;
  device_buffer<Elem> cache_;  // empty when the cache is shared
  Elem* cache_ptr_ = nullptr;
  std::int64_t seq_stride_ = 0;
  std::vector<int> lengths_;
  device_buffer<int> lengths_dev_;
  std::int64_t max_len_ = 0;
  int units_ = 0;
  std::int64_t kcap_ = 0;
  int score_width_ = 0;
  std::int64_t score_stride_ = 0;
  int chunk_ = 0, max_splits_ = 0;
  split_options split_{};
  int tip_per_sm_ = 0;        // TIP blocks resident per SM (asked on the first step)
  bool tip_bulk_ok_ = false;  // TIP may load through bulk copies (split_options::tip_bulk)
  bool sm90_ = false;         // the GPU runs clusters, bulk copies, dependent launches
  int select_per_sm_ = 0;     // tip_select_cluster blocks resident per SM (asked once)
  device_buffer<float> q_att_, q_tip_, scores_, part_o_, part_lse_;
  device_buffer<std::int32_t> idx_, cand_;
  device_buffer<unsigned> hist_;     // [rows, topk_hist_bins], then [rows, topk_count_fields]
  device_buffer<unsigned> done_;     // TIP's finished blocks [batch, kv_heads]
  device_buffer<float> score_mask_;  // [units, head_dim]
  int sms_ = 0;
  // FASA-M: the far tier; the row pool (its rows laid out by work_st_, a split_dominant of
  // pool_ tokens per KV head) and its bookkeeping (kernels::pool_args).
  pinned_buffer<Elem> far_;  // empty when the tiers are shared
  Elem* far_ptr_ = nullptr;  // the far tier as the GPU addresses it
  std::int64_t far_stride_ = 0;
  device_buffer<Elem> work_;
  std::int64_t work_stride_ = 0;
  storage::split_dominant work_st_{};
  int per_kv_ = 1;
  std::int64_t pool_ = 0, hsize_ = 0, plan_smem_ = 0;
  device_buffer<std::int32_t> slot_tok_, slot_idx_, miss_tok_, miss_slot_, hash_;
  device_buffer<int> miss_count_;
  device_buffer<unsigned char> used_;
  // offload_fetch::host_gather: the misses as the host sees them, the staging rows and their
  // offsets (pinned, mapped), and the host node's job (heap-held: its address is in the graph).
  offload_fetch fetch_ = offload_fetch::zero_copy;
  struct gather_job {
    far_gather<Elem> gather;
    std::shared_ptr<gather_team> team;
    static void CUDART_CB call(void* self) {
      auto* j = static_cast<gather_job*>(self);
      j->gather.run(*j->team);
    }
  };
  pinned_buffer<std::int32_t> miss_tok_host_;
  pinned_buffer<int> miss_count_host_;
  pinned_buffer<std::int64_t> stage_off_;
  pinned_buffer<Elem> stage_;
  std::unique_ptr<gather_job> gather_;
};

}  // namespace fasa::cuda
