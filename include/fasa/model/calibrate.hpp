// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Offline calibration on a real model (FASA Sec. 3.2, Alg. 1): run the model densely over a
// calibration text, and at each decode step measure, for every layer and selection unit, the
// contextual agreement of each FC with the full attention logits (FASA Eq. 4).
//
// The text is teacher-forced: the first `prefill` tokens go in as one dense prefill, then each
// following token is decoded one at a time and its post-RoPE query is scored against every
// cached key, itself included. (The paper measures on tokens the model generates; feeding the
// text's own tokens gives the same kind of decode-time query, deterministically, on real text.)

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "fasa/calib/contextual_agreement.hpp"
#include "fasa/core/error.hpp"
#include "fasa/model/llama.hpp"

namespace fasa::model {

struct calibration_run {
  std::int64_t prefill = 1024;     // tokens prefilled densely before the first measured step
  std::int64_t decode_steps = 64;  // measured decode steps
  std::vector<int> k_values = calib::default_k_values();
  selection_granularity granularity = selection_granularity::query_head;
  positional::fc_mapping mapping = positional::fc_mapping::rotation_pairs;
  // Called after each measured step with (steps done, steps in all), e.g. for a progress bar.
  std::function<void(std::int64_t, std::int64_t)> progress;
};

// Accumulates CA over run.decode_steps decode steps of `tokens` on `model`, whose layers must all
// be dense with contiguous host caches (dense_layers<...>). The model is reset first.
inline calib::ca_accumulator calibrate(llama_model& model, std::span<const std::int32_t> tokens,
                                       const calibration_run& run) {
  const auto& c = model.config();
  FASA_CHECK(run.prefill >= 1 && run.decode_steps >= 1, "calibrate: prefill (", run.prefill,
             ") and decode_steps (", run.decode_steps, ") must be at least 1");
  FASA_CHECK(static_cast<std::int64_t>(tokens.size()) >= run.prefill + run.decode_steps,
             "calibrate: the calibration text has ", tokens.size(), " tokens, fewer than prefill (",
             run.prefill, ") + decode_steps (", run.decode_steps, ")");
  FASA_CHECK(model.capacity() >= run.prefill + run.decode_steps, "calibrate: the model's cache (",
             model.capacity(),
             " tokens) cannot hold prefill + decode_steps = ", run.prefill + run.decode_steps);
  calib::ca_config config;
  config.num_layers = c.n_layers;
  config.num_q_heads = c.n_heads;
  config.num_kv_heads = c.n_kv_heads;
  config.granularity = run.granularity;
  config.k_values = run.k_values;
  const positional::rope pe = c.rope(run.mapping);
  calib::ca_accumulator total(pe, config);
  for (int l = 0; l < c.n_layers; ++l)
    FASA_CHECK(model.layer(l).keys().data != nullptr, "calibrate: layer ", l, " runs '",
               model.layer(l).description(),
               "', whose keys are not a contiguous host cache; calibrate on a dense model");

  // One accumulator per thread (ca_accumulator is not thread-safe), merged at the end.
  int threads = 1;
#if defined(_OPENMP)
  threads = omp_get_max_threads();
#endif
  std::vector<calib::ca_accumulator> per_thread(static_cast<std::size_t>(threads), total);
  std::vector<float> q_rot(static_cast<std::size_t>(c.n_heads * c.head_dim));
  model.set_decode_observer(
      [&](int layer, std::span<const float> q, std::int64_t pos, const layer_attention& attn) {
        // the step's post-RoPE queries, [n_heads, head_dim]
        std::copy(q.begin(), q.end(), q_rot.begin());
        for (int h = 0; h < c.n_heads; ++h) pe.rotate(q_rot.data() + h * c.head_dim, pos);
        const host_keys_view keys = attn.keys();
        const int units = config.num_units();
        const std::int64_t t = pos + 1;
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic)
#endif
        for (int u = 0; u < units; ++u) {
          int tid = 0;
#if defined(_OPENMP)
          tid = omp_get_thread_num();
#endif
          const std::int64_t first_q = static_cast<std::int64_t>(u) * config.queries_per_unit();
          per_thread[static_cast<std::size_t>(tid)].add(
              layer, u, q_rot.data() + first_q * c.head_dim,
              keys.data + config.kv_head_of_unit(u) * keys.kv_head_stride, t);
        }
      });
  model.reset();
  try {
    model.prefill(tokens.first(static_cast<std::size_t>(run.prefill)));
    for (std::int64_t s = 0; s < run.decode_steps; ++s) {
      model.decode(tokens[static_cast<std::size_t>(run.prefill + s)]);
      if (run.progress) run.progress(s + 1, run.decode_steps);
    }
  } catch (...) {
    model.set_decode_observer({});
    throw;
  }
  model.set_decode_observer({});
  calib::ca_accumulator merged = std::move(per_thread.front());
  for (std::size_t i = 1; i < per_thread.size(); ++i) merged.merge(per_thread[i]);
  return merged;
}

}  // namespace fasa::model
