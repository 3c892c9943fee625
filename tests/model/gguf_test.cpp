// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
// The GGUF reader. Files come from the test's own writer (gguf_writer.hpp, which shares no code
// with the reader): every metadata value type, tensors of every type fasa dequantises with
// values computed here from the bytes written (by the format's definition, not the reader's
// code), and for every malformed-file problem a file that has it and the error that must name
// it (problem, field, byte offset). Every prefix of a valid file must fail cleanly, and random
// corruptions must never crash. Then the real default model (scripts/fetch-model.sh), where
// present: its documented configuration, and its tensor table, metadata and dequantised
// weights against the Python gguf package (tests/model/gguf_reference.py) where that exists.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <limits>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fasa/model/gguf.hpp"
#include "gguf_writer.hpp"
#include "support.hpp"

#include <unistd.h>

namespace g = fasa::test::gguf;
namespace fs = std::filesystem;
using fasa::model::ggml_type;
using fasa::model::gguf_file;
using fasa::model::gguf_tensor_info;
using fasa::model::gguf_value;
using fasa::model::gguf_value_type;

namespace {

// ---- Values by definition, independent of the reader ------------------------------------

// IEEE binary16 from its fields: (-1)^s * 2^(e-15) * 1.m, subnormals 2^-14 * 0.m.
double half_value(std::uint16_t h) {
  const int e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 31)
    v = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else if (e == 0)
    v = std::ldexp(m, -24);
  else
    v = std::ldexp(1024 + m, e - 25);
  return (h & 0x8000) ? -v : v;
}

// bfloat16 from its fields: 8 exponent bits (bias 127), 7 mantissa bits.
double bf16_value(std::uint16_t h) {
  const int e = (h >> 7) & 255, m = h & 127;
  double v;
  if (e == 255)
    v = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else if (e == 0)
    v = std::ldexp(m, -133);
  else
    v = std::ldexp(128 + m, e - 134);
  return (h & 0x8000) ? -v : v;
}

// A random normal half with magnitude in [2^-7, 2^4): a block scale.
std::uint16_t random_scale(std::mt19937& gen) {
  const auto sign = static_cast<std::uint16_t>((gen() & 1) << 15);
  const auto exponent = static_cast<std::uint16_t>(8 + gen() % 11);
  return static_cast<std::uint16_t>(sign | (exponent << 10) | (gen() & 1023));
}

// Bytes of a tensor and the values it must dequantise to: element i within `bound[i]` of
// `expected[i]` (0 for the formats whose value is one rounding of an exact product), NaN where
// the expected value is NaN.
struct quantised {
  g::bytes data;
  std::vector<double> expected;
  std::vector<double> bound;
};

// Special halves first (zeros, subnormals, extremes, infinities, NaNs), then random bits.
quantised make_f16(std::size_t n, std::uint32_t seed) {
  const std::uint16_t specials[] = {0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x0400, 0x7bff, 0xfbff,
                                    0x7c00, 0xfc00, 0x7e00, 0x7c01, 0xfe00, 0x3c00, 0xc000, 0x3555};
  std::mt19937 gen(seed);
  quantised q;
  for (std::size_t i = 0; i < n; ++i) {
    const auto h = i < std::size(specials) ? specials[i] : static_cast<std::uint16_t>(gen());
    g::put_u16(q.data, h);
    q.expected.push_back(half_value(h));
  }
  q.bound.assign(n, 0.0);
  return q;
}

quantised make_bf16(std::size_t n, std::uint32_t seed) {
  const std::uint16_t specials[] = {0x0000, 0x8000, 0x0001, 0x007f, 0x0080,
                                    0x7f80, 0xff80, 0x7fc0, 0x3f80, 0xc2f7};
  std::mt19937 gen(seed);
  quantised q;
  for (std::size_t i = 0; i < n; ++i) {
    const auto h = i < std::size(specials) ? specials[i] : static_cast<std::uint16_t>(gen());
    g::put_u16(q.data, h);
    q.expected.push_back(bf16_value(h));
  }
  q.bound.assign(n, 0.0);
  return q;
}

quantised make_f32(std::size_t n, std::uint32_t seed) {
  quantised q;
  for (const float x : fasa::test::random_vector(n, seed, 3.0f)) {
    g::put_f32(q.data, x);
    q.expected.push_back(x);
  }
  q.bound.assign(n, 0.0);
  return q;
}

// Q8_0 blocks: {fp16 d; int8 qs[32]}, x[j] = qs[j] * d. The product of an 8-bit integer and an
// 11-bit half is exact in double, so float(expected) is the one correctly rounded product.
quantised make_q8_0(std::size_t blocks, std::uint32_t seed) {
  std::mt19937 gen(seed);
  quantised q;
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::uint16_t d = random_scale(gen);
    g::put_u16(q.data, d);
    for (int j = 0; j < 32; ++j) {
      const auto qs = static_cast<std::int8_t>(gen());
      g::put_u8(q.data, static_cast<std::uint8_t>(qs));
      q.expected.push_back(static_cast<float>(qs * half_value(d)));
    }
  }
  q.bound.assign(q.expected.size(), 0.0);
  return q;
}

// Q4_0 blocks: {fp16 d; uint8 qs[16]}; byte j holds element j (low nibble) and element j + 16
// (high nibble); x = (nibble - 8) * d.
quantised make_q4_0(std::size_t blocks, std::uint32_t seed) {
  std::mt19937 gen(seed);
  quantised q;
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::uint16_t d = random_scale(gen);
    g::put_u16(q.data, d);
    std::uint8_t qs[16];
    for (auto& x : qs) x = static_cast<std::uint8_t>(gen());
    for (const auto x : qs) g::put_u8(q.data, x);
    std::vector<double> block(32);
    for (int j = 0; j < 16; ++j) {
      block[j] = static_cast<float>(((qs[j] & 15) - 8) * half_value(d));
      block[j + 16] = static_cast<float>(((qs[j] >> 4) - 8) * half_value(d));
    }
    q.expected.insert(q.expected.end(), block.begin(), block.end());
  }
  q.bound.assign(q.expected.size(), 0.0);
  return q;
}

// Q4_1 blocks: {fp16 d; fp16 m; uint8 qs[16]}, x = nibble * d + m, same nibble order. Float
// arithmetic rounds twice (the product, then the sum), each time by at most half an ulp, so
// |float result - exact| <= 2^-23 * (|nibble * d| + |m|); expected holds the exact value.
quantised make_q4_1(std::size_t blocks, std::uint32_t seed) {
  std::mt19937 gen(seed);
  quantised q;
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::uint16_t d = random_scale(gen), m = random_scale(gen);
    g::put_u16(q.data, d);
    g::put_u16(q.data, m);
    std::uint8_t qs[16];
    for (auto& x : qs) x = static_cast<std::uint8_t>(gen());
    for (const auto x : qs) g::put_u8(q.data, x);
    std::vector<double> block(32), bound(32);
    for (int j = 0; j < 16; ++j)
      for (const int hi : {0, 1}) {
        const int nibble = hi ? qs[j] >> 4 : qs[j] & 15;
        const double product = nibble * half_value(d);
        block[j + 16 * hi] = product + half_value(m);
        bound[j + 16 * hi] = std::ldexp(std::abs(product) + std::abs(half_value(m)), -23);
      }
    q.expected.insert(q.expected.end(), block.begin(), block.end());
    q.bound.insert(q.bound.end(), bound.begin(), bound.end());
  }
  return q;
}

