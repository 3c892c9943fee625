// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// select_attend: TopK-I and FAC (FASA Eqs. 7-8) of one selection unit in one block, for steps
// with few units and short kept lists, where the separate kernels' launches and hand-offs cost
// more than their work (batch 1: five dependent kernels of a few microseconds each). The block
// runs the same three stages as the separate kernels, one after the other:
//   filter_row (the whole row, one block), finish_row, then attend_work over the unit's whole
// kept list as a single split whose output is the final one (no merge). It starts where
// tip_scores left off: the first radix digit's bin found by TIP's last block.

#include <cstdint>

#include "fasa/backends/cuda/kernels/attend_split.cuh"
#include "fasa/backends/cuda/kernels/topk_radix.cuh"

namespace fasa::cuda::kernels {

// grid: (units, batch); block: attend_threads; dynamic shared memory attend_smem_bytes().
// k: the top-k's arguments (k.units == units); a: gather attention with a.part_o the final
// output [batch, num_q_heads, head_dim], a.max_splits == 1 and a.part_lse room for one value
// per query head. QMAX >= queries per unit.
template <class Elem, class St, int D, int QMAX>
__global__ __launch_bounds__(attend_threads) void select_attend(St st, const Elem* cache,
                                                                std::int64_t seq_elems, topk_args k,
                                                                attend_args a) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int unit = blockIdx.x, b = blockIdx.y;
  const std::int64_t row = static_cast<std::int64_t>(b) * k.units + unit;
  filter_row<attend_threads>(k, row, 0, 1);
  __syncthreads();  // the filter's output and candidates, for the finish
  finish_row<attend_threads>(k, row);
  __syncthreads();  // the kept list, for the attention
  split_work w;
  w.split = 0;
  w.unit = unit;
  w.b = b;
  const int group = a.shape.group_size();
  w.kv = a.unit_is_query_head ? unit / group : unit;
  w.nq = a.unit_is_query_head ? 1 : group;
  w.q0 = a.unit_is_query_head ? unit : unit * group;
  w.begin = 0;
  w.end = attend_count(a, a.lengths[b]);
  attend_work<Elem, St, D, QMAX>(st, cache, seq_elems, a, w, smem_raw);
}

}  // namespace fasa::cuda::kernels
