// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Rotary position embedding (RoPE) and its frequency-chunk (FC) map.
//
// RoPE rotates each head vector as rotary_dim/2 two-dimensional pairs, pair i at angular speed
// inv_freq_i = theta^(-2i / rotary_dim) radians per token. Which dims form pair i depends on the
// layout of the tensors:
//   interleaved  (Meta/RoFormer, GGUF files, llama2.c): pair i = dims (2i, 2i+1)
//   rotate_half  (Hugging Face, GPT-NeoX):              pair i = dims (i, i + rotary_dim/2)
// An FC is one rotation pair (FASA Sec. 3.1). The FC -> dims map is a separate knob because the
// paper's released code took adjacent dims (2i, 2i+1) of rotate-half tensors, i.e. two halves of
// two different pairs with neighbouring frequencies (FASA.md Sec. 2.2):
//   fc_mapping::rotation_pairs  FC i = rotation pair i (the paper's definition)
//   fc_mapping::adjacent_dims   FC i = dims (2i, 2i+1) whatever the layout (code compatibility)
// With partial rotary dims (rotary_dim < head_dim) the dims past rotary_dim are not rotated and
// form the FCs rotary_dim/2 .. head_dim/2-1 as adjacent pairs of frequency zero.
//
// Layout and mapping are runtime values rather than template parameters: a model file decides
// them at load time, and the per-pair branch costs nothing next to the memory traffic.

#include <math.h>  // ::pow, ::cos, ::sin: the names both g++ and nvcc device code resolve

#include <cmath>
#include <cstdint>

#include "fasa/config.hpp"
#include "fasa/core/error.hpp"
#include "fasa/core/shape.hpp"
#include "fasa/policies/concepts.hpp"

namespace fasa::positional {

enum class rope_layout : std::uint8_t { interleaved, rotate_half };
enum class fc_mapping : std::uint8_t { rotation_pairs, adjacent_dims };

constexpr const char* to_string(rope_layout l) {
  return l == rope_layout::interleaved ? "interleaved" : "rotate_half";
}
constexpr const char* to_string(fc_mapping m) {
  return m == fc_mapping::rotation_pairs ? "rotation_pairs" : "adjacent_dims";
}

// Frequency scaling for context extension.
struct rope_scaling {
  enum class kind : std::uint8_t { none, linear, llama3 };
  kind type = kind::none;
  double factor = 1.0;  // linear: positions divided by factor; llama3: low-frequency divisor
  double low_freq_factor = 1.0;           // llama3 only
  double high_freq_factor = 4.0;          // llama3 only
  double original_max_position = 8192.0;  // llama3 only: the pre-extension context length

  static rope_scaling linear(double factor) { return {kind::linear, factor, 1.0, 4.0, 8192.0}; }
  static rope_scaling llama3(double factor, double low, double high, double original_max) {
    return {kind::llama3, factor, low, high, original_max};
  }
};

class rope {
 public:
  using policy_tag = positional_encoding_tag;

  // head_dim: dims per head (even); theta: the RoPE base; rotary_dim: 0 means head_dim.
  rope(int head_dim, double theta, rope_layout layout,
       fc_mapping mapping = fc_mapping::rotation_pairs, rope_scaling scaling = {},
       int rotary_dim = 0)
      : head_dim_(head_dim),
        rotary_dim_(rotary_dim == 0 ? head_dim : rotary_dim),
        theta_(theta),
        layout_(layout),
        mapping_(mapping),
        scaling_(scaling) {
    FASA_CHECK(head_dim > 0 && head_dim % 2 == 0,
               "RoPE needs a positive even head_dim (it rotates pairs of dims), got ", head_dim);
    FASA_CHECK(rotary_dim_ > 0 && rotary_dim_ % 2 == 0 && rotary_dim_ <= head_dim,
               "RoPE rotary_dim must be even and in [2, head_dim=", head_dim, "], got ",
               rotary_dim_);
    FASA_CHECK(theta > 0.0 && std::isfinite(theta), "RoPE theta must be positive, got ", theta);
    if (scaling.type != rope_scaling::kind::none)
      FASA_CHECK(scaling.factor > 0.0, "RoPE scaling factor must be positive, got ",
                 scaling.factor);
    if (scaling.type == rope_scaling::kind::llama3)
      FASA_CHECK(scaling.high_freq_factor > scaling.low_freq_factor &&
                     scaling.low_freq_factor > 0.0 && scaling.original_max_position > 0.0,
                 "llama3 RoPE scaling needs 0 < low_freq_factor < high_freq_factor and a positive "
                 "original_max_position, got low=",
                 scaling.low_freq_factor, " high=", scaling.high_freq_factor,
                 " original_max_position=", scaling.original_max_position);
  }