// Every element of `got` within its bound of the expected value (NaN where expected is NaN,
// the sign of zero kept); prints the first mismatches.
void check_values(std::span<const float> got, const quantised& q, std::size_t first,
                  const std::string& what) {
  REQUIRE(first + got.size() <= q.expected.size());
  std::size_t bad = 0;
  std::ostringstream report;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double want = q.expected[first + i];
    const bool ok = std::isnan(want)
                        ? std::isnan(got[i])
                        : ((got[i] == want || std::abs(got[i] - want) <= q.bound[first + i]) &&
                           (want != 0.0 || std::signbit(got[i]) == std::signbit(want)));
    if (!ok && bad++ < 5)
      report << "  [" << first + i << "] got " << got[i] << " want " << want << '\n';
  }
  INFO(what, ": ", bad, " of ", got.size(), " elements wrong\n", report.str());
  CHECK(bad == 0);
}

// ---- Errors ---------------------------------------------------------------------------------

// The message of the fasa::error that f throws; "" when it throws nothing. Any other exception
// fails the test.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const fasa::error& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL_CHECK("threw a non-fasa exception: ", e.what());
    return "<not a fasa::error>";
  }
  return {};
}

// Opening `file` must fail with one fasa::error whose message holds every part.
void expect_error(const g::bytes& file, std::initializer_list<std::string> parts,
                  const std::string& name = "bad.gguf") {
  const std::string message = error_of([&] { gguf_file f(file, name); });
  INFO("message: ", message);
  REQUIRE(!message.empty());
  CHECK(message.find(name + ": ") == 0);
  for (const auto& part : parts) {
    INFO("expected part: ", part);
    CHECK(message.find(part) != std::string::npos);
  }
}

std::string at(std::size_t offset) { return "byte offset " + std::to_string(offset); }

// A small valid file: two metadata entries and two tensors.
g::builder base_file() {
  g::builder b;
  b.kv("general.architecture", g::vt_string, g::str("llama"));
  b.kv("llama.block_count", g::vt_uint32, g::le(2, 4));
  b.tensor("a", {4}, g::tt_f32, make_f32(4, 1).data);
  b.tensor("b", {32, 2}, g::tt_q8_0, make_q8_0(2, 2).data);
  return b;
}

// Everything: each metadata value type (scalars, strings, arrays of each, nested arrays) and a
// tensor of each type fasa reads. `data` receives each tensor's expected values.
g::builder everything_file(std::vector<std::pair<std::string, quantised>>* data = nullptr) {
  g::builder b;
  b.kv("t.u8", g::vt_uint8, g::le(200, 1));
  b.kv("t.i8", g::vt_int8, g::le(static_cast<std::uint8_t>(-100), 1));
  b.kv("t.u16", g::vt_uint16, g::le(65535, 2));
  b.kv("t.i16", g::vt_int16, g::le(static_cast<std::uint16_t>(-32768), 2));
  b.kv("t.u32", g::vt_uint32, g::le(4000000000u, 4));
  b.kv("t.i32", g::vt_int32, g::le(static_cast<std::uint32_t>(-2000000000), 4));
  b.kv("t.f32", g::vt_float32, g::f32(0.1f));
  b.kv("t.bool.true", g::vt_bool, g::le(1, 1));
  b.kv("t.bool.false", g::vt_bool, g::le(0, 1));
  b.kv("t.str", g::vt_string, g::str(std::string("h\xc3\xa9llo\0world", 12)));
  b.kv("t.empty", g::vt_string, g::str(""));
  b.kv("t.u64", g::vt_uint64, g::le(std::numeric_limits<std::uint64_t>::max(), 8));
  b.kv("t.i64", g::vt_int64,
       g::le(static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::min()), 8));
  b.kv("t.f64", g::vt_float64, g::f64(1.0 / 3.0));
  b.kv("a.u8", g::vt_array, g::array(g::vt_uint8, 2, {0, 255}));
  b.kv("a.i8", g::vt_array, g::array(g::vt_int8, 2, {0x80, 0x7f}));
  {
    g::bytes e = g::le(1, 2);
    g::append(e, g::le(65535, 2));
    b.kv("a.u16", g::vt_array, g::array(g::vt_uint16, 2, e));
    b.kv("a.i16", g::vt_array, g::array(g::vt_int16, 2, e));
  }
  {
    g::bytes e = g::le(static_cast<std::uint32_t>(-1), 4);
    g::append(e, g::le(7, 4));
    b.kv("a.u32", g::vt_array, g::array(g::vt_uint32, 2, e));
    b.kv("a.i32", g::vt_array, g::array(g::vt_int32, 2, e));
  }
  {
    g::bytes e = g::le(std::numeric_limits<std::uint64_t>::max(), 8);
    g::append(e, g::le(5, 8));
    b.kv("a.u64", g::vt_array, g::array(g::vt_uint64, 2, e));
    b.kv("a.i64", g::vt_array, g::array(g::vt_int64, 2, e));
  }
  {
    g::bytes e = g::f32(1.5f);
    g::append(e, g::f32(-2.25f));
    b.kv("a.f32", g::vt_array, g::array(g::vt_float32, 2, e));
    g::bytes d = g::f64(0.1);
    g::append(d, g::f64(-1e300));
    b.kv("a.f64", g::vt_array, g::array(g::vt_float64, 2, d));
  }
  b.kv("a.bool", g::vt_array, g::array(g::vt_bool, 3, {1, 0, 1}));
  {
    g::bytes e = g::str("a");
    g::append(e, g::str(""));
    g::append(e, g::str("ccc"));
    b.kv("a.str", g::vt_array, g::array(g::vt_string, 3, e));
  }
  b.kv("a.empty", g::vt_array, g::array(g::vt_uint32, 0, {}));
  {
    // [[1, 2, 3] (int32), [] (uint8), [["x", "y"]] (array of string arrays)]
    g::bytes ints;
    for (std::uint32_t v : {1u, 2u, 3u}) g::append(ints, g::le(v, 4));
    g::bytes xy = g::str("x");
    g::append(xy, g::str("y"));
    g::bytes e = g::array(g::vt_int32, 3, ints);
    g::append(e, g::array(g::vt_uint8, 0, {}));
    g::append(e, g::array(g::vt_array, 1, g::array(g::vt_string, 2, xy)));
    b.kv("a.nested", g::vt_array, g::array(g::vt_array, 3, e));
  }
  b.kv("general.alignment", g::vt_uint32, g::le(64, 4));
  b.alignment = 64;

  std::vector<std::pair<std::string, quantised>> d;
  auto add = [&](std::string name, std::vector<std::uint64_t> dims, std::uint32_t type,
                 quantised q) {
    b.tensor(name, std::move(dims), type, q.data);
    d.emplace_back(std::move(name), std::move(q));
  };
  add("f32", {5}, g::tt_f32, make_f32(5, 11));
  add("f16", {7, 5}, g::tt_f16, make_f16(35, 12));
  add("bf16", {3, 4}, g::tt_bf16, make_bf16(12, 13));
  add("q8_0", {64, 3}, g::tt_q8_0, make_q8_0(6, 14));
  add("q4_0", {32, 5}, g::tt_q4_0, make_q4_0(5, 15));
  add("q4_1", {96, 2, 2}, g::tt_q4_1, make_q4_1(12, 16));
  if (data) *data = std::move(d);
  return b;
}

