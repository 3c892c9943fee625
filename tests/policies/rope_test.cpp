// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
// RoPE against the rotation formula written independently here, the relative-position property
// in both layouts, the FC maps, and the per-FC decomposition of the score (FASA Eq. 3).

#include <complex>
#include <numeric>
#include <set>

#include "fasa/policies/positional/rope.hpp"
#include "support.hpp"

using fasa::dim_pair;
using fasa::positional::fc_mapping;
using fasa::positional::rope;
using fasa::positional::rope_layout;
using fasa::positional::rope_scaling;

namespace {

// Interleaved RoPE as complex multiplication: (x_2i + i x_2i+1) * e^{i pos theta^(-2i/d)}.
std::vector<float> rotate_interleaved_complex(std::vector<float> x, long pos, double theta) {
  const std::size_t d = x.size();
  for (std::size_t i = 0; i < d / 2; ++i) {
    const double w = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(d));
    const std::complex<double> z(x[2 * i], x[2 * i + 1]);
    const std::complex<double> r = z * std::polar(1.0, static_cast<double>(pos) * w);
    x[2 * i] = static_cast<float>(r.real());
    x[2 * i + 1] = static_cast<float>(r.imag());
  }
  return x;
}

// Hugging Face's rotate-half form: x * cos + rotate_half(x) * sin, with cos/sin of
// [freqs, freqs] and rotate_half(x) = [-x2, x1].
std::vector<float> rotate_half_hf(const std::vector<float>& x, long pos, double theta) {
  const std::size_t d = x.size(), h = d / 2;
  std::vector<float> out(d);
  for (std::size_t j = 0; j < d; ++j) {
    const std::size_t i = j % h;
    const double angle = static_cast<double>(pos) *
                         std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(d));
    const double rot = j < h ? -static_cast<double>(x[j + h]) : static_cast<double>(x[j - h]);
    out[j] = static_cast<float>(x[j] * std::cos(angle) + rot * std::sin(angle));
  }
  return out;
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

}  // namespace

TEST_CASE("rope: interleaved layout matches the complex-rotation formula") {
  for (int d : {8, 64, 128}) {
    const rope pe = rope::interleaved(d, 10000.0);
    for (long pos : {0L, 1L, 17L, 4095L, 131071L}) {
      auto x =
          fasa::test::random_vector(static_cast<std::size_t>(d), 11u + static_cast<unsigned>(pos));
      const auto want = rotate_interleaved_complex(x, pos, 10000.0);
      pe.rotate(x.data(), pos);
      fasa::test::check_close(x, want, {1e-6, 1e-5}, "interleaved d=" + std::to_string(d));
    }
  }
}

TEST_CASE("rope: rotate-half layout matches Hugging Face's rotate_half formula") {
  for (int d : {8, 64, 128}) {
    const rope pe = rope::rotate_half(d, 500000.0);
    for (long pos : {0L, 3L, 999L, 65535L}) {
      auto x =
          fasa::test::random_vector(static_cast<std::size_t>(d), 5u + static_cast<unsigned>(pos));
      const auto want = rotate_half_hf(x, pos, 500000.0);
      pe.rotate(x.data(), pos);
      fasa::test::check_close(x, want, {1e-6, 1e-5}, "rotate_half d=" + std::to_string(d));
    }
  }
}

TEST_CASE("rope: q_m . k_n depends only on m - n, in both layouts") {
  for (rope_layout layout : {rope_layout::interleaved, rope_layout::rotate_half}) {
    const rope pe(64, 10000.0, layout);
    const auto q = fasa::test::random_vector(64, 1), k = fasa::test::random_vector(64, 2);
    auto score = [&](long m, long n) {
      auto qm = q, kn = k;
      pe.rotate(qm.data(), m);
      pe.rotate(kn.data(), n);
      return dot(qm, kn);
    };
    for (long delta : {0L, 1L, 5L, 300L}) {
      const double base = score(delta, 0);
      for (long shift : {1L, 77L, 4000L, 30000L}) {
        INFO("layout ", fasa::positional::to_string(layout), " delta ", delta, " shift ", shift);
        CHECK(score(delta + shift, shift) == doctest::Approx(base).epsilon(1e-4));
      }
    }
    // and it does change with m - n, so the check above can fail
    CHECK(std::abs(score(5, 0) - score(6, 0)) > 1e-3);
  }
}

TEST_CASE("rope: FC maps partition the dims; the paper-code mapping takes adjacent dims") {
  auto partition = [](const rope& pe) {
    std::set<int> dims;
    for (int i = 0; i < pe.num_fcs(); ++i) {
      dims.insert(pe.fc_dims(i).first);
      dims.insert(pe.fc_dims(i).second);
    }
    return static_cast<int>(dims.size()) == pe.head_dim() && *dims.begin() == 0 &&
           *dims.rbegin() == pe.head_dim() - 1;
  };
  const rope inter = rope::interleaved(128, 1e4);
  const rope half = rope::rotate_half(128, 1e4);
  const rope compat = rope::rotate_half_adjacent_fcs(128, 1e4);
  CHECK(partition(inter));
  CHECK(partition(half));
  CHECK(partition(compat));
  CHECK(inter.fc_dims(5) == dim_pair{10, 11});
  CHECK(half.fc_dims(5) == dim_pair{5, 69});
  CHECK(compat.fc_dims(5) == dim_pair{10, 11});
  CHECK(compat.fc_dims(40) == dim_pair{80, 81});
  // partial rotary: 32 of 64 dims rotate; the tail forms frequency-zero FCs of adjacent dims
  const rope partial(64, 1e4, rope_layout::rotate_half, fc_mapping::rotation_pairs, {}, 32);
  CHECK(partition(partial));
  CHECK(partial.fc_dims(3) == dim_pair{3, 19});
  CHECK(partial.fc_dims(16) == dim_pair{32, 33});
  auto x = fasa::test::random_vector(64, 9);
  const auto before = x;
  partial.rotate(x.data(), 1234);
  for (int i = 32; i < 64; ++i)
    CHECK(x[static_cast<std::size_t>(i)] == before[static_cast<std::size_t>(i)]);
}

