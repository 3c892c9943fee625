// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Split-KV decode attention on tensor cores for units with several query heads (dense decode
// and FAC under kv_head granularity): the same contract as attend_split (attend_split.cuh),
// computed with mma.sync m16n8k16 (bf16 or fp16 in, fp32 accumulate). Decode has at most a
// GQA group of queries, so the 16-row M side holds the group's heads (rows past the group are
// zero); what the tensor cores buy is not FLOPs but instructions: a 16-token step is ~40 warp
// instructions instead of ~1800 on the CUDA cores, which leaves the kernel bound by memory.
//
// Per block: 4 warps, tiles of 64 tokens streamed through a 3-stage cp.async pipeline into
// shared memory whose 16-byte chunks are XOR-swizzled by row (ldmatrix reads 8 rows of one
// column without bank conflicts). Warp w owns tokens 16w..16w+15 of each tile:
//   S = Q K^T    2 x D/16 mma: A = the queries (registers, loaded once), B = K via ldmatrix;
//   online softmax on S's accumulator fragment (base 2: queries arrive scaled by log2e/sqrt(d));
//   O += P V     D/8 mma: A = P re-packed from S's fragment in registers (FlashAttention-2),
//                B = V via ldmatrix.trans.
// The four warps' states merge through shared memory at the end.

#include <cstdint>

#include "fasa/backends/cuda/common.cuh"
#include "fasa/backends/cuda/kernels/attend_split.cuh"

namespace fasa::cuda::kernels {

inline constexpr int mma_threads = 128;
inline constexpr int mma_tile = 64;
inline constexpr int mma_stages = 3;

template <class Elem, int D>
constexpr int mma_smem_bytes() {
  constexpr int pipe = mma_stages * mma_tile * D * 2 * static_cast<int>(sizeof(Elem));
  constexpr int combine = 4 * 8 * (D + 2) * 4;
  return pipe > combine ? pipe : combine;
}

// cp.async of 16 bytes, or 16 zero bytes when !valid (no global read).
__device__ __forceinline__ void cp_async16_or_zero(void* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem),
               "r"(valid ? 16 : 0));
}

__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const void* smem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], const void* smem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

// c += a b for one m16n8k16 tile; a: 4 registers, b: 2, c: 4 floats.
template <class Elem>
__device__ __forceinline__ void mma16816(float (&c)[4], unsigned a0, unsigned a1, unsigned a2,
                                         unsigned a3, unsigned b0, unsigned b1) {
  if constexpr (std::is_same_v<Elem, __half>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
}

// Two floats as one register of two Elem (the lower address first).
template <class Elem>
__device__ __forceinline__ unsigned pack2(float lo, float hi) {
  if constexpr (std::is_same_v<Elem, __half>) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const unsigned*>(&h);
  } else {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const unsigned*>(&h);
  }
}

// Element offset of 16-byte chunk c of row r in a swizzled [rows][D] tile.
template <int D>
__device__ __forceinline__ int swz(int r, int c) {
  return r * D + ((c ^ (r & 7)) << 3);
}