// A temporary directory removed at the end of the scope.
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::random_device rd;
    path = fs::temp_directory_path() /
           ("fasa_gguf_test_" + std::to_string(::getpid()) + "_" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write_file(const fs::path& p, const g::bytes& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(out.good());
}

}  // namespace

// ---- fp16 -----------------------------------------------------------------------------------

TEST_CASE("gguf fp16_to_float: all 65536 halves against the definition") {
  std::size_t bad = 0;
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const auto bits = static_cast<std::uint16_t>(h);
    const float got = fasa::model::fp16_to_float(bits);
    const double want = half_value(bits);
    const bool ok =
        std::isnan(want) ? std::isnan(got) : got == want && std::signbit(got) == std::signbit(want);
    if (!ok && bad++ < 5) FAIL_CHECK("half 0x", std::hex, h, ": got ", got, ", want ", want);
#ifdef __FLT16_MANT_DIG__
    // Where the compiler has _Float16, its conversion must agree too.
    const float hw = static_cast<float>(std::bit_cast<_Float16>(bits));
    if (!(std::isnan(want)
              ? std::isnan(hw)
              : std::bit_cast<std::uint32_t>(hw) == std::bit_cast<std::uint32_t>(got)) &&
        bad++ < 5)
      FAIL_CHECK("half 0x", std::hex, h, ": _Float16 gives ", hw, ", fp16_to_float ", got);
#endif
  }
  CHECK(bad == 0);
  static_assert(fasa::model::fp16_to_float(0x3c00) == 1.0f);
  static_assert(fasa::model::fp16_to_float(0x0001) == 0x1p-24f);
  static_assert(fasa::model::bf16_to_float(0x3f80) == 1.0f);
}

TEST_CASE("gguf bf16_to_float: all 65536 values against the definition") {
  std::size_t bad = 0;
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const auto bits = static_cast<std::uint16_t>(h);
    const float got = fasa::model::bf16_to_float(bits);
    const double want = bf16_value(bits);
    const bool ok =
        std::isnan(want) ? std::isnan(got) : got == want && std::signbit(got) == std::signbit(want);
    if (!ok && bad++ < 5) FAIL_CHECK("bf16 0x", std::hex, h, ": got ", got, ", want ", want);
  }
  CHECK(bad == 0);
}

// ---- Metadata -------------------------------------------------------------------------------

TEST_CASE("gguf metadata: every value type, typed accessors, range and type errors") {
  g::layout where;
  const g::bytes file = everything_file().build(&where);
  const gguf_file f(file, "meta.gguf");
  CHECK(f.source() == "meta.gguf");
  CHECK(f.version() == 3);
  CHECK(f.alignment() == 64);
  CHECK(f.data_offset() == where.data_offset);
  CHECK(f.file_size() == file.size());

  // File order and offsets.
  const auto md = f.metadata();
  REQUIRE(md.size() == where.kv_at.size());
  CHECK(md[0].key == "t.u8");
  CHECK(md.back().key == "general.alignment");
  for (std::size_t i = 0; i < md.size(); ++i) CHECK(md[i].file_offset == where.kv_at[i]);

  // Scalars.
  CHECK(f.value("t.u8").type() == gguf_value_type::uint8);
  CHECK(f.get_int("t.u8") == 200);
  CHECK(f.get_int<std::uint8_t>("t.u8") == 200);
  CHECK(f.get_int("t.i8") == -100);
  CHECK(f.get_int<std::int8_t>("t.i8") == -100);
  CHECK(f.get_int("t.u16") == 65535);
  CHECK(f.get_int("t.i16") == -32768);
  CHECK(f.get_int("t.u32") == 4000000000);
  CHECK(f.get_int("t.i32") == -2000000000);
  CHECK(f.get_int<std::uint64_t>("t.u64") == std::numeric_limits<std::uint64_t>::max());
  CHECK(f.get_int("t.i64") == std::numeric_limits<std::int64_t>::min());
  CHECK(f.get_float("t.f32") == static_cast<double>(0.1f));
  CHECK(f.get_float("t.f64") == 1.0 / 3.0);
  CHECK(f.get_bool("t.bool.true"));
  CHECK_FALSE(f.get_bool("t.bool.false"));
  CHECK(f.get_string("t.str") == std::string("h\xc3\xa9llo\0world", 12));
  CHECK(f.get_string("t.empty").empty());
  CHECK(f.value("t.f64").type() == gguf_value_type::float64);

  // Integers out of the requested range, and wrong types, name the key, file and value.
  const auto expect = [](const std::function<void()>& call,
                         std::initializer_list<std::string> parts) {
    const std::string m = error_of(call);
    INFO("message: ", m);
    REQUIRE(!m.empty());
    for (const auto& p : parts) {
      INFO("expected part: ", p);
      CHECK(m.find(p) != std::string::npos);
    }
  };
  expect([&] { (void)f.get_int<std::int8_t>("t.u8"); },
         {"metadata key 't.u8' in meta.gguf is 200 (uint8), out of range", "[-128, 127]"});
  expect([&] { (void)f.get_int<std::uint32_t>("t.i8"); }, {"'t.i8'", "-100 (int8)"});
  expect([&] { (void)f.get_int("t.u64"); },
         {"'t.u64'", "18446744073709551615 (uint64)", "out of range"});
  expect([&] { (void)f.get_int<std::uint64_t>("t.i64"); }, {"'t.i64'", "out of range"});
  expect([&] { (void)f.get_int<std::int16_t>("t.u16"); }, {"65535 (uint16)"});
  expect([&] { (void)f.get_int("t.f32"); }, {"'t.f32'", "is float32, expected an integer"});
  expect([&] { (void)f.get_int("t.bool.true"); }, {"is bool, expected an integer"});
  expect([&] { (void)f.get_float("t.u32"); }, {"'t.u32'", "is uint32, expected a float"});
  expect([&] { (void)f.get_bool("t.u8"); }, {"'t.u8'", "is uint8, expected bool"});
  expect([&] { (void)f.get_string("t.u8"); }, {"is uint8, expected string"});
  expect([&] { (void)f.get_string("a.str"); }, {"is array of 3 string, expected string"});

  // Missing keys.
  CHECK_FALSE(f.has("llama.block_count"));
  CHECK(f.find("llama.block_count") == nullptr);
  CHECK(f.has("t.u8"));
  for (const auto& call :
       std::vector<std::function<void()>>{[&] { (void)f.get_int("llama.block_count"); },
                                          [&] { (void)f.get_string("llama.block_count"); },
                                          [&] { (void)f.get_float_array("llama.block_count"); },
                                          [&] { (void)f.value("llama.block_count"); }})
    expect(call, {"missing metadata key 'llama.block_count' in meta.gguf"});

  // Arrays.
  CHECK(f.get_int_array("a.u8") == std::vector<std::int64_t>{0, 255});
  CHECK(f.get_int_array("a.i8") == std::vector<std::int64_t>{-128, 127});
  CHECK(f.get_int_array("a.u16") == std::vector<std::int64_t>{1, 65535});
  CHECK(f.get_int_array("a.i16") == std::vector<std::int64_t>{1, -1});
  CHECK(f.get_int_array("a.u32") == std::vector<std::int64_t>{4294967295, 7});
  CHECK(f.get_int_array<std::int32_t>("a.i32") == std::vector<std::int32_t>{-1, 7});
  CHECK(f.get_int_array<std::uint64_t>("a.u64") ==
        std::vector<std::uint64_t>{std::numeric_limits<std::uint64_t>::max(), 5});
  CHECK(f.get_int_array("a.i64") == std::vector<std::int64_t>{-1, 5});
  CHECK(f.get_float_array("a.f32") == std::vector<double>{1.5, -2.25});
  CHECK(f.get_float_array("a.f64") == std::vector<double>{0.1, -1e300});
  CHECK(f.get_string_array("a.str") == std::vector<std::string>{"a", "", "ccc"});
  CHECK(f.get_int_array("a.empty").empty());
  CHECK(f.value("a.bool").element_type() == gguf_value_type::boolean);
  CHECK(f.value("a.bool").size() == 3);
  CHECK(f.value("a.bool").element(0).as_bool());
  CHECK_FALSE(f.value("a.bool").element(1).as_bool());
  expect([&] { (void)f.get_int_array<std::uint32_t>("a.i32"); },
         {"element 0 of metadata key 'a.i32' in meta.gguf is -1 (int32), out of range"});
  expect([&] { (void)f.get_int_array("a.u64"); }, {"element 0 of metadata key 'a.u64'"});
  expect([&] { (void)f.get_int_array("a.str"); },
         {"'a.str'", "is array of 3 string, expected an array of integers"});
  expect([&] { (void)f.get_string_array("a.i32"); }, {"expected an array of string"});
  expect([&] { (void)f.get_float_array("a.i32"); }, {"expected an array of floats"});
  expect([&] { (void)f.get_int_array("t.u8"); }, {"is uint8, expected an array of integers"});
  expect([&] { (void)f.value("a.u8").element(2); }, {"array element 2", "array of 2"});

  // Nested arrays.
  const gguf_value& nested = f.value("a.nested");
  REQUIRE(nested.element_type() == gguf_value_type::array);
  REQUIRE(nested.size() == 3);
  CHECK(nested.element(0).element_type() == gguf_value_type::int32);
  CHECK(nested.element(0).size() == 3);
  CHECK(nested.element(0).element(2).as_int() == 3);
  CHECK(nested.element(1).element_type() == gguf_value_type::uint8);
  CHECK(nested.element(1).size() == 0);
  CHECK(nested.element(2).element(0).element(1).as_string() == "y");
  CHECK(nested.type_text() == "array of 3 array");

  // Every accessor on every key either answers or throws fasa::error, never anything else.
  for (const auto& kv : f.metadata()) {
    const std::string& k = kv.key;
    for (const auto& call : std::vector<std::function<void()>>{
             [&] { (void)f.get_string(k); }, [&] { (void)f.get_int(k); },
             [&] { (void)f.get_int<std::uint8_t>(k); }, [&] { (void)f.get_float(k); },
             [&] { (void)f.get_bool(k); }, [&] { (void)f.get_string_array(k); },
             [&] { (void)f.get_int_array(k); }, [&] { (void)f.get_float_array(k); }})
      (void)error_of(call);
  }
}