  static rope interleaved(int head_dim, double theta, rope_scaling scaling = {}) {
    return rope(head_dim, theta, rope_layout::interleaved, fc_mapping::rotation_pairs, scaling);
  }
  static rope rotate_half(int head_dim, double theta, rope_scaling scaling = {}) {
    return rope(head_dim, theta, rope_layout::rotate_half, fc_mapping::rotation_pairs, scaling);
  }
  // The FC mapping of the paper's released code: adjacent dims of rotate-half tensors.
  static rope rotate_half_adjacent_fcs(int head_dim, double theta, rope_scaling scaling = {}) {
    return rope(head_dim, theta, rope_layout::rotate_half, fc_mapping::adjacent_dims, scaling);
  }

  FASA_HOST_DEVICE int head_dim() const { return head_dim_; }
  FASA_HOST_DEVICE int num_fcs() const { return head_dim_ / 2; }
  FASA_HOST_DEVICE int rotary_dim() const { return rotary_dim_; }
  FASA_HOST_DEVICE int num_rotation_pairs() const { return rotary_dim_ / 2; }
  FASA_HOST_DEVICE double theta() const { return theta_; }
  FASA_HOST_DEVICE rope_layout layout() const { return layout_; }
  FASA_HOST_DEVICE fc_mapping mapping() const { return mapping_; }
  FASA_HOST_DEVICE const rope_scaling& scaling() const { return scaling_; }

  // The two dims of rotation pair i (i < num_rotation_pairs()).
  FASA_HOST_DEVICE dim_pair rotation_pair_dims(int i) const {
    return layout_ == rope_layout::interleaved ? dim_pair{2 * i, 2 * i + 1}
                                               : dim_pair{i, i + rotary_dim_ / 2};
  }

  // FC i -> its two dims.
  FASA_HOST_DEVICE dim_pair fc_dims(int fc) const {
    if (mapping_ == fc_mapping::adjacent_dims) return {2 * fc, 2 * fc + 1};
    const int pairs = rotary_dim_ / 2;
    if (fc < pairs) return rotation_pair_dims(fc);
    const int extra = fc - pairs;  // un-rotated tail of a partial-rotary head
    return {rotary_dim_ + 2 * extra, rotary_dim_ + 2 * extra + 1};
  }

  // Angular speed of rotation pair i in radians per token, after frequency scaling.
  FASA_HOST_DEVICE double inv_frequency(int i) const {
    const double base = ::pow(theta_, -2.0 * i / static_cast<double>(rotary_dim_));
    switch (scaling_.type) {
      case rope_scaling::kind::none:
        return base;
      case rope_scaling::kind::linear:
        return base / scaling_.factor;
      case rope_scaling::kind::llama3: {
        // Llama 3.1: keep high frequencies, divide low ones by factor, blend in between.
        const double two_pi = 6.283185307179586;
        const double wavelen = two_pi / base;
        const double high_wavelen = scaling_.original_max_position / scaling_.high_freq_factor;
        const double low_wavelen = scaling_.original_max_position / scaling_.low_freq_factor;
        if (wavelen < high_wavelen) return base;
        if (wavelen > low_wavelen) return base / scaling_.factor;
        const double smooth =
            (scaling_.original_max_position / wavelen - scaling_.low_freq_factor) /
            (scaling_.high_freq_factor - scaling_.low_freq_factor);
        return (1.0 - smooth) * base / scaling_.factor + smooth * base;
      }
    }
    return base;
  }

  // x: [head_dim], rotated in place for absolute position pos. Each pair (a, b) becomes
  // (a cos - b sin, a sin + b cos) with angle pos * inv_freq_i; angles in double so that long
  // positions keep their precision.
  FASA_HOST_DEVICE void rotate(float* x, std::int64_t pos) const {
    const int pairs = rotary_dim_ / 2;
    for (int i = 0; i < pairs; ++i) {
      const double angle = static_cast<double>(pos) * inv_frequency(i);
      const double c = ::cos(angle);
      const double s = ::sin(angle);
      const dim_pair d = rotation_pair_dims(i);
      const double a = x[d.first];
      const double b = x[d.second];
      x[d.first] = static_cast<float>(a * c - b * s);
      x[d.second] = static_cast<float>(a * s + b * c);
    }
  }

 private:
  int head_dim_;
  int rotary_dim_;
  double theta_;
  rope_layout layout_;
  fc_mapping mapping_;
  rope_scaling scaling_;
};

static_assert(PositionalEncoding<rope>);

}  // namespace fasa::positional