// grid: (max_splits, units, batch); block: mma_threads; dynamic shared memory mma_smem_bytes().
// For units of 2 to 8 query heads (kv_head units); Elem is bf16 or fp16.
template <class Elem, class St, int D>
__global__ __launch_bounds__(mma_threads) void attend_split_mma(St st, const Elem* cache,
                                                                std::int64_t seq_elems,
                                                                attend_args a) {
  grid_dependency_sync();  // programmatic dependent launch (common.cuh)
  static_assert(sizeof(Elem) == 2, "the tensor-core path takes bf16 or fp16");
  static_assert(D % 64 == 0, "head_dim must be a multiple of 64 (8 chunks per row to swizzle)");
  constexpr int TILE = mma_tile, S = mma_stages, CH = D / 8;  // 16-byte chunks per row
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Elem* ks = reinterpret_cast<Elem*>(smem_raw);  // [S][TILE][D], swizzled
  Elem* vs = ks + S * TILE * D;                  // [S][TILE][D], swizzled

  const split_work w = split_of_block(a);  // units here are KV heads with their group
  if (w.begin >= w.end) return;
  const int split = w.split, unit = w.unit, b = w.b, kv = w.kv, nq = w.nq, q0 = w.q0;
  const std::int64_t begin = w.begin, end = w.end;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int gq = lane / 4, tq = lane % 4;  // mma fragment coordinates
  const Elem* base = cache + b * seq_elems;
  const int fw = layout<St>::first_width(st);
  const std::int32_t* list =
      a.gather ? a.idx + (static_cast<std::int64_t>(b) * a.shape.num_kv_heads + unit) * a.idx_stride
               : nullptr;
  const int tiles = static_cast<int>((end - begin + TILE - 1) / TILE);

  const auto load_tile = [&](int tile, int stage) {
#pragma unroll
    for (int i = 0; i < TILE * CH / mma_threads; ++i) {
      const int item = i * mma_threads + threadIdx.x;
      const int r = item / CH, c = item % CH;
      const std::int64_t pos = begin + static_cast<std::int64_t>(tile) * TILE + r;
      const bool valid = pos < end;
      const std::int64_t t = !valid ? 0 : list != nullptr ? list[pos] : pos;
      const int col = c * 8;
      const Elem* k = col < fw ? base + layout<St>::first_row(st, kv, t) + col
                               : base + layout<St>::second_row(st, kv, t) + (col - fw);
      cp_async16_or_zero(ks + stage * TILE * D + swz<D>(r, c), k, valid);
      cp_async16_or_zero(vs + stage * TILE * D + swz<D>(r, c),
                         base + layout<St>::value_row(st, kv, t) + col, valid);
    }
  };

  // Q as the A operand, row gq = head gq of the unit (zero past the group), rows gq+8 zero.
  unsigned qa[D / 16][2];
  {
    const float* qrow =
        a.q_att +
        (static_cast<std::int64_t>(b) * a.shape.num_q_heads + q0 + (gq < nq ? gq : 0)) * D;
#pragma unroll
    for (int kc = 0; kc < D / 16; ++kc) {
      const int d0 = kc * 16 + 2 * tq;
      qa[kc][0] = gq < nq ? pack2<Elem>(qrow[d0], qrow[d0 + 1]) : 0u;
      qa[kc][1] = gq < nq ? pack2<Elem>(qrow[d0 + 8], qrow[d0 + 9]) : 0u;
    }
  }
  float o[D / 8][4];
#pragma unroll
  for (int nt = 0; nt < D / 8; ++nt) o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.0f;
  float m = -INFINITY, l = 0.0f;  // row gq's running max and this thread's partial sum

  cp_async_pipeline<S>(tiles, load_tile, [&](int tile, int stage) {
    const Elem* kt = ks + stage * TILE * D;
    const Elem* vt = vs + stage * TILE * D;
    const int r0 = warp * 16;  // this warp's 16 tokens
    const std::int64_t pos0 = begin + static_cast<std::int64_t>(tile) * TILE + r0;

    // S[16 heads x 16 tokens] = Q K^T: two n8 tiles of tokens.
    float sc[2][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
#pragma unroll
    for (int kc = 0; kc < D / 16; ++kc) {
      unsigned kb[4];
      // matrices: (tokens 0-7, dims lo), (0-7, hi), (8-15, lo), (8-15, hi)
      const int row = r0 + (lane & 7) + ((lane >> 4) << 3);
      const int chunk = kc * 2 + ((lane >> 3) & 1);
      ldmatrix_x4(kb, kt + swz<D>(row, chunk));
      mma16816<Elem>(sc[0], qa[kc][0], 0u, qa[kc][1], 0u, kb[0], kb[1]);
      mma16816<Elem>(sc[1], qa[kc][0], 0u, qa[kc][1], 0u, kb[2], kb[3]);
    }
    // this thread's scores of row gq: tokens 2tq, 2tq+1 (tile 0) and 8+2tq, 9+2tq (tile 1)
    float s4[4] = {sc[0][0], sc[0][1], sc[1][0], sc[1][1]};
    const int tok[4] = {2 * tq, 2 * tq + 1, 8 + 2 * tq, 9 + 2 * tq};
    float mx = m;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if (pos0 + tok[j] >= end) s4[j] = -INFINITY;
      mx = fmaxf(mx, s4[j]);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    float p4[4] = {0, 0, 0, 0};
    if (mx != -INFINITY) {
      const float scale = exp2f(m - mx);
      m = mx;
      l *= scale;
#pragma unroll
      for (int nt = 0; nt < D / 8; ++nt) o[nt][0] *= scale, o[nt][1] *= scale;
#pragma unroll
      for (int j = 0; j < 4; ++j) l += (p4[j] = exp2f(s4[j] - mx));
    }
    // P as the A operand (rows gq; rows gq+8 zero): k = tokens.
    const unsigned pa0 = pack2<Elem>(p4[0], p4[1]), pa2 = pack2<Elem>(p4[2], p4[3]);
    // O[16 heads x D] += P V: V^T fragments by ldmatrix.trans, two n8 tiles of dims per load.
#pragma unroll
    for (int nt = 0; nt < D / 8; nt += 2) {
      unsigned vb[4];
      // matrices: (tokens 0-7, dims nt), (8-15, nt), (0-7, nt+1), (8-15, nt+1)
      const int row = r0 + (lane & 7) + (((lane >> 3) & 1) << 3);
      const int chunk = nt + (lane >> 4);
      ldmatrix_x4_trans(vb, vt + swz<D>(row, chunk));
      mma16816<Elem>(o[nt], pa0, 0u, pa2, 0u, vb[0], vb[1]);
      mma16816<Elem>(o[nt + 1], pa0, 0u, pa2, 0u, vb[2], vb[3]);
    }
  });

  // The row sum over the quad, then the four warps' states merged through shared memory.
  l += __shfl_xor_sync(0xffffffffu, l, 1);
  l += __shfl_xor_sync(0xffffffffu, l, 2);
  float* sm_m = reinterpret_cast<float*>(smem_raw);  // [4][8]
  float* sm_l = sm_m + 32;                           // [4][8]
  float* sm_o = sm_l + 32;                           // [4][8][D]
  if (gq < 8) {
    if (tq == 0) {
      sm_m[warp * 8 + gq] = m;
      sm_l[warp * 8 + gq] = l;
    }
#pragma unroll
    for (int nt = 0; nt < D / 8; ++nt) {
      sm_o[(warp * 8 + gq) * D + nt * 8 + 2 * tq] = o[nt][0];
      sm_o[(warp * 8 + gq) * D + nt * 8 + 2 * tq + 1] = o[nt][1];
    }
  }
  __syncthreads();
  write_split_output<D>(sm_m, sm_l, sm_o, 4, 8, nq, a, b, q0, split);
}

}  // namespace fasa::cuda::kernels
