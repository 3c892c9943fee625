// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// FASA-M's kernels (storage::split_offload on the GPU): the far tier (the rest of the keys and
// all values) lives in pinned host memory mapped into the GPU's address space, the near tier
// (the dominant-dim slab) in device memory. Between them sits a row pool: per (sequence, KV
// head), P full rows (slab, rest and value) in device memory, laid out as a split_dominant
// cache of P tokens, with the token each slot holds. P is the most rows a KV head can need in
// one step (its units' budgets: group x keep under query_head, keep under kv_head), so a step's
// rows always fit, and rows an earlier step fetched stay until their slot is needed.
//  - plan_rows, after the top-k: the union of the KV head's units' kept tokens is looked up in
//    the pool (a hash table of its slots, rebuilt each step); tokens already there are hits,
//    the others (each once, however many units kept it) are misses, assigned to slots no token
//    of this step uses. Each unit's list of kept tokens becomes a list of pool slots.
//  - fetch_rows: the misses alone are read over the bus (zero-copy: one 16-byte load per lane,
//    enough rows in flight to keep the link busy), their slab parts from device memory.
//  - FASA-C's own gathering attention kernels then run on the pool with the slot lists: the
//    same rows in the same order, the same arithmetic, so the same output as FASA-C's.
// Deduplication and reuse are both exact: a slot holds a token's row as written, and writing a
// token (write_tokens) empties the slots that held it.

#include <cstdint>

#include <cub/block/block_scan.cuh>

#include "fasa/backends/cuda/common.cuh"
#include "fasa/backends/cuda/kernels/prepare.cuh"
#include "fasa/core/budget.hpp"
#include "fasa/policies/storage/split_offload.hpp"