// ---- Tensors --------------------------------------------------------------------------------

TEST_CASE("gguf tensors: every supported type dequantises to the values written") {
  std::vector<std::pair<std::string, quantised>> expected;
  for (const bool custom_alignment : {true, false}) {
    CAPTURE(custom_alignment);
    g::builder b = everything_file(&expected);
    if (!custom_alignment) {  // default alignment 32: drop general.alignment
      b.kvs.pop_back();
      b.alignment = 32;
    }
    g::layout where;
    const g::bytes file = b.build(&where);
    const gguf_file f(file, "tensors.gguf");
    CHECK(f.alignment() == (custom_alignment ? 64 : 32));
    CHECK(f.data_offset() == where.data_offset);
    REQUIRE(f.tensors().size() == expected.size());

    for (std::size_t i = 0; i < expected.size(); ++i) {
      // Not a structured binding: CAPTURE's lambda captures `name`, which clang 14 refuses for a
      // binding (C++20 allows it; clang 16 implements it).
      const auto& name = expected[i].first;
      const auto& q = expected[i].second;
      CAPTURE(name);
      const gguf_tensor_info& t = f.tensor(name);
      CHECK(&t == f.find_tensor(name));
      CHECK(&t == &f.tensors()[i]);
      CHECK(t.name == name);
      CHECK(t.dims == b.tensors[i].dims);
      CHECK(static_cast<std::uint32_t>(t.type) == b.tensors[i].type);
      CHECK(t.n_elements == q.expected.size());
      CHECK(t.n_bytes == q.data.size());
      CHECK(t.info_offset == where.tensor_info_at[i]);
      CHECK(t.data == f.bytes().data() + where.tensor_data_at[i]);
      CHECK(where.tensor_data_at[i] == f.data_offset() + t.offset);
      CHECK(t.offset % f.alignment() == 0);
      CHECK(std::equal(t.bytes().begin(), t.bytes().end(), q.data.begin()));

      // Whole tensor, both overloads.
      const std::vector<float> all = fasa::model::dequantize(t);
      check_values(all, q, 0, name + " (whole)");
      const std::vector<float> again = f.dequantize(name);  // bit for bit (NaN != NaN)
      CHECK((again.size() == all.size() &&
             std::memcmp(again.data(), all.data(), all.size() * sizeof(float)) == 0));

      // Every range of rows, against the same expected values.
      const std::uint64_t rows = t.n_rows(), len = t.row_length();
      CHECK(rows * len == t.n_elements);
      for (std::uint64_t first = 0; first <= rows; ++first)
        for (std::uint64_t n = 0; first + n <= rows; ++n) {
          std::vector<float> part(n * len);
          fasa::model::dequantize_rows(t, first, n, part);
          check_values(part, q, first * len, name + " rows");
        }
      // Out-of-range rows and a wrongly sized output name the tensor.
      std::vector<float> one(len);
      CHECK_THROWS_WITH_AS(fasa::model::dequantize_rows(t, rows, 1, one),
                           doctest::Contains(("of tensor '" + name + "' are out of range").c_str()),
                           fasa::error);
      std::vector<float> short_out(t.n_elements - 1);
      CHECK_THROWS_WITH_AS(fasa::model::dequantize(t, short_out),
                           doctest::Contains(("tensor '" + name + "' needs").c_str()), fasa::error);
    }
    CHECK(f.find_tensor("absent") == nullptr);
    CHECK_THROWS_WITH_AS(f.tensor("absent"),
                         doctest::Contains("missing tensor 'absent' in tensors.gguf"), fasa::error);
  }
}

TEST_CASE("gguf tensors: known order of elements in Q4_0, Q4_1 and Q8_0 blocks") {
  // One block each with d = 0.5 (0x3800), m = -1 (0xbc00) and qs[j] = j | (15 - j) << 4:
  // element j comes from the low nibble j, element 16 + j from the high nibble 15 - j.
  g::bytes q40 = g::le(0x3800, 2), q41 = g::le(0x3800, 2), q80 = g::le(0x3800, 2);
  g::append(q41, g::le(0xbc00, 2));
  for (int j = 0; j < 16; ++j) {
    q40.push_back(static_cast<std::uint8_t>(j | (15 - j) << 4));
    q41.push_back(static_cast<std::uint8_t>(j | (15 - j) << 4));
  }
  for (int j = 0; j < 32; ++j) q80.push_back(static_cast<std::uint8_t>(j - 16));
  g::builder b;
  b.tensor("q4_0", {32}, g::tt_q4_0, q40);
  b.tensor("q4_1", {32}, g::tt_q4_1, q41);
  b.tensor("q8_0", {32}, g::tt_q8_0, q80);
  const gguf_file f(b.build(), "order.gguf");
  const auto x40 = f.dequantize("q4_0"), x41 = f.dequantize("q4_1"), x80 = f.dequantize("q8_0");
  for (int j = 0; j < 16; ++j) {
    CHECK(x40[j] == (j - 8) * 0.5f);
    CHECK(x40[16 + j] == (15 - j - 8) * 0.5f);
    CHECK(x41[j] == j * 0.5f - 1.0f);
    CHECK(x41[16 + j] == (15 - j) * 0.5f - 1.0f);
  }
  for (int j = 0; j < 32; ++j) CHECK(x80[j] == (j - 16) * 0.5f);
}