TEST_CASE("rope: an FC is one rotation pair: its 2-D score depends only on m - n") {
  // With true pairs the per-FC score is translation invariant; with the paper code's adjacent
  // dims of a rotate-half tensor it is not (FASA.md Sec. 2.2): check both, so the mapping matters.
  const rope half = rope::rotate_half(64, 1e4);
  const rope compat = rope::rotate_half_adjacent_fcs(64, 1e4);
  const auto q = fasa::test::random_vector(64, 3), k = fasa::test::random_vector(64, 4);
  auto fc_score = [&](const rope& pe, int fc, long m, long n) {
    auto qm = q, kn = k;
    half.rotate(qm.data(), m);  // both read the same rotate-half tensors
    half.rotate(kn.data(), n);
    const dim_pair p = pe.fc_dims(fc);
    return static_cast<double>(qm[static_cast<std::size_t>(p.first)]) *
               kn[static_cast<std::size_t>(p.first)] +
           static_cast<double>(qm[static_cast<std::size_t>(p.second)]) *
               kn[static_cast<std::size_t>(p.second)];
  };
  for (int fc : {0, 1, 7}) {
    CHECK(fc_score(half, fc, 40, 10) ==
          doctest::Approx(fc_score(half, fc, 1040, 1010)).epsilon(1e-4));
    CHECK(std::abs(fc_score(compat, fc, 40, 10) - fc_score(compat, fc, 1040, 1010)) > 1e-3);
  }
}

TEST_CASE("rope: per-FC scores sum to the full score (FASA Eq. 3)") {
  for (const rope& pe : {rope::interleaved(128, 1e4), rope::rotate_half(128, 1e4),
                         rope::rotate_half_adjacent_fcs(128, 1e4)}) {
    auto q = fasa::test::random_vector(128, 21), k = fasa::test::random_vector(128, 22);
    pe.rotate(q.data(), 900);
    pe.rotate(k.data(), 17);
    double sum = 0;
    for (int i = 0; i < pe.num_fcs(); ++i) {
      const dim_pair p = pe.fc_dims(i);
      sum += static_cast<double>(q[static_cast<std::size_t>(p.first)]) *
                 k[static_cast<std::size_t>(p.first)] +
             static_cast<double>(q[static_cast<std::size_t>(p.second)]) *
                 k[static_cast<std::size_t>(p.second)];
    }
    CHECK(sum == doctest::Approx(dot(q, k)).epsilon(1e-9));
  }
}

TEST_CASE("rope: frequency scaling") {
  const rope plain = rope::interleaved(128, 500000.0);
  const rope lin = rope::interleaved(128, 500000.0, rope_scaling::linear(4.0));
  for (int i : {0, 10, 63})
    CHECK(lin.inv_frequency(i) == doctest::Approx(plain.inv_frequency(i) / 4.0));
  // Llama 3.1 (factor 8, low 1, high 4, original 8192): wavelengths below 8192/4 keep their
  // frequency, above 8192/1 are divided by 8, in between blend linearly in 8192/wavelength.
  const rope l3 = rope::interleaved(128, 500000.0, rope_scaling::llama3(8.0, 1.0, 4.0, 8192.0));
  const double two_pi = 6.283185307179586;
  for (int i = 0; i < 64; ++i) {
    const double f = plain.inv_frequency(i), wavelen = two_pi / f;
    double want;
    if (wavelen < 2048.0)
      want = f;
    else if (wavelen > 8192.0)
      want = f / 8.0;
    else {
      const double smooth = (8192.0 / wavelen - 1.0) / 3.0;
      want = (1 - smooth) * f / 8.0 + smooth * f;
    }
    CHECK(l3.inv_frequency(i) == doctest::Approx(want).epsilon(1e-12));
  }
  CHECK(l3.inv_frequency(0) == doctest::Approx(1.0));
  CHECK(l3.inv_frequency(63) < plain.inv_frequency(63) / 7.9);
}

TEST_CASE("rope: bad parameters name the problem") {
  CHECK_THROWS_WITH_AS(rope::interleaved(7, 1e4), doctest::Contains("even head_dim"), fasa::error);
  CHECK_THROWS_WITH_AS(rope::interleaved(0, 1e4), doctest::Contains("got 0"), fasa::error);
  CHECK_THROWS_WITH_AS(rope::interleaved(64, -1.0), doctest::Contains("theta"), fasa::error);
  CHECK_THROWS_WITH_AS(
      rope(64, 1e4, rope_layout::rotate_half, fc_mapping::rotation_pairs, {}, 30 + 1),
      doctest::Contains("rotary_dim"), fasa::error);
  CHECK_THROWS_WITH_AS(rope::interleaved(64, 1e4, rope_scaling::linear(0.0)),
                       doctest::Contains("scaling factor"), fasa::error);
  CHECK_THROWS_WITH_AS(rope::interleaved(64, 1e4, rope_scaling::llama3(8, 4, 1, 8192)),
                       doctest::Contains("low_freq_factor"), fasa::error);
}