namespace fasa::cuda::kernels {

// The two tiers of a batch's caches (fill_hashed in prepare.cuh writes through at()). Sequence b's
// near tier starts at near + b * near_stride, its far tier (a device-usable pointer into mapped
// host memory) at far + b * far_stride; an element index i of the layout is near when i <
// near_elements, else far at i - near_elements.
template <class Elem>
struct tiers {
  Elem* near = nullptr;
  std::int64_t near_stride = 0;
  Elem* far = nullptr;
  std::int64_t far_stride = 0;
  std::int64_t near_elements = 0;
  __host__ __device__ Elem* at(int b, std::int64_t index) const {
    return index < near_elements ? near + b * near_stride + index
                                 : far + b * far_stride + (index - near_elements);
  }
};

// The row pool's bookkeeping, every array per (sequence, KV head) pair p = b * kv_heads + kv.
struct pool_args {
  const std::int32_t* idx;  // [batch, units, idx_stride]: the kept tokens of each unit
  std::int64_t idx_stride;
  const int* lengths;                         // [batch]
  token_budget budget = token_budget::all();  // a unit keeps budget.keep(lengths[b]) tokens
  int units;                                  // selection units (query heads or KV heads)
  int per_kv;  // units per KV head: the group under query_head, else 1
  int kv_heads;
  std::int64_t pool;        // P: slots per pair
  std::int32_t* slot_tok;   // [pairs, P]: the token in each slot, -1 for none
  std::int32_t* slot_idx;   // [batch, units, idx_stride]: each kept token's slot (out)
  std::int32_t* miss_tok;   // [pairs, P]: this step's misses (out) ...
  std::int32_t* miss_slot;  // [pairs, P]: ... and the slots they go to (out)
  int* miss_count;          // [pairs] (out)
  // The hash table of a pair's slots (hsize, a power of two >= 2P, keys and values) and a flag
  // per slot: in dynamic shared memory where they fit (hash_global null), else here.
  std::int64_t hsize;
  std::int32_t* hash_global;   // [pairs, 2 * hsize] keys then values, or null
  unsigned char* used_global;  // [pairs, P], or null
  // offload_fetch::host_gather: copies of miss_tok and miss_count in mapped pinned memory, for
  // the host's gather (null otherwise).
  std::int32_t* miss_tok_host = nullptr;
  int* miss_count_host = nullptr;
};

constexpr int plan_threads = 512;

// Shared memory of plan_rows when the table and the flags live there.
__host__ __device__ constexpr std::int64_t plan_smem_bytes(std::int64_t hsize, std::int64_t pool) {
  return hsize * 2 * 4 + (pool + 15) / 16 * 16;
}

__device__ __forceinline__ std::int64_t pool_hash(std::int32_t t, std::int64_t hsize) {
  return static_cast<std::int64_t>(hash32(static_cast<std::uint32_t>(t)) & (hsize - 1));
}

// grid: (kv_heads, batch); block: plan_threads. See the file comment.
__global__ void __launch_bounds__(plan_threads) plan_rows(pool_args p) {
  grid_dependency_sync();  // programmatic dependent launch (common.cuh)
  extern __shared__ __align__(16) unsigned char plan_smem[];
  using scan = cub::BlockScan<int, plan_threads>;
  __shared__ typename scan::TempStorage scan_tmp;
  __shared__ int misses;
  const int kv = blockIdx.x, b = blockIdx.y, tid = threadIdx.x;
  const std::int64_t pair = static_cast<std::int64_t>(b) * p.kv_heads + kv;
  const std::int64_t P = p.pool, H = p.hsize;
  std::int32_t* hkey =
      p.hash_global ? p.hash_global + pair * 2 * H : reinterpret_cast<std::int32_t*>(plan_smem);
  std::int32_t* hval = hkey + H;
  unsigned char* used =
      p.used_global ? p.used_global + pair * P : plan_smem + H * 2 * sizeof(std::int32_t);
  std::int32_t* slot_tok = p.slot_tok + pair * P;
  std::int32_t* miss_tok = p.miss_tok + pair * P;
  std::int32_t* miss_slot = p.miss_slot + pair * P;
  const std::int64_t keep = p.budget.keep(p.lengths[b]);
  const std::int64_t entries = keep * p.per_kv;  // (unit of the KV head, rank) pairs
  const auto list_of = [&](std::int64_t e) {     // entry e's place in idx / slot_idx
    const std::int64_t j = e / keep, i = e % keep;
    const int u = p.per_kv > 1 ? kv * p.per_kv + static_cast<int>(j) : kv;
    return (static_cast<std::int64_t>(b) * p.units + u) * p.idx_stride + i;
  };
  // 1. An empty table, no slot used.
  for (std::int64_t i = tid; i < H; i += plan_threads) {
    hkey[i] = -1;
    hval[i] = -1;
  }
  for (std::int64_t s = tid; s < P; s += plan_threads) used[s] = 0;
  if (tid == 0) misses = 0;
  __syncthreads();
  // 2. Every held slot into the table (its tokens are distinct).
  for (std::int64_t s = tid; s < P; s += plan_threads) {
    const std::int32_t t = slot_tok[s];
    if (t < 0) continue;
    for (std::int64_t h = pool_hash(t, H);; h = (h + 1) & (H - 1))
      if (atomicCAS(&hkey[h], -1, t) == -1) {
        hval[h] = static_cast<std::int32_t>(s);
        break;
      }
  }
  __syncthreads();
  // 3. Each kept token: a hit marks its slot used; a token not in the table is inserted (with
  //    no slot yet) by the one entry whose insert wins, which lists it as a miss.
  for (std::int64_t e = tid; e < entries; e += plan_threads) {
    const std::int32_t t = p.idx[list_of(e)];
    for (std::int64_t h = pool_hash(t, H);; h = (h + 1) & (H - 1)) {
      std::int32_t k = hkey[h];
      if (k == -1) {
        k = atomicCAS(&hkey[h], -1, t);
        if (k == -1) {  // inserted: a miss
          const int m = atomicAdd(&misses, 1);
          miss_tok[m] = t;
          miss_slot[m] = static_cast<std::int32_t>(h);  // its table entry until step 4
          break;
        }
      }
      if (k == t) {
        const std::int32_t s = hval[h];  // -1: another entry's miss of this step
        if (s >= 0) used[s] = 1;
        break;
      }
    }
  }
  __syncthreads();
  // 4. The m-th miss takes the m-th slot no kept token uses (P >= the kept tokens, so there
  //    are enough); the slot's old token, not kept this step, leaves the pool.
  const int count = misses;
  int taken = 0;
  for (std::int64_t base = 0; base < P && taken < count; base += plan_threads) {
    const std::int64_t s = base + tid;
    const int free = s < P && !used[s] ? 1 : 0;
    int rank = 0, total = 0;
    scan(scan_tmp).ExclusiveSum(free, rank, total);
    if (free && taken + rank < count) {
      const int m = taken + rank;
      const std::int32_t h = miss_slot[m];
      hval[h] = static_cast<std::int32_t>(s);
      slot_tok[s] = miss_tok[m];
      miss_slot[m] = static_cast<std::int32_t>(s);
    }
    taken += total;
    __syncthreads();  // scan_tmp is reused
  }
  __syncthreads();
  // 5. Each unit's kept tokens as pool slots.
  for (std::int64_t e = tid; e < entries; e += plan_threads) {
    const std::int64_t at = list_of(e);
    const std::int32_t t = p.idx[at];
    std::int64_t h = pool_hash(t, H);
    while (hkey[h] != t) h = (h + 1) & (H - 1);
    p.slot_idx[at] = hval[h];
  }
  if (tid == 0) p.miss_count[pair] = count;
  if (p.miss_tok_host != nullptr) {  // the misses for the host's gather
    for (int m = tid; m < count; m += plan_threads) p.miss_tok_host[pair * P + m] = miss_tok[m];
    if (tid == 0) p.miss_count_host[pair] = count;
  }
}

// grid: (x, kv_heads, batch); block: any multiple of 32 (256). Copies each miss's whole row
// into its pool slot: the slab part from device memory, the rest and the value over the bus.
// `ps` lays out a sequence's pool (split_dominant, P tokens per KV head).
template <class Elem, int D>
__global__ void fetch_rows(storage::split_offload st, tiers<Elem> tier, storage::split_dominant ps,
                           Elem* pool, std::int64_t pool_stride, pool_args p) {
  grid_dependency_sync();
  constexpr int V = vec_elems<Elem>, KV = D / V;  // 16-byte vectors per key (and value) row
  const int kv = blockIdx.y, b = blockIdx.z;
  const std::int64_t pair = static_cast<std::int64_t>(b) * p.kv_heads + kv;
  const std::int64_t items = std::int64_t{p.miss_count[pair]} * 2 * KV;
  const std::int32_t* toks = p.miss_tok + pair * p.pool;
  const std::int32_t* slots = p.miss_slot + pair * p.pool;
  const int fw = st.slab_width;
  Elem* wb = pool + b * pool_stride;
  for (std::int64_t item = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
       item < items; item += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t m = item / (2 * KV);
    const int c = static_cast<int>(item % (2 * KV));
    const std::int64_t t = toks[m], s = slots[m];
    const Elem* src;
    Elem* dst;
    if (c >= KV) {  // a value vector
      const int col = (c - KV) * V;
      src = tier.at(b, st.value_row(kv, t) + col);
      dst = wb + ps.value_row(kv, s) + col;
    } else if (c * V < fw) {  // a slab vector (device memory)
      src = tier.at(b, st.slab_row(kv, t) + c * V);
      dst = wb + ps.slab_row(kv, s) + c * V;
    } else {  // a rest vector (host memory)
      src = tier.at(b, st.rest_row(kv, t) + (c * V - fw));
      dst = wb + ps.rest_row(kv, s) + (c * V - fw);
    }
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
  }
}

// offload_fetch::host_gather's fetch_rows: the same copies into the pool, the far parts from
// the staging rows the host gathered (host_gather.hpp: miss m of pair p at row offsets[p] + m,
// the rest of the key then the value), read over the bus in one sequential sweep.
template <class Elem, int D>
__global__ void fetch_staged(storage::split_offload st, tiers<Elem> tier, const Elem* stage,
                             const std::int64_t* offsets, storage::split_dominant ps, Elem* pool,
                             std::int64_t pool_stride, pool_args p) {
  grid_dependency_sync();
  constexpr int V = vec_elems<Elem>, KV = D / V;
  const int kv = blockIdx.y, b = blockIdx.z;
  const std::int64_t pair = static_cast<std::int64_t>(b) * p.kv_heads + kv;
  const std::int64_t items = std::int64_t{p.miss_count[pair]} * 2 * KV;
  const std::int32_t* toks = p.miss_tok + pair * p.pool;
  const std::int32_t* slots = p.miss_slot + pair * p.pool;
  const int fw = st.slab_width, rw = D - fw;
  const Elem* rows = stage + offsets[pair] * (rw + D);
  Elem* wb = pool + b * pool_stride;
  for (std::int64_t item = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
       item < items; item += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t m = item / (2 * KV);
    const int c = static_cast<int>(item % (2 * KV));
    const std::int64_t s = slots[m];
    const Elem* row = rows + m * (rw + D);
    const Elem* src;
    Elem* dst;
    if (c >= KV) {  // a value vector
      const int col = (c - KV) * V;
      src = row + rw + col;
      dst = wb + ps.value_row(kv, s) + col;
    } else if (c * V < fw) {  // a slab vector (device memory)
      src = tier.at(b, st.slab_row(kv, toks[m]) + c * V);
      dst = wb + ps.slab_row(kv, s) + c * V;
    } else {  // a rest vector (the staging row)
      src = row + (c * V - fw);
      dst = wb + ps.rest_row(kv, s) + (c * V - fw);
    }
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
  }
}

// grid: (kv_heads, batch); block: any. Empties the slots of sequence `only` (every sequence
// when negative) that hold a token in [t0, t1): tokens about to be rewritten.
__global__ void forget_tokens(std::int32_t* slot_tok, std::int64_t pool, int kv_heads, int only,
                              std::int64_t t0, std::int64_t t1) {
  const int kv = blockIdx.x, b = blockIdx.y;
  if (only >= 0 && b != only) return;
  std::int32_t* st = slot_tok + (static_cast<std::int64_t>(b) * kv_heads + kv) * pool;
  for (std::int64_t s = threadIdx.x; s < pool; s += blockDim.x)
    if (st[s] >= t0 && st[s] < t1) st[s] = -1;
}

// grid: (kv_heads, batch); block: any. Empties each slot whose hash of (seed, pair, slot) falls
// below `below` of 2^32: benchmarks replay one step with a chosen share of its rows missing.
__global__ void forget_share(std::int32_t* slot_tok, std::int64_t pool, int kv_heads,
                             std::uint32_t seed, std::uint64_t below) {
  grid_dependency_sync();
  const int kv = blockIdx.x, b = blockIdx.y;
  const std::int64_t pair = static_cast<std::int64_t>(b) * kv_heads + kv;
  std::int32_t* st = slot_tok + pair * pool;
  for (std::int64_t s = threadIdx.x; s < pool; s += blockDim.x) {
    const std::uint32_t h = hash32(static_cast<std::uint32_t>(s) ^
                                   hash32(static_cast<std::uint32_t>(pair) + seed * 0x9e3779b9U));
    if (h < below) st[s] = -1;
  }
}

}  // namespace fasa::cuda::kernels