TEST_CASE("gguf tensors: a type fasa does not read opens, and dequantising it says so") {
  g::builder b = base_file();
  b.tensor("blk.0.q51", {32}, g::tt_q5_1, g::bytes(24, 0));
  b.tensor("blk.0.q5k", {256}, 13, g::bytes(176, 0));
  const gguf_file f(b.build(), "q5.gguf");
  const gguf_tensor_info& t = f.tensor("blk.0.q51");
  CHECK(t.n_bytes == 24);
  CHECK(fasa::model::to_string(t.type) == "Q5_1");
  CHECK_THROWS_WITH_AS(f.dequantize("blk.0.q51"),
                       doctest::Contains("tensor 'blk.0.q51' has type 7 (Q5_1), which fasa does "
                                         "not read; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1"),
                       fasa::error);
  std::vector<float> out(256);
  CHECK_THROWS_WITH_AS(fasa::model::dequantize(f.tensor("blk.0.q5k"), out),
                       doctest::Contains("tensor 'blk.0.q5k' has type 13 (Q5_K)"), fasa::error);
  CHECK_THROWS_WITH_AS(
      fasa::model::dequantize_row(ggml_type::q5_1, t.bytes(), std::span<float>(out).first(32)),
      doctest::Contains("has type 7 (Q5_1), which fasa does not read"), fasa::error);
  // The low-level row function checks its sizes too.
  std::vector<std::uint8_t> q80(34);
  std::vector<float> y(32);
  CHECK_NOTHROW(fasa::model::dequantize_row(ggml_type::q8_0, q80, y));
  CHECK_THROWS_WITH_AS(
      fasa::model::dequantize_row(ggml_type::q8_0, q80, std::span<float>(y).first(31)),
      doctest::Contains("not a multiple of the Q8_0 block size 32"), fasa::error);
  CHECK_THROWS_WITH_AS(
      fasa::model::dequantize_row(ggml_type::q8_0, std::span<const std::uint8_t>(q80).first(33), y),
      doctest::Contains("take 34 bytes, got 33"), fasa::error);
}

// ---- Files ----------------------------------------------------------------------------------

TEST_CASE("gguf file: a memory-mapped file reads as its bytes; unopenable paths") {
  temp_dir dir;
  std::vector<std::pair<std::string, quantised>> expected;
  const g::bytes bytes = everything_file(&expected).build();
  const fs::path path = dir.path / "model.gguf";
  write_file(path, bytes);

  gguf_file mapped(path);
  const gguf_file copied(bytes, "copy.gguf");
  CHECK(mapped.source() == path.string());
  CHECK(mapped.file_size() == bytes.size());
  CHECK(std::equal(mapped.bytes().begin(), mapped.bytes().end(), bytes.begin()));
  REQUIRE(mapped.metadata().size() == copied.metadata().size());
  CHECK(mapped.get_string_array("a.str") == copied.get_string_array("a.str"));
  for (const auto& [name, q] : expected) check_values(mapped.dequantize(name), q, 0, name);

  // Moving keeps the views valid (the mapping moves, it is not unmapped).
  const float* before = reinterpret_cast<const float*>(mapped.tensor("f32").data);
  gguf_file moved(std::move(mapped));
  CHECK(reinterpret_cast<const float*>(moved.tensor("f32").data) == before);
  CHECK(moved.get_string("t.str") == std::string("h\xc3\xa9llo\0world", 12));
  check_values(moved.dequantize("q4_1"), expected.back().second, 0, "q4_1 after a move");
  gguf_file assigned(bytes, "other.gguf");
  assigned = std::move(moved);
  CHECK(assigned.source() == path.string());
  check_values(assigned.dequantize("q8_0"), expected[3].second, 0, "q8_0 after assignment");

  const fs::path missing = dir.path / "missing.gguf";
  CHECK_THROWS_WITH_AS(
      gguf_file{missing},
      doctest::Contains(("cannot open GGUF file '" + missing.string() + "'").c_str()), fasa::error);
  CHECK_THROWS_WITH_AS(gguf_file{dir.path}, doctest::Contains("is not a regular file"),
                       fasa::error);
  const fs::path empty = dir.path / "empty.gguf";
  write_file(empty, {});
  CHECK_THROWS_WITH_AS(gguf_file{empty},
                       doctest::Contains((empty.string() + ": truncated file: the magic").c_str()),
                       fasa::error);
}

TEST_CASE("gguf versions: 2 and 3 read; 1, unknown and big-endian files are refused") {
  g::builder b = base_file();
  b.version = 2;
  const gguf_file v2(b.build(), "v2.gguf");
  CHECK(v2.version() == 2);
  CHECK(v2.get_int("llama.block_count") == 2);
  CHECK(v2.dequantize("a").size() == 4);

  b.version = 1;
  expect_error(b.build(), {"GGUF version 1", at(4), "fasa reads versions 2 and 3"});
  for (const std::uint32_t v : {0u, 4u, 99u}) {
    b.version = v;
    expect_error(b.build(), {"unknown GGUF version " + std::to_string(v), at(4)});
  }
  b.version = 0x03000000;  // 3 written big-endian
  expect_error(b.build(), {"big-endian", at(4)});
}

// ---- Malformed files ------------------------------------------------------------------------

TEST_CASE("gguf malformed header and counts") {
  g::builder b = base_file();
  SUBCASE("empty") { expect_error({}, {"truncated file: the magic", at(0), "needs 4 bytes"}); }
  SUBCASE("wrong magic") {
    b.magic = "GGML";
    expect_error(b.build(), {"not a GGUF file", at(0), "\"GGML\""});
    b.magic = std::string(
        "\x7f"
        "ELF",
        4);
    expect_error(b.build(), {"not a GGUF file", "\\x7fELF"});
  }
  SUBCASE("kv_count larger than the file") {
    b.kv_count = std::uint64_t{1} << 40;
    expect_error(b.build(), {"kv_count 1099511627776", at(16), "past the end of the file"});
  }
  SUBCASE("tensor_count larger than the file") {
    b.tensor_count = std::uint64_t{1} << 40;
    expect_error(b.build(), {"tensor_count 1099511627776", at(8), "past the end of the file"});
  }
  SUBCASE("tensor_count one too many") {
    b.tensor_count = 3;
    const std::string m = error_of([&] { gguf_file f(b.build(), "bad.gguf"); });
    CHECK(!m.empty());
  }
}

