// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Offline calibration on a real model (FASA Sec. 3.2, Alg. 1): run the model densely over a
// calibration text, and at each decode step measure, for every layer and selection unit, the
// contextual agreement of each FC with the full attention logits (FASA Eq. 4).
//
// The text is teacher-forced: the first `prefill` tokens go in as a dense prefill (in one block,
// or in blocks of run.prefill_chunk tokens), then each
// following token is decoded one at a time and its post-RoPE query is scored against every
// cached key, itself included. (The paper measures on tokens the model generates; feeding the
// text's own tokens gives the same kind of decode-time query, deterministically, on real text.)
//
// calibrate() measures one sample at one granularity; calibrator measures several samples and
// several granularities in one pass of the model (fasa-calibrate's --samples and
// --granularity both).

#include <algorithm>
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
  // Tokens per prefill block; 0 prefills in one block. Blocks give a long prefill something to
  // report progress on; the result is the same dense causal prefill, equal to one block up to
  // float rounding in the matrix products.
  std::int64_t prefill_chunk = 0;
  // Called after each measured step with (steps done, steps in all), e.g. for a progress bar.
  std::function<void(std::int64_t, std::int64_t)> progress;
  // Called after each prefill block with (tokens prefilled, prefill).
  std::function<void(std::int64_t, std::int64_t)> prefill_progress;
};

// CA of one model measured at one or more granularities in the same pass, over one or more
// samples: each add_sample() prefills a sample's first run.prefill tokens and decodes the next
// run.decode_steps, and every decode step adds one CA value per (layer, unit, FC, K) to the
// accumulator of each granularity. The mean over all samples' steps is the expectation over
// (q, K) ~ Omega that FASA Eq. 5 ranks FCs by. One pass serves both granularities because the
// forward pass, not the CA count, is most of the cost. run.granularity is ignored here; the
// list says which granularities to measure.
class calibrator {
 public:
  calibrator(const llama_config& c, calibration_run run,
             std::vector<selection_granularity> granularities)
      : run_(std::move(run)), granularities_(std::move(granularities)) {
    FASA_CHECK(run_.prefill >= 1 && run_.decode_steps >= 1, "calibrate: prefill (", run_.prefill,
               ") and decode_steps (", run_.decode_steps, ") must be at least 1");
    FASA_CHECK(run_.prefill_chunk >= 0,
               "calibrate: prefill_chunk must be >= 0 (0: one block), got ", run_.prefill_chunk);
    FASA_CHECK(!granularities_.empty(), "calibrate: no granularity to measure");
    for (std::size_t i = 0; i < granularities_.size(); ++i)
      for (std::size_t j = 0; j < i; ++j)
        FASA_CHECK(granularities_[i] != granularities_[j], "calibrate: granularity ",
                   to_string(granularities_[i]), " is listed twice");
    const positional::rope pe = c.rope(run_.mapping);
    for (selection_granularity g : granularities_) {
      calib::ca_config config;
      config.num_layers = c.n_layers;
      config.num_q_heads = c.n_heads;
      config.num_kv_heads = c.n_kv_heads;
      config.granularity = g;
      config.k_values = run_.k_values;
      totals_.emplace_back(pe, config);
    }
  }
  // One granularity, run.granularity.
  calibrator(const llama_config& c, const calibration_run& run)
      : calibrator(c, run, {run.granularity}) {}

  const calibration_run& run() const { return run_; }
  const std::vector<selection_granularity>& granularities() const { return granularities_; }
  std::int64_t samples() const { return samples_; }

  // Replaces run().prefill_progress and run().progress, e.g. with a bar per sample; empty
  // functions report nothing.
  void set_progress(std::function<void(std::int64_t, std::int64_t)> prefill_progress,
                    std::function<void(std::int64_t, std::int64_t)> progress) {
    run_.prefill_progress = std::move(prefill_progress);
    run_.progress = std::move(progress);
  }

  // The sums so far at granularity g (one of granularities()).
  const calib::ca_accumulator& accumulator(selection_granularity g) const {
    for (std::size_t i = 0; i < granularities_.size(); ++i)
      if (granularities_[i] == g) return totals_[i];
    FASA_FAIL("calibrate: granularity ", to_string(g), " was not measured");
  }

