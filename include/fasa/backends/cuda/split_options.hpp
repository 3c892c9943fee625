// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// How cuda::batch_decoder spreads a step over blocks: a unit's tokens over attention blocks
// (flash-decoding) and the cached rows over TIP blocks. Plain
// C++ (no CUDA types), so host code such as fasa-bench's flags can hold it too. Defaults from
// benchmarks/cuda/sweep_splits.sh on the H200 (benchmarks/cuda/NOTES.md, v8 and v9).

namespace fasa::cuda {

struct split_options {
  double waves = 4.0;         // dense: blocks launched, in multiples of those the GPU holds at once
  double gather_waves = 2.0;  // the same for FAC over gathered rows (short, latency-bound)
  int min_chunk = 64;         // tokens per split at least (rounded up to a multiple of 64)
  int max_splits = 16;        // splits per unit at most: the merge walks them one by one
  double tip_waves = 1.0;     // TIP: blocks launched, in multiples of those the GPU holds at once
  // TIP's loads: 0 into registers, 3 through a ring of 3 passes in shared memory (cp.async),
  // -1 the ring where a row is scored for several units (query_head), registers elsewhere
  int tip_stages = -1;
  // TIP's loads as bulk copies (sm_90's tensor memory accelerator) of 16 KB tiles of rows through
  // a ring of this many tiles in shared memory (2, 3 or 4), where a KV head's scored rows are
  // one contiguous run (the FASA-C slab); replaces tip_stages' choice where it applies. 0: off;
  // -1: 3 tiles where a row is scored for several units (query_head with GQA), up to 8 % faster
  // there (NOTES.md v12), off under kv_head, where it measured slower
  int tip_bulk = -1;
  // Programmatic dependent launch (sm_90): each kernel of a step may be launched while the one
  // before it still runs (it waits for it before touching memory), hiding the launch latency
  // between the step's dependent kernels. 0: off, 1: on, -1: on for a batch of one sequence,
  // where a step is a chain of short kernels, as measured (NOTES.md v12)
  int pdl = -1;
  // TIP and the top-k as one kernel (kernels/tip_select.cuh): a thread block cluster of this
  // many blocks (2, 4, 8 or 16) per (sequence, KV head) scores the head's rows and selects,
  // meeting at cluster barriers instead of kernel boundaries (sm_90, the scored rows 4, 8 or 16
  // vectors wide, at most 4 units per KV head; elsewhere the three-kernel path runs). 0: off;
  // -1: on where a KV head has one selection unit (kv_head granularity) and the context is at
  // most 32K tokens or the batch has as many (sequence, KV head) pairs as SMs, with clusters of
  // at most half the blocks that fill the GPU once (2 to 16), as measured (NOTES.md v13)
  int select_cluster = -1;
  // In that kernel, the cluster size from which block 0 alone finds each radix pass's bin of the
  // k-th best and writes it into the other blocks (one more cluster barrier a pass) instead of
  // every block copying block 0's counts over distributed shared memory and searching them
  // itself: 2, 4, 8 or 16; 0: never. As the only way (NOTES.md v18) it measured 1.00-1.05x with
  // 16-block clusters (batch 1) and 0.97-0.99x with 2 and 4; off until this choice by size is
  // measured too
  int select_lead_from = 0;
  // Each unit's kept tokens sorted ascending after the top-k (kernels::sort_kept, lists of up to
  // 8,192 tokens): the attention then sums the same rows in the same order at every run, so
  // outputs repeat bit for bit and FASA-M's equal FASA-C's; off, the order the top-k's atomics
  // hand out (outputs equal to rounding). One more kernel per step.
  bool sort_selection = true;
};

}  // namespace fasa::cuda