TEST_CASE("gguf malformed metadata") {
  g::builder b = base_file();
  g::layout l;
  const std::size_t k = b.kvs.size();  // index of the entry each subcase appends
  SUBCASE("unknown value type") {
    b.kv("x.key", 13, g::le(0, 4));
    const g::bytes file = b.build(&l);
    expect_error(file, {"metadata key 'x.key' has unknown value type 13", at(l.kv_at[k] + 8 + 5)});
  }
  SUBCASE("unknown array element type") {
    b.kv("x.arr", g::vt_array, g::array(99, 1, {0}));
    const g::bytes file = b.build(&l);
    expect_error(file, {"the array metadata key 'x.arr' has unknown element type 99",
                        at(l.kv_at[k] + 8 + 5 + 4)});
  }
  SUBCASE("bool that is not 0 or 1") {
    b.kv("x.flag", g::vt_bool, {2});
    const g::bytes file = b.build(&l);
    expect_error(file, {"bool value 2", "metadata key 'x.flag'", at(l.kv_at[k] + 8 + 6 + 4)});
    b.kvs.back() = {"x.flags", g::vt_array, g::array(g::vt_bool, 3, {0, 1, 7})};
    const g::bytes file2 = b.build(&l);
    expect_error(file2,
                 {"bool value 7 of element 2", "'x.flags'", at(l.kv_at[k] + 7 + 8 + 4 + 12 + 2)});
  }
  SUBCASE("key length past the end") {
    g::bytes file = b.build(&l);
    const std::uint64_t huge = std::uint64_t{1} << 60;
    for (int i = 0; i < 8; ++i) file[l.kv_at[1] + i] = static_cast<std::uint8_t>(huge >> (8 * i));
    expect_error(file, {"string length 1152921504606846976", "the key of metadata entry 1",
                        at(l.kv_at[1]), "past the end of the file"});
  }
  SUBCASE("string value length past the end") {
    b.kv("x.s", g::vt_string, g::le(std::uint64_t{1} << 62, 8));
    const g::bytes file = b.build(&l);
    expect_error(file, {"string length 4611686018427387904", "metadata key 'x.s'",
                        at(l.kv_at[k] + 8 + 3 + 4), "past the end of the file"});
  }
  SUBCASE("array length past the end") {
    b.kv("x.a", g::vt_array, g::array(g::vt_uint32, std::uint64_t{1} << 61, {}));
    const g::bytes file = b.build(&l);
    expect_error(file, {"array length 2305843009213693952", "metadata key 'x.a'",
                        at(l.kv_at[k] + 8 + 3 + 4 + 4), "past the end of the file"});
  }
  SUBCASE("string array length past the end") {
    b.kv("x.tokens", g::vt_array, g::array(g::vt_string, 1000000, g::str("a")));
    const g::bytes file = b.build(&l);
    expect_error(file, {"array length 1000000", "'x.tokens'", "at least 8 bytes each"});
  }
  SUBCASE("duplicate key") {
    b.kv("llama.block_count", g::vt_uint32, g::le(3, 4));
    const g::bytes file = b.build(&l);
    expect_error(file, {"duplicate metadata key 'llama.block_count'", at(l.kv_at[k]),
                        "first at byte offset " + std::to_string(l.kv_at[1])});
  }
  SUBCASE("arrays nested too deep") {
    g::bytes value = g::array(g::vt_uint8, 0, {});
    for (int i = 0; i < 20; ++i) value = g::array(g::vt_array, 1, value);
    b.kv("x.deep", g::vt_array, value);
    expect_error(b.build(), {"arrays nested deeper than 16 levels", "'x.deep'"});
  }
  SUBCASE("a non-printable key is shown escaped") {
    b.kv(std::string("x\x01\xff", 3), 13, g::le(0, 4));
    expect_error(b.build(), {"metadata key 'x\\x01\\xff' has unknown value type 13"});
  }
  SUBCASE("alignment not a power of two, zero, or not an integer") {
    for (const std::uint32_t a : {24u, 0u, 3u}) {
      b.kvs.push_back({"general.alignment", g::vt_uint32, g::le(a, 4)});
      const g::bytes file = b.build(&l);
      expect_error(file, {"general.alignment", at(l.kv_at[k]),
                          "is " + std::to_string(a) + ", which is not a power of two"});
      b.kvs.pop_back();
    }
    b.kv("general.alignment", g::vt_string, g::str("32"));
    expect_error(b.build(), {"general.alignment", "is string, expected an integer"});
  }
}

TEST_CASE("gguf malformed tensor infos and data") {
  g::builder b = base_file();
  g::layout l;
  SUBCASE("duplicate tensor name") {
    b.tensor("a", {4}, g::tt_f32, make_f32(4, 3).data);
    const g::bytes file = b.build(&l);
    expect_error(file, {"duplicate tensor name 'a'", at(l.tensor_info_at[2]),
                        "first at byte offset " + std::to_string(l.tensor_info_at[0])});
  }
  SUBCASE("unknown tensor type") {
    for (const std::uint32_t type : {200u, 4u, 31u}) {  // 4 and 31 are ids of removed types
      b.tensors[1].type = type;
      const g::bytes file = b.build(&l);
      // name "b": length field 8, name 1, n_dims 4, two dims 16
      expect_error(file, {"tensor 'b' has unknown type " + std::to_string(type),
                          at(l.tensor_info_at[1] + 8 + 1 + 4 + 16)});
    }
  }
  SUBCASE("too many dims") {
    b.tensors[0].dims = {1, 1, 1, 1, 4};
    const g::bytes file = b.build(&l);
    expect_error(file, {"tensor 'a' has n_dims 5", at(l.tensor_info_at[0] + 8 + 1)});
  }
  SUBCASE("dims whose product overflows") {
    b.tensors[0].dims = {std::uint64_t{1} << 32, std::uint64_t{1} << 32};
    g::bytes file = b.build(&l);
    expect_error(file, {"dims [4294967296, 4294967296] of tensor 'a'", "overflow",
                        at(l.tensor_info_at[0] + 8 + 1 + 4)});
    b.tensors[0].dims = {0, std::uint64_t{1} << 40, std::uint64_t{1} << 40};  // 0 elements, but
    expect_error(b.build(), {"of tensor 'a'", "overflow"});  // its row count overflows
    b.tensors[0].dims = {std::uint64_t{1} << 62};            // 2^62 F32 elements: 2^64 bytes
    expect_error(b.build(), {"the size of tensor 'a'", "overflows 64 bits"});
    b.tensors[0].dims = {std::uint64_t{1} << 63};
    expect_error(b.build(),
                 {"dims[0] of tensor 'a'", "9223372036854775808", "more than ggml's limit"});
  }
  SUBCASE("row length not a multiple of the block") {
    b.tensors[1].dims = {33, 2};
    expect_error(b.build(), {"tensor 'b' has row length dims[0] = 33",
                             "not a multiple of the Q8_0 block size 32"});
  }
  SUBCASE("misaligned offset") {
    b.tensors[1].offset = 48;
    const g::bytes file = b.build(&l);
    expect_error(file, {"data offset 48 of tensor 'b'", "not a multiple of the alignment 32",
                        at(l.tensor_info_at[1] + 8 + 1 + 4 + 16 + 4)});
    b.kv("general.alignment", g::vt_uint32, g::le(64, 4));
    b.alignment = 64;
    b.tensors[1].offset = 32;
    expect_error(b.build(), {"data offset 32 of tensor 'b'", "alignment 64"});
  }
  SUBCASE("tensor past the end of the file") {
    b.tensors[1].offset = 1 << 20;
    g::bytes file = b.build(&l);
    expect_error(file, {"tensor 'b' (Q8_0, dims [32, 2], 68 bytes at data offset 1048576",
                        "file offset " + std::to_string(l.data_offset + (1 << 20)),
                        "runs past the end of the file (" + std::to_string(file.size()),
                        "its info is at " + at(l.tensor_info_at[1])});
    b.tensors[1].offset = std::uint64_t{1} << 63;  // offset + size would overflow 64 bits
    expect_error(b.build(), {"tensor 'b'", "runs past the end of the file"});
    b.tensors[1].offset = std::nullopt;
    file = b.build(&l);
    file.pop_back();  // the last tensor loses its last byte
    expect_error(file, {"tensor 'b'", "runs past the end of the file"});
  }
  SUBCASE("overlapping tensors") {
    b.tensors[1].offset = 0;
    expect_error(b.build(), {"tensors 'a' (data bytes [0, 16)) and 'b' (data bytes [0, 68)) "
                             "overlap"});
  }
  SUBCASE("data section past the end") {
    const g::bytes file = b.build(&l);
    const std::size_t infos_end = l.tensor_info_at[1] + 8 + 1 + 4 + 16 + 4 + 8;
    REQUIRE(infos_end % 32 != 0);
    expect_error(g::bytes(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(infos_end)),
                 {"truncated file: the data section starts at byte offset " +
                  std::to_string(l.data_offset)});
  }
}