  // Runs one sample through `model` and adds its decode steps. tokens: at least prefill +
  // decode_steps ids, of which exactly those are used. The model's layers must all be dense with
  // contiguous host caches (dense_layers<...>); it is reset first.
  void add_sample(llama_model& model, std::span<const std::int32_t> tokens) {
    const auto& c = model.config();
    const calibration_run& run = run_;
    FASA_CHECK(c.n_layers == totals_.front().config().num_layers &&
                   c.n_heads == totals_.front().config().num_q_heads &&
                   c.n_kv_heads == totals_.front().config().num_kv_heads &&
                   c.head_dim == totals_.front().head_dim(),
               "calibrate: the model's shape differs from the one this calibrator was made for");
    FASA_CHECK(static_cast<std::int64_t>(tokens.size()) >= run.prefill + run.decode_steps,
               "calibrate: the calibration text has ", tokens.size(),
               " tokens, fewer than prefill (", run.prefill, ") + decode_steps (", run.decode_steps,
               ")");
    FASA_CHECK(model.capacity() >= run.prefill + run.decode_steps, "calibrate: the model's cache (",
               model.capacity(),
               " tokens) cannot hold prefill + decode_steps = ", run.prefill + run.decode_steps);
    for (int l = 0; l < c.n_layers; ++l)
      FASA_CHECK(model.layer(l).keys().data != nullptr, "calibrate: layer ", l, " runs '",
                 model.layer(l).description(),
                 "', whose keys are not a contiguous host cache; calibrate on a dense model");
    const positional::rope pe = c.rope(run.mapping);

    // One accumulator per (granularity, thread), since ca_accumulator is not thread-safe; merged
    // into the totals at the end. The work of a step is every unit of every granularity.
    int threads = 1;
#if defined(_OPENMP)
    threads = omp_get_max_threads();
#endif
    std::vector<std::vector<calib::ca_accumulator>> per_thread;
    struct job {
      std::size_t g;
      int unit;
    };
    std::vector<job> jobs;
    for (std::size_t g = 0; g < totals_.size(); ++g) {
      per_thread.emplace_back(static_cast<std::size_t>(threads),
                              calib::ca_accumulator(totals_[g].fcs(), totals_[g].config()));
      for (int u = 0; u < totals_[g].num_units(); ++u) jobs.push_back({g, u});
    }
    std::vector<float> q_rot(static_cast<std::size_t>(c.n_heads * c.head_dim));
    model.set_decode_observer([&](int layer, std::span<const float> q, std::int64_t pos,
                                  const layer_attention& attn) {
      // the step's post-RoPE queries, [n_heads, head_dim]
      std::copy(q.begin(), q.end(), q_rot.begin());
      for (int h = 0; h < c.n_heads; ++h) pe.rotate(q_rot.data() + h * c.head_dim, pos);
      const host_keys_view keys = attn.keys();
      const std::int64_t t = pos + 1;
      const auto n_jobs = static_cast<std::int64_t>(jobs.size());
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic)
#endif
      for (std::int64_t i = 0; i < n_jobs; ++i) {
        int tid = 0;
#if defined(_OPENMP)
        tid = omp_get_thread_num();
#endif
        const job& j = jobs[static_cast<std::size_t>(i)];
        auto& acc = per_thread[j.g][static_cast<std::size_t>(tid)];
        const calib::ca_config& config = acc.config();
        const std::int64_t first_q = static_cast<std::int64_t>(j.unit) * config.queries_per_unit();
        acc.add(layer, j.unit, q_rot.data() + first_q * c.head_dim,
                keys.data + config.kv_head_of_unit(j.unit) * keys.kv_head_stride, t);
      }
    });
    model.reset();
    try {
      const std::int64_t chunk = run.prefill_chunk > 0 ? run.prefill_chunk : run.prefill;
      for (std::int64_t done = 0; done < run.prefill;) {
        const std::int64_t n = std::min(chunk, run.prefill - done);
        model.prefill(tokens.subspan(static_cast<std::size_t>(done), static_cast<std::size_t>(n)));
        done += n;
        if (run.prefill_progress) run.prefill_progress(done, run.prefill);
      }
      for (std::int64_t s = 0; s < run.decode_steps; ++s) {
        model.decode(tokens[static_cast<std::size_t>(run.prefill + s)]);
        if (run.progress) run.progress(s + 1, run.decode_steps);
      }
    } catch (...) {
      model.set_decode_observer({});
      throw;
    }
    model.set_decode_observer({});
    for (std::size_t g = 0; g < totals_.size(); ++g)
      for (const auto& acc : per_thread[g]) totals_[g].merge(acc);
    ++samples_;
  }

 private:
  calibration_run run_;
  std::vector<selection_granularity> granularities_;
  std::vector<calib::ca_accumulator> totals_;  // one per granularity, in that order
  std::int64_t samples_ = 0;
};

// Accumulates CA over run.decode_steps decode steps of `tokens` on `model`, whose layers must all
// be dense with contiguous host caches (dense_layers<...>). The model is reset first.
inline calib::ca_accumulator calibrate(llama_model& model, std::span<const std::int32_t> tokens,
                                       const calibration_run& run) {
  calibrator cal(model.config(), run);
  cal.add_sample(model, tokens);
  return cal.accumulator(run.granularity);
}

// The same over several samples (windows of a text, or several texts), each at least prefill +
// decode_steps tokens: the accumulator then holds samples.size() * decode_steps steps per
// (layer, unit), and its mean is over all of them.
inline calib::ca_accumulator calibrate(llama_model& model,
                                       std::span<const std::vector<std::int32_t>> samples,
                                       const calibration_run& run) {
  FASA_CHECK(!samples.empty(), "calibrate: no calibration sample");
  calibrator cal(model.config(), run);
  for (const auto& tokens : samples) cal.add_sample(model, tokens);
  return cal.accumulator(run.granularity);
}

}  // namespace fasa::model
