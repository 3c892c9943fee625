// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// backend::cuda<E> as SparseAttention's fourth policy: one sequence's KV cache resident in
// device memory (bf16, fp16 or fp32 elements), its decode steps and prefills run by the kernels
// of cuda::batch_decoder (a batch of one sequence). So any composition of the core's policies
// the kernels stream runs on the GPU unchanged:
//
//   #include <fasa/backends/cuda/backend.cuh>   // nvcc only
//   fasa::SparseAttention<fasa::positional::rope, fasa::selector::fasa_tip,
//                         fasa::storage::split_dominant, fasa::backend::cuda<>>
//       attn(shape, pe, plan.tip(budget), plan.storage());   // plan built with slab_multiple 8
//
// What crosses the bus per call: the new token's rotated k/v rows (batched until the next
// step), the queries, the output, and after a selection its token indices (the host-side
// `selection` SparseAttention reports). That makes it the GPU twin of the CPU backends, one
// layer of one sequence at a time, for running real models and checking the kernels against
// the reference; batch_decoder itself (many sequences, no host round trip, CUDA graphs) is the
// fast path and what fasa-bench measures.
//
// - append: rows are kept on the host and written in one launch when the next call needs them.
// - select: one full decode step on the device (scores, top-k, and the attention over the kept
//   rows, whose output attend() then returns); the kept indices come back ascending.
// - attend: over everything (dense, or a budget that covers the cache) the dense kernels; over
//   a selection, the output of the select() that made it (any other selection is refused).
// - prefill: causal dense attention of T queries as a batch of T decode queries over the same
//   cache (one cache shared by the batch, sequence i of length start + i + 1).
// - storage::split_offload (FASA-M): the sequence holds the two tiers (the slab in device
//   memory, the rest and the values in pinned host memory); select() runs FASA-M's decoder on
//   them (its row pool told of every rewrite). Dense attention (prefill, and steps whose budget
//   covers the cache) reads every row, so it runs FASA-C's dense kernels on a transient device
//   copy of both tiers, freed when the call returns: prefill stays dense, as the paper has it,
//   and between calls only the slab and the pool stay on the GPU.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "fasa/backends/cuda/batch_decode.cuh"
#include "fasa/compose/selection.hpp"
#include "fasa/policies/backend/tags.hpp"
#include "fasa/policies/concepts.hpp"