TEST_CASE("gguf truncation: every strict prefix of a valid file fails cleanly") {
  const g::bytes file = everything_file().build();
  CHECK_NOTHROW(gguf_file(file, "trunc.gguf"));
  std::size_t failures = 0;
  for (std::size_t n = 0; n < file.size(); ++n) {
    // An exact-size copy, so that AddressSanitizer sees any read past the end.
    const std::string m =
        error_of([&] { gguf_file f(std::span<const std::uint8_t>(file.data(), n), "trunc.gguf"); });
    const bool ok =
        m.find("trunc.gguf: ") == 0 && (m.find("truncated") != std::string::npos ||
                                        m.find("past the end of the file") != std::string::npos);
    if (!ok && failures++ < 5) FAIL_CHECK("prefix of ", n, " bytes: '", m, "'");
  }
  CHECK(failures == 0);
  MESSAGE("every one of the ", file.size(), " strict prefixes gave a truncation error");
}

TEST_CASE("gguf corruption: random byte changes never crash or read out of bounds") {
  std::vector<std::pair<std::string, quantised>> expected;
  const g::bytes file = everything_file(&expected).build();
  std::mt19937 gen(2026);
  std::size_t opened = 0, refused = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    g::bytes bad = file;
    // Mostly the header and tables, where corruption matters; sometimes anywhere.
    const std::size_t region =
        trial % 4 == 0 ? bad.size() : std::min<std::size_t>(bad.size(), 1200);
    for (int k = 0, n = 1 + static_cast<int>(gen() % 4); k < n; ++k) {
      const std::size_t i = gen() % region;
      bad[i] = trial % 3 == 0 ? static_cast<std::uint8_t>(bad[i] ^ (1u << (gen() % 8)))
                              : static_cast<std::uint8_t>(gen());
    }
    const std::string m = error_of([&] {
      const gguf_file f(bad, "fuzz.gguf");
      // What opened must be fully readable: every value and every readable tensor.
      for (const auto& kv : f.metadata()) {
        const gguf_value& v = kv.value;
        if (v.type() == gguf_value_type::array)
          for (std::size_t i = 0; i < v.size(); ++i) (void)v.element(i).type_text();
      }
      for (const auto& t : f.tensors())
        if (t.traits().fasa_reads) (void)fasa::model::dequantize(t);
    });
    (m.empty() ? opened : refused)++;
  }
  MESSAGE(opened, " corrupted files opened and read, ", refused, " refused with fasa::error");
  CHECK(refused > 0);
}

// ---- The default model ----------------------------------------------------------------------