namespace fasa {

namespace cuda::detail {

template <backend::device_element E>
using element_t =
    std::conditional_t<E == backend::device_element::bf16, __nv_bfloat16,
                       std::conditional_t<E == backend::device_element::fp16, __half, float>>;

// Queries per prefill launch: enough to fill the GPU, few enough to keep the partial outputs
// (queries x heads x splits x head_dim floats) small.
inline constexpr int prefill_batch = 256;

struct sequence_base {
  virtual ~sequence_base() = default;
};

// The decoder of one selector type, sharing the sequence's cache.
struct selecting_base {
  virtual ~selecting_base() = default;
  // Tokens t0 .. t1-1 were rewritten (FASA-M: its row pool drops them; others hold no rows).
  virtual void forget_tokens(std::int64_t t0, std::int64_t t1) = 0;
};
template <class Elem, class Sel, class St>
struct selecting final : selecting_base {
  selecting(const attention_shape& shape, const Sel& s, const St& st, shared_cache<Elem> cache)
      : sel(s), dec(shape, 1, s, st, cache) {}
  void forget_tokens(std::int64_t t0, std::int64_t t1) override { dec.forget_tokens(0, t0, t1); }
  Sel sel;  // the selector it was built for (a different one rebuilds it)
  batch_decoder<Elem, Sel, St> dec;
};

template <class Elem, class St>
struct sequence final : sequence_base {
  sequence(const attention_shape& s, const St& storage) : dense(s, 1, selector::dense{}, storage) {
    const auto d = static_cast<std::size_t>(s.head_dim);
    q.resize(static_cast<std::size_t>(s.num_q_heads) * d);
    out.resize(q.size());
  }
  batch_decoder<Elem, selector::dense, St> dense;                     // owns the cache
  std::unique_ptr<batch_decoder<Elem, selector::dense, St>> prefill;  // batch of queries
  std::unique_ptr<selecting_base> selecting_dec;
  device_buffer<float> q, out;  // [num_q_heads, head_dim]
  device_buffer<float> q_block, out_block;
  // The selection the last select() made and whose attention output sits in `out`.
  std::int64_t ready_t = -1;
  std::vector<std::int32_t> ready_tokens;
  shared_cache<Elem> cache() { return {dense.cache(), 0}; }
};

// FASA-M: the two tiers of the sequence, and what dense attention borrows for one call.
template <class Elem>
struct sequence<Elem, storage::split_offload> final : sequence_base {
  sequence(const attention_shape& s, const storage::split_offload& st) {
    near.resize(static_cast<std::size_t>(st.near_elements()));
    FASA_CUDA_CHECK(cudaMemset(near.data(), 0, near.bytes()));
    far.allocate(static_cast<std::size_t>(st.far_elements()),
                 "backend::cuda (FASA-M): the far tier (key dims outside the slab and all values)");
    std::memset(far.data(), 0, far.bytes());
    const auto d = static_cast<std::size_t>(s.head_dim);
    q.resize(static_cast<std::size_t>(s.num_q_heads) * d);
    out.resize(q.size());
  }
  device_buffer<Elem> near;
  pinned_buffer<Elem> far;
  std::unique_ptr<selecting_base> selecting_dec;
  device_buffer<float> q, out;
  device_buffer<float> q_block, out_block;
  std::int64_t ready_t = -1;
  std::vector<std::int32_t> ready_tokens;
  shared_cache<Elem> cache() { return {near.data(), 0, far.device_data(), 0}; }
};

}  // namespace cuda::detail

template <backend::device_element E>
struct backend_impl<backend::cuda<E>> {
  using is_implemented = void;
  using tag = backend::cuda<E>;
  using elem = cuda::detail::element_t<E>;

  struct state {
    std::unique_ptr<cuda::detail::sequence_base> seq;  // made by the first call that has a shape
    // Appended rows not yet on the device: tokens pending_start .. + pending_count - 1.
    std::int64_t pending_start = 0, pending_count = 0;
    std::vector<float> pending_k, pending_v;  // [pending_count, num_kv_heads, head_dim]
  };

  template <KVStorage St>
  static void init(const tag&, const St&, state& s) {
    s = state{};
  }

  template <KVStorage St>
  static void append(const tag&, const St& st, state& s, std::int64_t pos, const float* k_rot,
                     const float* v) {
    const std::int64_t row = std::int64_t{st.num_kv_heads()} * st.head_dim();
    const std::int64_t end = s.pending_start + s.pending_count;
    if (s.pending_count > 0 && pos != end) {
      FASA_CHECK(pos < end, "backend::cuda: token ", pos, " appended after token ", end - 1);
      if (s.seq) {
        flush(st, s);  // rows from pos on are written again when their new values come
      } else {         // rewritten before anything reached the device (a reset cache)
        const std::int64_t keep = std::max<std::int64_t>(0, pos - s.pending_start);
        s.pending_count = keep;
        s.pending_k.resize(static_cast<std::size_t>(keep * row));
        s.pending_v.resize(static_cast<std::size_t>(keep * row));
      }
    }
    if (s.pending_count == 0) {
      s.pending_start = pos;
      s.pending_k.clear();
      s.pending_v.clear();
    }
    s.pending_k.insert(s.pending_k.end(), k_rot, k_rot + row);
    s.pending_v.insert(s.pending_v.end(), v, v + row);
    ++s.pending_count;
  }

  template <TokenSelector Sel, KVStorage St>
  static void select(const tag&, const Sel& sel, const St& st, const attention_shape& shape,
                     state& s, const float* q_rot, std::int64_t t, selection& out) {
    auto& seq = sequence_of(shape, st, s);
    flush(st, s);
    auto* sd = dynamic_cast<cuda::detail::selecting<elem, Sel, St>*>(seq.selecting_dec.get());
    if (sd == nullptr || std::memcmp(&sd->sel, &sel, sizeof(Sel)) != 0) {
      seq.selecting_dec.reset();  // free its buffers before the new one takes its own
      seq.selecting_dec =
          std::make_unique<cuda::detail::selecting<elem, Sel, St>>(shape, sel, st, seq.cache());
      sd = static_cast<cuda::detail::selecting<elem, Sel, St>*>(seq.selecting_dec.get());
    }
    upload(seq.q, q_rot);
    const int len[1] = {checked_length(t, shape)};
    sd->dec.set_lengths(len);
    sd->dec.decode(seq.q.data(), seq.out.data());
    out.all = false;
    out.granularity = sel.granularity();
    out.units = sd->dec.units();
    out.per_unit = sel.keep(t);
    out.tokens.resize(static_cast<std::size_t>(out.units * out.per_unit));
    for (int u = 0; u < out.units; ++u) {
      const std::vector<std::int32_t> kept = sd->dec.selected(0, u);
      std::copy(kept.begin(), kept.end(), out.unit_tokens(u).begin());
    }
    seq.ready_t = t;
    seq.ready_tokens = out.tokens;
  }

  template <KVStorage St>
  static void attend(const tag&, const St& st, const attention_shape& shape, state& s,
                     const float* q_rot, std::int64_t t, const selection& sel, float* out) {
    auto& seq = sequence_of(shape, st, s);
    flush(st, s);
    if (sel.all) {
      upload(seq.q, q_rot);
      const int len[1] = {checked_length(t, shape)};
      if constexpr (offloaded<St>) {
        auto flat = dense_copy(st, seq);
        batch_decoder_dense<storage::split_dominant> dense(
            shape, 1, selector::dense{}, st, cuda::shared_cache<elem>{flat.data(), 0});
        dense.set_lengths(len);
        dense.decode(seq.q.data(), seq.out.data());
        FASA_CUDA_CHECK(cudaDeviceSynchronize());
      } else {
        seq.dense.set_lengths(len);
        seq.dense.decode(seq.q.data(), seq.out.data());
      }
    } else {
      FASA_CHECK(seq.ready_t == t && seq.ready_tokens == sel.tokens,
                 "backend::cuda: attend() over a selection runs with the select() that made it "
                 "(the kernels attend while they select); this selection is not the last one "
                 "select() made at this length");
    }
    FASA_CUDA_CHECK(cudaMemcpy(out, seq.out.data(), seq.out.bytes(), cudaMemcpyDeviceToHost));
  }

  template <KVStorage St>
  static void prefill(const tag&, const St& st, const attention_shape& shape, state& s,
                      const float* q_rot, std::int64_t start, std::int64_t count, float* out) {
    auto& seq = sequence_of(shape, st, s);
    flush(st, s);
    const int batch = static_cast<int>(std::min<std::int64_t>(count, cuda::detail::prefill_batch));
    // The dense decoder of a batch of queries over the cache (FASA-M: over a copy of its tiers).
    using dense_layout = std::conditional_t<offloaded<St>, storage::split_dominant, St>;
    cuda::device_buffer<elem> flat;
    std::unique_ptr<batch_decoder_dense<dense_layout>> transient;
    batch_decoder_dense<dense_layout>* dec = nullptr;
    if constexpr (offloaded<St>) {
      flat = dense_copy(st, seq);
      transient = std::make_unique<batch_decoder_dense<dense_layout>>(
          shape, batch, selector::dense{}, st, cuda::shared_cache<elem>{flat.data(), 0});
      dec = transient.get();
    } else {
      if (!seq.prefill || seq.prefill->batch() != batch)
        seq.prefill = std::make_unique<batch_decoder_dense<St>>(
            shape, batch, selector::dense{}, st, cuda::shared_cache<elem>{seq.dense.cache(), 0});
      dec = seq.prefill.get();
    }
    const std::int64_t row = std::int64_t{shape.num_q_heads} * shape.head_dim;
    std::vector<float> q_block(static_cast<std::size_t>(batch * row), 0.0f);
    std::vector<int> lengths(static_cast<std::size_t>(batch));
    for (std::int64_t i0 = 0; i0 < count; i0 += batch) {
      const std::int64_t n = std::min<std::int64_t>(batch, count - i0);
      for (int i = 0; i < batch; ++i)  // rows past the end repeat the last query, ignored
        lengths[static_cast<std::size_t>(i)] =
            checked_length(start + i0 + std::min<std::int64_t>(i, n - 1) + 1, shape);
      std::copy(q_rot + i0 * row, q_rot + (i0 + n) * row, q_block.begin());
      seq.q_block.upload(q_block);
      seq.out_block.resize(q_block.size());
      dec->set_lengths(lengths);
      dec->decode(seq.q_block.data(), seq.out_block.data());
      FASA_CUDA_CHECK(cudaMemcpy(out + i0 * row, seq.out_block.data(),
                                 static_cast<std::size_t>(n * row) * sizeof(float),
                                 cudaMemcpyDeviceToHost));
    }
  }