namespace {

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (const char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Rows [first, first + n) of a Q8_0 or Q4_1 tensor from its bytes by the format's definition
// (half_value, the nibble order), independently of the reader's dequantize_row; the bounds are
// those of make_q8_0 and make_q4_1.
quantised reference_rows(const gguf_tensor_info& t, std::uint64_t first, std::uint64_t n) {
  const std::uint64_t len = t.row_length(), blocks_per_row = len / 32;
  const bool q8 = t.type == ggml_type::q8_0;
  const std::size_t block_bytes = q8 ? 34 : 20;
  quantised q;
  for (std::uint64_t r = first; r < first + n; ++r)
    for (std::uint64_t b = 0; b < blocks_per_row; ++b) {
      const std::uint8_t* p = t.data + (r * blocks_per_row + b) * block_bytes;
      const double d = half_value(static_cast<std::uint16_t>(p[0] | p[1] << 8));
      for (int j = 0; j < 32; ++j) {
        if (q8) {
          q.expected.push_back(static_cast<float>(static_cast<std::int8_t>(p[2 + j]) * d));
          q.bound.push_back(0.0);
        } else {
          const double m = half_value(static_cast<std::uint16_t>(p[2] | p[3] << 8));
          const double product = (j < 16 ? p[4 + j] & 15 : p[4 + j - 16] >> 4) * d;
          q.expected.push_back(product + m);
          q.bound.push_back(std::ldexp(std::abs(product) + std::abs(m), -23));
        }
      }
    }
  return q;
}

}  // namespace

TEST_CASE("gguf default model: SmolLM2-135M-Instruct Q4_1 configuration and weights") {
  const fs::path path = fasa::test::default_model_path();
  FASA_SKIP_UNLESS(fs::is_regular_file(path),
                   path.string() + " is missing; run scripts/fetch-model.sh or set FASA_MODEL");
  const gguf_file f(path);
  CHECK(f.version() == 3);
  CHECK(f.alignment() == 32);
  CHECK(f.get_string("general.architecture") == "llama");
  // The model's published configuration (config.json of HuggingFaceTB/SmolLM2-135M-Instruct).
  CHECK(f.get_int("llama.block_count") == 30);
  CHECK(f.get_int("llama.embedding_length") == 576);
  CHECK(f.get_int("llama.feed_forward_length") == 1536);
  CHECK(f.get_int("llama.attention.head_count") == 9);
  CHECK(f.get_int("llama.attention.head_count_kv") == 3);
  CHECK(f.get_float("llama.rope.freq_base") == 100000.0);
  CHECK(f.get_int("llama.rope.dimension_count") == 64);
  CHECK(f.get_int("llama.vocab_size") == 49152);
  CHECK(f.get_string("tokenizer.ggml.model") == "gpt2");
  CHECK(f.get_string("tokenizer.ggml.pre") == "smollm");
  const auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  CHECK(tokens.size() == 49152);
  CHECK(f.get_int_array("tokenizer.ggml.token_type").size() == 49152);
  CHECK(f.get_int("tokenizer.ggml.eos_token_id") == 2);
  CHECK(tokens[2] == "<|im_end|>");

  // Tensors: per layer 9 (4 attention, 3 FFN, 2 norms), plus the embedding and the final norm
  // (the output projection is tied to the embedding).
  CHECK(f.tensors().size() == 2 + 9 * 30);
  CHECK(f.find_tensor("output.weight") == nullptr);
  std::set<std::string> types;
  for (const auto& t : f.tensors()) types.insert(std::string(fasa::model::to_string(t.type)));
  CHECK(types == std::set<std::string>{"F32", "Q4_1", "Q8_0"});
  const gguf_tensor_info& emb = f.tensor("token_embd.weight");
  CHECK(emb.type == ggml_type::q8_0);
  CHECK(emb.dims == std::vector<std::uint64_t>{576, 49152});
  const gguf_tensor_info& wq = f.tensor("blk.0.attn_q.weight");
  CHECK(wq.type == ggml_type::q4_1);
  CHECK(wq.dims == std::vector<std::uint64_t>{576, 576});
  CHECK(f.tensor("blk.0.attn_k.weight").dims == std::vector<std::uint64_t>{576, 192});
  CHECK(f.tensor("blk.29.ffn_down.weight").dims == std::vector<std::uint64_t>{1536, 576});

  // Rows of both quantised types against the format's definition applied to the file's bytes.
  for (const auto& [t, first, n] : {std::tuple{&emb, 0ul, 3ul}, std::tuple{&emb, 49149ul, 3ul},
                                    std::tuple{&wq, 0ul, 4ul}, std::tuple{&wq, 572ul, 4ul}}) {
    std::vector<float> got(n * t->row_length());
    fasa::model::dequantize_rows(*t, first, n, got);
    check_values(got, reference_rows(*t, first, n), 0, t->name);
  }
  const std::vector<float> norm = f.dequantize("output_norm.weight");
  CHECK(norm.size() == 576);
  CHECK(std::all_of(norm.begin(), norm.end(), [](float x) { return std::isfinite(x); }));
}

TEST_CASE("gguf default model: tensor table, metadata and dequantisation match Python gguf") {
  const fs::path path = fasa::test::default_model_path();
  FASA_SKIP_UNLESS(fs::is_regular_file(path),
                   path.string() + " is missing; run scripts/fetch-model.sh or set FASA_MODEL");
#ifdef FASA_SOURCE_DIR
  const fs::path script = fs::path(FASA_SOURCE_DIR) / "tests" / "model" / "gguf_reference.py";
#else
  const fs::path script = fs::path(__FILE__).parent_path() / "gguf_reference.py";
#endif
  FASA_SKIP_UNLESS(fs::is_regular_file(script), "the script " + script.string() + " is missing");
  const std::string python = fasa::test::python_executable();
  FASA_SKIP_UNLESS(
      std::system((shell_quote(python) + " -c 'import gguf, numpy' >/dev/null 2>&1").c_str()) == 0,
      python + " cannot import gguf and numpy (pip install gguf numpy, or set FASA_PYTHON)");

  const gguf_file f(path);
  temp_dir dir;
  const fs::path bin_path = dir.path / "values.bin", manifest_path = dir.path / "manifest.json";
  std::ofstream bin(bin_path, std::ios::binary);
  std::uint64_t bin_offset = 0;
  const auto put = [&](const void* p, std::size_t n) {
    bin.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
    bin_offset += n;
  };

  using json = nlohmann::json;
  json m;
  m["bin"] = bin_path.string();
  m["version"] = f.version();
  m["alignment"] = f.alignment();
  m["data_offset"] = f.data_offset();

  // Metadata as the reader sees it: strings as hex (any bytes), floats as numbers.
  static constexpr char hex[] = "0123456789abcdef";
  const auto to_hex = [](std::string_view s) {
    std::string h;
    for (const unsigned char c : s) {
      h += hex[c >> 4];
      h += hex[c & 15];
    }
    return h;
  };
  std::function<json(const gguf_value&)> to_json = [&](const gguf_value& v) -> json {
    switch (v.type()) {
      case gguf_value_type::string:
        return to_hex(v.as_string());
      case gguf_value_type::boolean:
        return v.as_bool();
      case gguf_value_type::float32:
      case gguf_value_type::float64:
        return std::isfinite(v.as_float()) ? json(v.as_float())
                                           : json(std::to_string(v.as_float()));
      case gguf_value_type::array: {
        json a = json::array();
        for (std::size_t i = 0; i < v.size(); ++i) a.push_back(to_json(v.element(i)));
        return a;
      }
      default:
        return fasa::model::is_signed_integer(v.type()) ? json(v.as_int())
                                                        : json(v.as_int<std::uint64_t>());
    }
  };
  for (const auto& kv : f.metadata()) {
    json e{{"key", kv.key}, {"type", fasa::model::to_string(kv.value.type())}};
    if (kv.value.type() == gguf_value_type::array)
      e["element_type"] = fasa::model::to_string(kv.value.element_type());
    e["value"] = to_json(kv.value);
    m["metadata"].push_back(e);
  }
  for (const auto& t : f.tensors())
    m["tensors"].push_back({{"name", t.name},
                            {"type", static_cast<std::uint32_t>(t.type)},
                            {"dims", t.dims},
                            {"offset", t.offset},
                            {"n_bytes", t.n_bytes}});

  // Rows of values (float32) and every row's sum (float64) of a few tensors.
  const auto dump_rows = [&](const gguf_tensor_info& t, std::uint64_t first, std::uint64_t n) {
    std::vector<float> v(n * t.row_length());
    fasa::model::dequantize_rows(t, first, n, v);
    m["rows"].push_back({{"tensor", t.name},
                         {"first_row", first},
                         {"n_rows", n},
                         {"row_length", t.row_length()},
                         {"byte_offset", bin_offset}});
    put(v.data(), v.size() * sizeof(float));
  };
  const auto dump_row_sums = [&](const gguf_tensor_info& t) {
    std::vector<double> sums;
    const std::uint64_t chunk = 1000;  // dequantize_rows over the whole tensor, in pieces
    for (std::uint64_t first = 0; first < t.n_rows(); first += chunk) {
      const std::uint64_t n = std::min(chunk, t.n_rows() - first);
      std::vector<float> v(n * t.row_length());
      fasa::model::dequantize_rows(t, first, n, v);
      for (std::uint64_t r = 0; r < n; ++r) {
        double s = 0.0;
        for (std::uint64_t j = 0; j < t.row_length(); ++j) s += v[r * t.row_length() + j];
        sums.push_back(s);
      }
    }
    m["row_sums"].push_back(
        {{"tensor", t.name}, {"n_rows", t.n_rows()}, {"byte_offset", bin_offset}});
    put(sums.data(), sums.size() * sizeof(double));
  };
  const gguf_tensor_info& emb = f.tensor("token_embd.weight");
  dump_rows(emb, 0, 64);
  dump_rows(emb, 24576, 64);
  dump_rows(emb, emb.n_rows() - 64, 64);
  dump_row_sums(emb);
  for (const char* name : {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.29.ffn_down.weight",
                           "blk.0.attn_norm.weight", "output_norm.weight"}) {
    const gguf_tensor_info& t = f.tensor(name);
    dump_rows(t, 0, t.n_rows());
    dump_row_sums(t);
  }
  bin.close();
  REQUIRE(bin.good());
  std::ofstream(manifest_path) << m.dump();

  const fs::path log = dir.path / "log.txt";
  const std::string command =
      shell_quote(python) + " " + shell_quote(script.string()) + " " + shell_quote(path.string()) +
      " " + shell_quote(manifest_path.string()) + " > " + shell_quote(log.string()) + " 2>&1";
  const int rc = std::system(command.c_str());
  std::ifstream in(log);
  const std::string output((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  INFO("command: ", command, "\noutput:\n", output);
  CHECK(rc == 0);
  CHECK(output.find("gguf_reference: all checks passed") != std::string::npos);
}