 private:
  template <class St>
  using batch_decoder_dense = cuda::batch_decoder<elem, selector::dense, St>;
  template <class St>
  static constexpr bool offloaded = std::is_same_v<St, storage::split_offload>;

  // FASA-M: both tiers copied into one device buffer, which split_dominant's map reads as a
  // whole cache (the near tier is the start of that map, the far tier the rest).
  template <class Seq>
  static cuda::device_buffer<elem> dense_copy(const storage::split_offload& st, Seq& seq) {
    cuda::device_buffer<elem> flat(static_cast<std::size_t>(st.buffer_elements()));
    FASA_CUDA_CHECK(
        cudaMemcpy(flat.data(), seq.near.data(), seq.near.bytes(), cudaMemcpyDeviceToDevice));
    FASA_CUDA_CHECK(cudaMemcpy(flat.data() + st.near_elements(), seq.far.data(), seq.far.bytes(),
                               cudaMemcpyHostToDevice));
    return flat;
  }
  template <class St>
  using sequence_t = cuda::detail::sequence<elem, St>;

  static int checked_length(std::int64_t t, const attention_shape& shape) {
    FASA_CHECK(t >= 1 && t <= shape.capacity, "backend::cuda: length ", t, " outside [1, ",
               shape.capacity, "]");
    return static_cast<int>(t);
  }

  template <class St>
  static sequence_t<St>& sequence_of(const attention_shape& shape, const St& st, state& s) {
    if (!s.seq) s.seq = std::make_unique<sequence_t<St>>(shape, st);
    auto* seq = dynamic_cast<sequence_t<St>*>(s.seq.get());
    FASA_CHECK(seq != nullptr, "backend::cuda: the state was made for another storage layout");
    return *seq;
  }

  // Writes the pending rows to the device cache (needs the sequence, hence a shape: rows
  // appended before the first shape-aware call wait for it).
  template <class St>
  static void flush(const St& st, state& s) {
    if (s.pending_count == 0 || !s.seq) return;
    auto& seq = static_cast<sequence_t<St>&>(*s.seq);
    if constexpr (offloaded<St>) {
      cuda::write_offload_tokens<elem>(st, seq.near.data(), seq.far.data(), s.pending_start,
                                       s.pending_count, s.pending_k, s.pending_v);
      if (seq.selecting_dec)  // its row pool must not serve the old rows
        seq.selecting_dec->forget_tokens(s.pending_start, s.pending_start + s.pending_count);
    } else {
      seq.dense.write_tokens(0, s.pending_start, s.pending_k, s.pending_v);
    }
    s.pending_count = 0;
    s.pending_k.clear();
    s.pending_v.clear();
  }

  static void upload(cuda::device_buffer<float>& to, const float* from) {
    FASA_CUDA_CHECK(cudaMemcpy(to.data(), from, to.bytes(), cudaMemcpyHostToDevice));
  }
};

}  // namespace fasa
