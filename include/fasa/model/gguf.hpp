// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// A reader for GGUF, the file format of ggml/llama.cpp models (versions 3 and 2; both are
// little-endian and laid out identically, v3 only added big-endian files, which are refused).
//
//   header        "GGUF", uint32 version, uint64 tensor_count, uint64 kv_count
//   metadata      kv_count x {string key, uint32 value_type, value}
//                 string = uint64 length + bytes (no terminator);
//                 array  = uint32 element_type, uint64 count, count values (arrays may nest)
//   tensor infos  tensor_count x {string name, uint32 n_dims, uint64 dims[n_dims],
//                                 uint32 ggml_type, uint64 offset}
//   padding       to general.alignment (default 32, a power of two)
//   data          tensor bytes at data_offset() + offset; each offset a multiple of the alignment
//
// The file is memory-mapped read-only (POSIX mmap; elsewhere it is read into memory) and held
// by gguf_file, an RAII, move-only object: string values and tensor data are views into the
// mapping, valid while the gguf_file lives (moving it keeps them valid).
//
// A GGUF file is untrusted input. Every read is bounds-checked before it happens, every count
// is checked against the bytes that remain before anything is allocated for it, and the first
// problem throws one fasa::error that names the file, the problem, the field (metadata key,
// tensor name) and the byte offset. Nothing reads past the buffer.
//
// Dequantisation to float covers F32, F16, BF16, Q8_0, Q4_0 and Q4_1, with ggml's block layouts
// (ggml-common.h, dequantize_row_* in ggml-quants.c). Files holding other ggml types open, and
// their metadata and tensor table read normally; only dequantising such a tensor throws.

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define FASA_GGUF_HAS_MMAP 1
#else
#define FASA_GGUF_HAS_MMAP 0
#endif

#include "fasa/core/error.hpp"

// Throws fasa::error for a malformed file: "<source>: <message parts>", with the parsing function
// and line of the check (FASA_FAIL adds them). Only used inside gguf_file; #undef at the end.
#define FASA_GGUF_FAIL(...) FASA_FAIL(source_, ": ", __VA_ARGS__)

namespace fasa::model {

// ---- Value and tensor types -----------------------------------------------------------------

// GGUF metadata value types, numbered as in the file.
enum class gguf_value_type : std::uint32_t {
  uint8 = 0,
  int8 = 1,
  uint16 = 2,
  int16 = 3,
  uint32 = 4,
  int32 = 5,
  float32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  uint64 = 10,
  int64 = 11,
  float64 = 12,
};

inline constexpr std::uint32_t gguf_value_type_count = 13;

constexpr std::string_view to_string(gguf_value_type t) noexcept {
  constexpr std::string_view names[gguf_value_type_count] = {
      "uint8", "int8",   "uint16", "int16",  "uint32", "int32",  "float32",
      "bool",  "string", "array",  "uint64", "int64",  "float64"};
  const auto i = static_cast<std::uint32_t>(t);
  return i < gguf_value_type_count ? names[i] : std::string_view("unknown");
}

constexpr bool is_integer(gguf_value_type t) noexcept {
  switch (t) {
    case gguf_value_type::uint8:
    case gguf_value_type::int8:
    case gguf_value_type::uint16:
    case gguf_value_type::int16:
    case gguf_value_type::uint32:
    case gguf_value_type::int32:
    case gguf_value_type::uint64:
    case gguf_value_type::int64:
      return true;
    default:
      return false;
  }
}
constexpr bool is_signed_integer(gguf_value_type t) noexcept {
  return t == gguf_value_type::int8 || t == gguf_value_type::int16 || t == gguf_value_type::int32 ||
         t == gguf_value_type::int64;
}
constexpr bool is_float(gguf_value_type t) noexcept {
  return t == gguf_value_type::float32 || t == gguf_value_type::float64;
}

// Bytes of one scalar of type t in the file; 0 for string and array (variable size).
constexpr std::uint64_t gguf_scalar_size(gguf_value_type t) noexcept {
  switch (t) {
    case gguf_value_type::uint8:
    case gguf_value_type::int8:
    case gguf_value_type::boolean:
      return 1;
    case gguf_value_type::uint16:
    case gguf_value_type::int16:
      return 2;
    case gguf_value_type::uint32:
    case gguf_value_type::int32:
    case gguf_value_type::float32:
      return 4;
    case gguf_value_type::uint64:
    case gguf_value_type::int64:
    case gguf_value_type::float64:
      return 8;
    default:
      return 0;
  }
}

// ggml tensor types, numbered as in ggml.h (ids 4, 5 and 31-33, 36-38 belong to removed types).
// fasa dequantises f32, f16, bf16, q8_0, q4_0 and q4_1; the others are named so that a file
// holding them opens and the error for such a tensor can say what it is.
enum class ggml_type : std::uint32_t {
  f32 = 0,
  f16 = 1,
  q4_0 = 2,
  q4_1 = 3,
  q5_0 = 6,
  q5_1 = 7,
  q8_0 = 8,
  q8_1 = 9,
  q2_k = 10,
  q3_k = 11,
  q4_k = 12,
  q5_k = 13,
  q6_k = 14,
  q8_k = 15,
  iq2_xxs = 16,
  iq2_xs = 17,
  iq3_xxs = 18,
  iq1_s = 19,
  iq4_nl = 20,
  iq3_s = 21,
  iq2_s = 22,
  iq4_xs = 23,
  i8 = 24,
  i16 = 25,
  i32 = 26,
  i64 = 27,
  f64 = 28,
  iq1_m = 29,
  bf16 = 30,
  tq1_0 = 34,
  tq2_0 = 35,
  mxfp4 = 39,
  nvfp4 = 40,
  q1_0 = 41,
};

// A ggml type's storage: `block_size` elements take `type_size` bytes (ggml's blck_size and
// type_size; 1 and sizeof(element) for the plain types).
struct ggml_type_traits {
  std::string_view name;  // as ggml prints it: "Q4_1"
  std::uint32_t block_size = 0;
  std::uint32_t type_size = 0;
  bool fasa_reads = false;  // dequantize() supports it
};

namespace detail {

struct ggml_type_row {
  std::uint32_t id;
  ggml_type_traits traits;
};

// Sizes as in ggml's type_traits (QK_K = 256 for the k-quants).
inline constexpr ggml_type_row ggml_type_table[] = {
    {0, {"F32", 1, 4, true}},          {1, {"F16", 1, 2, true}},
    {2, {"Q4_0", 32, 18, true}},       {3, {"Q4_1", 32, 20, true}},
    {6, {"Q5_0", 32, 22, false}},      {7, {"Q5_1", 32, 24, false}},
    {8, {"Q8_0", 32, 34, true}},       {9, {"Q8_1", 32, 40, false}},
    {10, {"Q2_K", 256, 84, false}},    {11, {"Q3_K", 256, 110, false}},
    {12, {"Q4_K", 256, 144, false}},   {13, {"Q5_K", 256, 176, false}},
    {14, {"Q6_K", 256, 210, false}},   {15, {"Q8_K", 256, 292, false}},
    {16, {"IQ2_XXS", 256, 66, false}}, {17, {"IQ2_XS", 256, 74, false}},
    {18, {"IQ3_XXS", 256, 98, false}}, {19, {"IQ1_S", 256, 50, false}},
    {20, {"IQ4_NL", 32, 18, false}},   {21, {"IQ3_S", 256, 110, false}},
    {22, {"IQ2_S", 256, 82, false}},   {23, {"IQ4_XS", 256, 136, false}},
    {24, {"I8", 1, 1, false}},         {25, {"I16", 1, 2, false}},
    {26, {"I32", 1, 4, false}},        {27, {"I64", 1, 8, false}},
    {28, {"F64", 1, 8, false}},        {29, {"IQ1_M", 256, 56, false}},
    {30, {"BF16", 1, 2, true}},        {34, {"TQ1_0", 256, 54, false}},
    {35, {"TQ2_0", 256, 66, false}},   {39, {"MXFP4", 32, 17, false}},
    {40, {"NVFP4", 64, 36, false}},    {41, {"Q1_0", 128, 18, false}},
};

inline constexpr std::string_view ggml_types_fasa_reads = "F32, F16, BF16, Q8_0, Q4_0, Q4_1";

}  // namespace detail

// The traits of ggml type `id`, or nullptr when ggml has no such type.
constexpr const ggml_type_traits* find_ggml_type(std::uint32_t id) noexcept {
  for (const auto& row : detail::ggml_type_table)
    if (row.id == id) return &row.traits;
  return nullptr;
}

constexpr std::string_view to_string(ggml_type t) noexcept {
  const auto* traits = find_ggml_type(static_cast<std::uint32_t>(t));
  return traits ? traits->name : std::string_view("unknown");
}

// ---- Scalar conversions ---------------------------------------------------------------------

// IEEE 754 binary16 -> binary32, exactly (every half is a float), in plain integer arithmetic so
// that no F16C or _Float16 support is needed. Subnormal halves become normal floats; infinities
// stay infinite and NaNs stay NaN with their payload.
constexpr float fp16_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1fu)  // inf (mantissa 0) or NaN
    return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  if (exponent != 0)  // normal: rebias the exponent from 15 to 127
    return std::bit_cast<float>(sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13));
  if (mantissa == 0) return std::bit_cast<float>(sign);  // +-0
  // Subnormal: mantissa * 2^-24 = 0.mantissa * 2^-14. Shift the leading 1 up into the implicit
  // bit (bit 10) and lower the exponent by one per shift.
  std::uint32_t float_exponent = 127 - 14;
  while ((mantissa & 0x400u) == 0) {
    mantissa <<= 1;
    --float_exponent;
  }
  return std::bit_cast<float>(sign | (float_exponent << 23) | ((mantissa & 0x3ffu) << 13));
}

// bfloat16 is the upper half of a binary32.
constexpr float bf16_to_float(std::uint16_t h) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16);
}

namespace detail {

// Little-endian loads from unaligned bytes, independent of the host's byte order.
constexpr std::uint16_t load_le16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
constexpr std::uint32_t load_le32(const std::uint8_t* p) noexcept {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
constexpr std::uint32_t byteswap32(std::uint32_t v) noexcept {  // std::byteswap is C++23
  return (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
}
constexpr std::uint64_t load_le64(const std::uint8_t* p) noexcept {
  return static_cast<std::uint64_t>(load_le32(p)) |
         (static_cast<std::uint64_t>(load_le32(p + 4)) << 32);
}

// A name from the file, printable in a message: non-printable bytes as \xNN, long names cut.
inline std::string printable(std::string_view s, std::size_t limit = 96) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i == limit) {
      out += fasa::detail::concat("... (", s.size(), " bytes)");
      break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace detail

// ---- Metadata values ------------------------------------------------------------------------

// One metadata value: a scalar, a string or a typed array (whose elements may be arrays).
// Strings and scalar arrays are views into the file's bytes.
class gguf_value {
 public:
  gguf_value() = default;

  gguf_value_type type() const noexcept { return type_; }

  // Scalars and strings. Each throws fasa::error when the value has another type;
  // gguf_file's get_* accessors check first and name the key.
  bool as_bool() const {
    check_type(type_ == gguf_value_type::boolean, "a bool");
    return bits_ != 0;
  }
  std::string_view as_string() const {
    check_type(type_ == gguf_value_type::string, "a string");
    return string_;
  }
  // float32 or float64, as double (exact for both).
  double as_float() const {
    check_type(is_float(type_), "a float (float32 or float64)");
    return type_ == gguf_value_type::float32
               ? static_cast<double>(std::bit_cast<float>(static_cast<std::uint32_t>(bits_)))
               : std::bit_cast<double>(bits_);
  }
  // Any integer type; fits_in<T>() says whether as_int<T>() is in range.
  template <class T = std::int64_t>
  requires(std::is_integral_v<T> && !std::is_same_v<T, bool>) bool fits_in() const {
    check_type(is_integer(type_), "an integer");
    return is_signed_integer(type_) ? std::in_range<T>(signed_bits()) : std::in_range<T>(bits_);
  }
  template <class T = std::int64_t>
  requires(std::is_integral_v<T> && !std::is_same_v<T, bool>) T as_int()
  const {
    FASA_CHECK(fits_in<T>(), "metadata value ", integer_text(), " (", to_string(type_),
               ") is out of range of the requested ", sizeof(T) * 8, "-bit integer");
    return is_signed_integer(type_) ? static_cast<T>(signed_bits()) : static_cast<T>(bits_);
  }
  // The integer as text in its own signedness (for messages).
  std::string integer_text() const {
    return is_signed_integer(type_) ? std::to_string(signed_bits()) : std::to_string(bits_);
  }

  // Arrays: the element type, the number of elements and element i (a copy: cheap for scalars
  // and strings, which view the file; a nested array copies its element list).
  gguf_value_type element_type() const {
    check_type(type_ == gguf_value_type::array, "an array");
    return element_type_;
  }
  std::size_t size() const {
    check_type(type_ == gguf_value_type::array, "an array");
    return size_;
  }
  gguf_value element(std::size_t i) const {
    check_type(type_ == gguf_value_type::array, "an array");
    FASA_CHECK(i < size_, "array element ", i, " requested from an array of ", size_);
    if (element_type_ == gguf_value_type::string) return string_value(strings_[i]);
    if (element_type_ == gguf_value_type::array) return items_[i];
    return scalar(element_type_, raw_ + i * gguf_scalar_size(element_type_));
  }

  // "uint32", "array of 49152 string", "array of 2 array"
  std::string type_text() const {
    if (type_ != gguf_value_type::array) return std::string(to_string(type_));
    return fasa::detail::concat("array of ", size_, ' ', to_string(element_type_));
  }

 private:
  friend class gguf_file;

  // A scalar of type t (not string or array) from its little-endian bytes at p.
  static gguf_value scalar(gguf_value_type t, const std::uint8_t* p) {
    gguf_value v;
    v.type_ = t;
    switch (gguf_scalar_size(t)) {
      case 1:
        v.bits_ = p[0];
        break;
      case 2:
        v.bits_ = detail::load_le16(p);
        break;
      case 4:
        v.bits_ = detail::load_le32(p);
        break;
      default:
        v.bits_ = detail::load_le64(p);
        break;
    }
    return v;
  }
  static gguf_value string_value(std::string_view s) {
    gguf_value v;
    v.type_ = gguf_value_type::string;
    v.string_ = s;
    return v;
  }
  // The stored bits sign-extended from the type's width.
  std::int64_t signed_bits() const noexcept {
    switch (type_) {
      case gguf_value_type::int8:
        return static_cast<std::int8_t>(bits_);
      case gguf_value_type::int16:
        return static_cast<std::int16_t>(bits_);
      case gguf_value_type::int32:
        return static_cast<std::int32_t>(bits_);
      default:
        return static_cast<std::int64_t>(bits_);
    }
  }
  void check_type(bool ok, const char* wanted) const {
    FASA_CHECK(ok, "metadata value is ", type_text(), ", not ", wanted);
  }

  gguf_value_type type_ = gguf_value_type::uint8;
  std::uint64_t bits_ = 0;  // scalars: the raw little-endian bits, zero-extended
  std::string_view string_;
  // Arrays. Scalar elements stay in the file (raw_, size_ elements of element_type_); strings
  // are views (strings_); nested arrays are parsed values (items_).
  gguf_value_type element_type_ = gguf_value_type::uint8;
  std::size_t size_ = 0;
  const std::uint8_t* raw_ = nullptr;
  std::vector<std::string_view> strings_;
  std::vector<gguf_value> items_;
};

// One metadata entry, in file order.
struct gguf_kv {
  std::string key;
  gguf_value value;
  std::uint64_t file_offset = 0;  // where the entry (its key) starts
};

// ---- Tensors --------------------------------------------------------------------------------

struct gguf_tensor_info {
  std::string name;
  // ggml order: dims[0] is the fastest-varying dimension (the row length); a PyTorch weight of
  // shape [out, in] is stored as dims {in, out}: out rows of `in` elements each.
  std::vector<std::uint64_t> dims;
  ggml_type type = ggml_type::f32;
  std::uint64_t offset = 0;            // from the start of the data section
  std::uint64_t n_elements = 0;        // product of dims
  std::uint64_t n_bytes = 0;           // n_elements / block_size * type_size
  const std::uint8_t* data = nullptr;  // n_bytes bytes; valid while the gguf_file lives
  std::uint64_t info_offset = 0;       // file offset of this tensor's entry in the tensor infos

  const ggml_type_traits& traits() const {
    return *find_ggml_type(static_cast<std::uint32_t>(type));
  }
  std::uint64_t row_length() const { return dims.empty() ? 1 : dims[0]; }
  std::uint64_t n_rows() const {
    std::uint64_t rows = 1;
    for (std::size_t i = 1; i < dims.size(); ++i) rows *= dims[i];  // no overflow: checked
    return rows;
  }
  std::uint64_t row_bytes() const {
    return row_length() / traits().block_size * traits().type_size;
  }
  std::span<const std::uint8_t> bytes() const { return {data, static_cast<std::size_t>(n_bytes)}; }
  // "[576, 49152]"
  std::string dims_text() const {
    std::string s = "[";
    for (std::size_t i = 0; i < dims.size(); ++i) s += fasa::detail::concat(i ? ", " : "", dims[i]);
    return s + "]";
  }
};

// ---- Dequantisation -------------------------------------------------------------------------

namespace detail {

inline void check_fasa_reads(std::uint32_t type_id, std::string_view tensor_name) {
  const auto* traits = find_ggml_type(type_id);
  if (traits && traits->fasa_reads) return;
  FASA_FAIL(tensor_name.empty() ? std::string("a tensor")
                                : fasa::detail::concat("tensor '", printable(tensor_name), "'"),
            " has type ", type_id, " (", traits ? traits->name : "unknown",
            "), which fasa does not read; supported: ", ggml_types_fasa_reads);
}

}  // namespace detail

// Dequantises `dst.size()` consecutive elements of type `type` from `src`, which must hold
// exactly the bytes of those elements (dst.size() a multiple of the type's block size).
// Block layouts, as in ggml (all little-endian, fp16 scales):
//   Q8_0: 32 elements in {fp16 d; int8 qs[32]}:      x[j] = qs[j] * d
//   Q4_0: 32 elements in {fp16 d; uint8 qs[16]}:     x[j] = ((qs[j] & 15) - 8) * d,
//                                                    x[j + 16] = ((qs[j] >> 4) - 8) * d
//   Q4_1: 32 elements in {fp16 d; fp16 m; uint8 qs[16]}: x[j] = (qs[j] & 15) * d + m,
//                                                    x[j + 16] = (qs[j] >> 4) * d + m
// The arithmetic is ggml's, in float (product, then sum), so results match ggml and gguf-py.
inline void dequantize_row(ggml_type type, std::span<const std::uint8_t> src,
                           std::span<float> dst) {
  const auto id = static_cast<std::uint32_t>(type);
  detail::check_fasa_reads(id, {});
  const ggml_type_traits& t = *find_ggml_type(id);
  FASA_CHECK(dst.size() % t.block_size == 0, "dequantize_row: ", dst.size(),
             " elements is not a multiple of the ", t.name, " block size ", t.block_size);
  const std::size_t blocks = dst.size() / t.block_size;
  FASA_CHECK(src.size() == blocks * t.type_size, "dequantize_row: ", dst.size(), " ", t.name,
             " elements take ", blocks * t.type_size, " bytes, got ", src.size());
  const std::uint8_t* p = src.data();
  float* y = dst.data();
  switch (type) {
    case ggml_type::f32:
      if constexpr (std::endian::native == std::endian::little) {
        if (!dst.empty()) std::memcpy(y, p, dst.size() * sizeof(float));
      } else {
        for (std::size_t i = 0; i < dst.size(); ++i)
          y[i] = std::bit_cast<float>(detail::load_le32(p + 4 * i));
      }
      break;
    case ggml_type::f16:
      for (std::size_t i = 0; i < dst.size(); ++i)
        y[i] = fp16_to_float(detail::load_le16(p + 2 * i));
      break;
    case ggml_type::bf16:
      for (std::size_t i = 0; i < dst.size(); ++i)
        y[i] = bf16_to_float(detail::load_le16(p + 2 * i));
      break;
    case ggml_type::q8_0:
      for (std::size_t b = 0; b < blocks; ++b, p += 34, y += 32) {
        const float d = fp16_to_float(detail::load_le16(p));
        for (int j = 0; j < 32; ++j)
          y[j] = static_cast<float>(static_cast<std::int8_t>(p[2 + j])) * d;
      }
      break;
    case ggml_type::q4_0:
      for (std::size_t b = 0; b < blocks; ++b, p += 18, y += 32) {
        const float d = fp16_to_float(detail::load_le16(p));
        for (int j = 0; j < 16; ++j) {
          y[j] = static_cast<float>((p[2 + j] & 0x0f) - 8) * d;     // low nibbles: elements 0..15
          y[j + 16] = static_cast<float>((p[2 + j] >> 4) - 8) * d;  // high: 16..31
        }
      }
      break;
    case ggml_type::q4_1:
      for (std::size_t b = 0; b < blocks; ++b, p += 20, y += 32) {
        const float d = fp16_to_float(detail::load_le16(p));
        const float m = fp16_to_float(detail::load_le16(p + 2));
        for (int j = 0; j < 16; ++j) {
          y[j] = static_cast<float>(p[4 + j] & 0x0f) * d + m;
          y[j + 16] = static_cast<float>(p[4 + j] >> 4) * d + m;
        }
      }
      break;
    default:
      FASA_FAIL("dequantize_row: unreachable type ", id);
  }
}

// Dequantises rows [first_row, first_row + n_rows) of `t` (a row is dims[0] elements) into
// `out`, which must hold exactly n_rows * t.row_length() floats.
inline void dequantize_rows(const gguf_tensor_info& t, std::uint64_t first_row,
                            std::uint64_t n_rows, std::span<float> out) {
  detail::check_fasa_reads(static_cast<std::uint32_t>(t.type), t.name);
  const std::uint64_t rows = t.n_rows();
  FASA_CHECK(first_row <= rows && n_rows <= rows - first_row, "rows [", first_row, ", ", first_row,
             " + ", n_rows, ") of tensor '", detail::printable(t.name),
             "' are out of range: it has ", rows, " rows of ", t.row_length(), " elements (dims ",
             t.dims_text(), ")");
  FASA_CHECK(out.size() == n_rows * t.row_length(), "dequantising ", n_rows, " rows of tensor '",
             detail::printable(t.name), "' needs ", n_rows * t.row_length(),
             " floats, the output holds ", out.size());
  if (n_rows == 0 || t.row_length() == 0) return;
  const std::uint64_t row_bytes = t.row_bytes();
  dequantize_row(t.type,
                 std::span<const std::uint8_t>(t.data + first_row * row_bytes,
                                               static_cast<std::size_t>(n_rows * row_bytes)),
                 out);
}

inline void dequantize(const gguf_tensor_info& t, std::span<float> out) {
  dequantize_rows(t, 0, t.n_rows(), out);
}

inline std::vector<float> dequantize(const gguf_tensor_info& t) {
  detail::check_fasa_reads(static_cast<std::uint32_t>(t.type), t.name);
  std::vector<float> out(static_cast<std::size_t>(t.n_elements));
  dequantize(t, out);
  return out;
}

// ---- The file -------------------------------------------------------------------------------

namespace detail {

// The bytes of a GGUF file: a read-only private mapping, or an owned heap copy of exactly the
// file's size (so that AddressSanitizer sees any read past the end). Move-only.
class gguf_bytes {
 public:
  gguf_bytes() = default;
  gguf_bytes(gguf_bytes&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)),
        mapped_(std::exchange(o.mapped_, false)),
        owned_(std::move(o.owned_)) {}
  gguf_bytes& operator=(gguf_bytes&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      mapped_ = std::exchange(o.mapped_, false);
      owned_ = std::move(o.owned_);
    }
    return *this;
  }
  gguf_bytes(const gguf_bytes&) = delete;
  gguf_bytes& operator=(const gguf_bytes&) = delete;
  ~gguf_bytes() { release(); }

  static gguf_bytes copy_of(std::span<const std::uint8_t> bytes) {
    gguf_bytes b;
    b.owned_ = std::make_unique_for_overwrite<std::uint8_t[]>(bytes.size());
    if (!bytes.empty()) std::memcpy(b.owned_.get(), bytes.data(), bytes.size());
    b.data_ = b.owned_.get();
    b.size_ = bytes.size();
    return b;
  }

  static gguf_bytes map_file(const std::filesystem::path& path) {
#if FASA_GGUF_HAS_MMAP
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    FASA_CHECK(fd >= 0, "cannot open GGUF file '", path.string(), "': ", std::strerror(errno));
    struct fd_closer {
      int fd;
      ~fd_closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    FASA_CHECK(::fstat(fd, &st) == 0, "cannot stat GGUF file '", path.string(),
               "': ", std::strerror(errno));
    FASA_CHECK(S_ISREG(st.st_mode), "GGUF file '", path.string(), "' is not a regular file");
    gguf_bytes b;
    if (st.st_size == 0) return b;  // mmap refuses length 0; the parser reports the empty file
    void* p = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    FASA_CHECK(p != MAP_FAILED, "cannot memory-map GGUF file '", path.string(), "' (", st.st_size,
               " bytes): ", std::strerror(errno));
    b.data_ = static_cast<const std::uint8_t*>(p);
    b.size_ = static_cast<std::size_t>(st.st_size);
    b.mapped_ = true;
    return b;
#else
    std::ifstream in(path, std::ios::binary);
    FASA_CHECK(in, "cannot open GGUF file '", path.string(), "'");
    std::vector<std::uint8_t> all((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
    return copy_of(all);
#endif
  }

  const std::uint8_t* data() const noexcept { return data_; }
  std::uint64_t size() const noexcept { return size_; }

 private:
  void release() noexcept {
#if FASA_GGUF_HAS_MMAP
    if (mapped_) ::munmap(const_cast<std::uint8_t*>(data_), size_);
#endif
    owned_.reset();
    data_ = nullptr;
    size_ = 0;
    mapped_ = false;
  }

  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  bool mapped_ = false;
  std::unique_ptr<std::uint8_t[]> owned_;
};

}  // namespace detail

class gguf_file {
 public:
  // Memory-maps and parses the file; throws fasa::error naming the path on any problem.
  explicit gguf_file(const std::filesystem::path& path)
      : source_(path.string()), bytes_(detail::gguf_bytes::map_file(path)) {
    parse();
  }
  // Parses a copy of `bytes`; `name` stands for the file in messages.
  explicit gguf_file(std::span<const std::uint8_t> bytes, std::string name = "<memory>")
      : source_(std::move(name)), bytes_(detail::gguf_bytes::copy_of(bytes)) {
    parse();
  }
  gguf_file(gguf_file&&) noexcept = default;
  gguf_file& operator=(gguf_file&&) noexcept = default;

  const std::string& source() const noexcept { return source_; }  // the path or buffer name
  std::uint32_t version() const noexcept { return version_; }
  std::uint64_t alignment() const noexcept { return alignment_; }
  std::uint64_t data_offset() const noexcept { return data_offset_; }  // file offset of the data
  std::uint64_t file_size() const noexcept { return bytes_.size(); }
  std::span<const std::uint8_t> bytes() const noexcept {
    return {bytes_.data(), static_cast<std::size_t>(bytes_.size())};
  }

  // ---- metadata ----
  std::span<const gguf_kv> metadata() const noexcept { return kvs_; }  // in file order
  bool has(std::string_view key) const { return find(key) != nullptr; }
  const gguf_value* find(std::string_view key) const {
    const auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
  }
  const gguf_value& value(std::string_view key) const {
    const gguf_value* v = find(key);
    FASA_CHECK(v, "missing metadata key '", detail::printable(key), "' in ", source_);
    return *v;
  }

  std::string get_string(std::string_view key) const {
    return std::string(checked(key, gguf_value_type::string).as_string());
  }
  bool get_bool(std::string_view key) const {
    return checked(key, gguf_value_type::boolean).as_bool();
  }
  // float32 or float64.
  double get_float(std::string_view key) const {
    const gguf_value& v = value(key);
    FASA_CHECK(is_float(v.type()), "metadata key '", detail::printable(key), "' in ", source_,
               " is ", v.type_text(), ", expected a float (float32 or float64)");
    return v.as_float();
  }
  // Any integer type, range-checked into T.
  template <class T = std::int64_t>
  requires(std::is_integral_v<T> && !std::is_same_v<T, bool>) T get_int(std::string_view key)
  const {
    const gguf_value& v = value(key);
    check_integer<T>(v, key, "");
    return v.as_int<T>();
  }

  std::vector<std::string> get_string_array(std::string_view key) const {
    const gguf_value& v = checked_array(key, gguf_value_type::string, "string");
    return std::vector<std::string>(v.strings_.begin(), v.strings_.end());
  }
  // Elements of any one integer type, each range-checked into T.
  template <class T = std::int64_t>
  requires(std::is_integral_v<T> &&
           !std::is_same_v<T, bool>) std::vector<T> get_int_array(std::string_view key)
  const {
    const gguf_value& v = value(key);
    FASA_CHECK(v.type() == gguf_value_type::array && is_integer(v.element_type_), "metadata key '",
               detail::printable(key), "' in ", source_, " is ", v.type_text(),
               ", expected an array of integers");
    std::vector<T> out(v.size());
    for (std::size_t i = 0; i < out.size(); ++i) {
      const gguf_value e = v.element(i);
      check_integer<T>(e, key, fasa::detail::concat("element ", i, " of "));
      out[i] = e.as_int<T>();
    }
    return out;
  }
  // Elements of float32 or float64, as double.
  std::vector<double> get_float_array(std::string_view key) const {
    const gguf_value& v = value(key);
    FASA_CHECK(v.type() == gguf_value_type::array && is_float(v.element_type_), "metadata key '",
               detail::printable(key), "' in ", source_, " is ", v.type_text(),
               ", expected an array of floats (float32 or float64)");
    std::vector<double> out(v.size());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = v.element(i).as_float();
    return out;
  }

  // ---- tensors ----
  std::span<const gguf_tensor_info> tensors() const noexcept { return tensors_; }  // file order
  const gguf_tensor_info* find_tensor(std::string_view name) const {
    const auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
  }
  const gguf_tensor_info& tensor(std::string_view name) const {
    const gguf_tensor_info* t = find_tensor(name);
    FASA_CHECK(t, "missing tensor '", detail::printable(name), "' in ", source_, " (it has ",
               tensors_.size(), " tensors)");
    return *t;
  }
  std::vector<float> dequantize(std::string_view name) const {
    return ::fasa::model::dequantize(tensor(name));
  }

 private:
  const gguf_value& checked(std::string_view key, gguf_value_type want) const {
    const gguf_value& v = value(key);
    FASA_CHECK(v.type() == want, "metadata key '", detail::printable(key), "' in ", source_, " is ",
               v.type_text(), ", expected ", to_string(want));
    return v;
  }
  const gguf_value& checked_array(std::string_view key, gguf_value_type element,
                                  std::string_view what) const {
    const gguf_value& v = value(key);
    FASA_CHECK(v.type() == gguf_value_type::array && v.element_type_ == element, "metadata key '",
               detail::printable(key), "' in ", source_, " is ", v.type_text(),
               ", expected an array of ", what);
    return v;
  }
  template <class T = std::int64_t>
  void check_integer(const gguf_value& v, std::string_view key, std::string_view prefix) const {
    FASA_CHECK(is_integer(v.type()), prefix, "metadata key '", detail::printable(key), "' in ",
               source_, " is ", v.type_text(), ", expected an integer");
    FASA_CHECK(v.fits_in<T>(), prefix, "metadata key '", detail::printable(key), "' in ", source_,
               " is ", v.integer_text(), " (", to_string(v.type()), "), out of range for ",
               std::is_signed_v<T> ? "a signed " : "an unsigned ", sizeof(T) * 8, "-bit integer [",
               +std::numeric_limits<T>::min(), ", ", +std::numeric_limits<T>::max(), "]");
  }

  // ---- parsing ----

  // Each entry is at least its key length (8), type (4) and one byte of value.
  static constexpr std::uint64_t min_kv_bytes = 8 + 4 + 1;
  // Each tensor info is at least its name length (8), n_dims (4), type (4) and offset (8).
  static constexpr std::uint64_t min_tensor_info_bytes = 8 + 4 + 4 + 8;
  // Arrays may nest; a bound keeps a crafted file from recursing the stack away.
  static constexpr int max_array_depth = 16;

  std::uint64_t remaining() const noexcept { return bytes_.size() - pos_; }

  // Throws unless n bytes remain at pos_; what() describes the item being read.
  template <class What>
  void need(std::uint64_t n, const What& what) const {
    if (n > remaining())
      FASA_GGUF_FAIL("truncated file: ", what(), " at byte offset ", pos_, " needs ", n,
                     " bytes, only ", remaining(), " remain");
  }
  template <class What>
  std::uint32_t read_u32(const What& what) {
    need(4, what);
    const auto v = detail::load_le32(bytes_.data() + pos_);
    pos_ += 4;
    return v;
  }
  template <class What>
  std::uint64_t read_u64(const What& what) {
    need(8, what);
    const auto v = detail::load_le64(bytes_.data() + pos_);
    pos_ += 8;
    return v;
  }
  template <class What>
  std::string_view read_string(const What& what) {
    const std::uint64_t at = pos_;
    const std::uint64_t length =
        read_u64([&] { return fasa::detail::concat("the length of ", what()); });
    if (length > remaining())
      FASA_GGUF_FAIL("string length ", length, " of ", what(), " at byte offset ", at,
                     " runs past the end of the file: only ", remaining(),
                     " bytes remain after it");
    const auto* p = reinterpret_cast<const char*>(bytes_.data() + pos_);
    pos_ += length;
    return {p, static_cast<std::size_t>(length)};
  }
  // Reads a value type: `kind` "value" (of `subject`, a metadata key) or "element" (of the
  // array `subject`).
  template <class Subject>
  gguf_value_type read_value_type(const char* kind, const Subject& subject) {
    const std::uint64_t at = pos_;
    const std::uint32_t t =
        read_u32([&] { return fasa::detail::concat("the ", kind, " type of ", subject()); });
    if (t >= gguf_value_type_count)
      FASA_GGUF_FAIL(
          subject(), " has unknown ", kind, " type ", t, " at byte offset ", at,
          "; GGUF defines 0..12 (uint8, int8, uint16, int16, uint32, int32, float32, bool, "
          "string, array, uint64, int64, float64)");
    return static_cast<gguf_value_type>(t);
  }

  // Reads one value of type t at pos_; what() names it ("metadata key 'x'", "element 3 of ...").
  // Not a template on `what`: nested arrays recurse, and a lambda type per level would
  // instantiate without end.
  gguf_value read_value(gguf_value_type t, const std::function<std::string()>& what, int depth) {
    const std::uint64_t at = pos_;
    if (t == gguf_value_type::string) return gguf_value::string_value(read_string(what));
    if (t != gguf_value_type::array) {
      const std::uint64_t n = gguf_scalar_size(t);
      need(n, [&] { return fasa::detail::concat("the ", to_string(t), " value of ", what()); });
      gguf_value v = gguf_value::scalar(t, bytes_.data() + pos_);
      if (t == gguf_value_type::boolean && v.bits_ > 1)
        FASA_GGUF_FAIL("bool value ", v.bits_, " of ", what(), " at byte offset ", at,
                       " is not 0 or 1");
      pos_ += n;
      return v;
    }
    if (depth >= max_array_depth)
      FASA_GGUF_FAIL("arrays nested deeper than ", max_array_depth, " levels at ", what(),
                     " at byte offset ", at);
    gguf_value v;
    v.type_ = gguf_value_type::array;
    v.element_type_ =
        read_value_type("element", [&] { return fasa::detail::concat("the array ", what()); });
    const std::uint64_t count_at = pos_;
    const std::uint64_t count =
        read_u64([&] { return fasa::detail::concat("the length of the array ", what()); });
    // Smallest encoding of one element: a scalar's size, a string's length field, an array's
    // element type and length.
    const std::uint64_t element_min = v.element_type_ == gguf_value_type::string ? 8
                                      : v.element_type_ == gguf_value_type::array
                                          ? 12
                                          : gguf_scalar_size(v.element_type_);
    if (count > remaining() / element_min)
      FASA_GGUF_FAIL("array length ", count, " of ", what(), " at byte offset ", count_at,
                     " runs past the end of the file: ", count, " ", to_string(v.element_type_),
                     " elements take at least ", element_min, " bytes each, only ", remaining(),
                     " bytes remain");
    v.size_ = static_cast<std::size_t>(count);
    if (v.element_type_ == gguf_value_type::string) {
      v.strings_.reserve(v.size_);
      for (std::size_t i = 0; i < v.size_; ++i)
        v.strings_.push_back(
            read_string([&] { return fasa::detail::concat("element ", i, " of ", what()); }));
    } else if (v.element_type_ == gguf_value_type::array) {
      for (std::size_t i = 0; i < v.size_; ++i) {
        const auto element = [&] { return fasa::detail::concat("element ", i, " of ", what()); };
        v.items_.push_back(read_value(gguf_value_type::array, element, depth + 1));
      }
    } else {
      v.raw_ = bytes_.data() + pos_;
      if (v.element_type_ == gguf_value_type::boolean)
        for (std::size_t i = 0; i < v.size_; ++i)
          if (v.raw_[i] > 1)
            FASA_GGUF_FAIL("bool value ", +v.raw_[i], " of element ", i, " of ", what(),
                           " at byte offset ", pos_ + i, " is not 0 or 1");
      pos_ += count * element_min;
    }
    return v;
  }

  void parse() {
    const std::uint8_t* data = bytes_.data();
    pos_ = 0;

    // Header.
    need(4, [] { return "the magic \"GGUF\""; });
    if (std::memcmp(data, "GGUF", 4) != 0)
      FASA_GGUF_FAIL("not a GGUF file: the magic at byte offset 0 is \"",
                     detail::printable(std::string_view(reinterpret_cast<const char*>(data), 4)),
                     "\", expected \"GGUF\"");
    pos_ = 4;
    version_ = read_u32([] { return "the version"; });
    if (version_ == 1)
      FASA_GGUF_FAIL(
          "GGUF version 1 at byte offset 4 is not supported (it used 32-bit lengths); fasa reads "
          "versions 2 and 3");
    if (detail::byteswap32(version_) == 2 || detail::byteswap32(version_) == 3)
      FASA_GGUF_FAIL("GGUF version field at byte offset 4 reads ", version_, " (",
                     detail::byteswap32(version_),
                     " byte-swapped): a big-endian GGUF file, which fasa does not read");
    if (version_ != 2 && version_ != 3)
      FASA_GGUF_FAIL("unknown GGUF version ", version_,
                     " at byte offset 4; fasa reads versions 2 and 3");
    const std::uint64_t tensor_count = read_u64([] { return "the tensor count"; });
    const std::uint64_t kv_count = read_u64([] { return "the metadata count"; });
    if (kv_count > remaining() / min_kv_bytes)
      FASA_GGUF_FAIL("kv_count ", kv_count,
                     " at byte offset 16 runs past the end of the file: each "
                     "metadata entry takes at least ",
                     min_kv_bytes, " bytes, only ", remaining(), " bytes remain");
    if (tensor_count > remaining() / min_tensor_info_bytes)
      FASA_GGUF_FAIL("tensor_count ", tensor_count,
                     " at byte offset 8 runs past the end of the file: each "
                     "tensor info takes at least ",
                     min_tensor_info_bytes, " bytes, only ", remaining(), " bytes remain");

    // Metadata.
    // Counts are untrusted: reserve a bounded amount; a real count grows the vectors.
    kvs_.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(kv_count, 1024)));
    for (std::uint64_t i = 0; i < kv_count; ++i) {
      const std::uint64_t at = pos_;
      const std::string_view key =
          read_string([&] { return fasa::detail::concat("the key of metadata entry ", i); });
      if (const auto it = kv_index_.find(key); it != kv_index_.end())
        FASA_GGUF_FAIL("duplicate metadata key '", detail::printable(key), "' at byte offset ", at,
                       " (first at byte offset ", kvs_[it->second].file_offset, ")");
      const auto what = [&] {
        return fasa::detail::concat("metadata key '", detail::printable(key), "'");
      };
      const gguf_value_type type = read_value_type("value", what);
      kvs_.push_back({std::string(key), read_value(type, what, 0), at});
      kv_index_.emplace(std::string(key), kvs_.size() - 1);
    }

    alignment_ = 32;
    if (const gguf_value* a = find("general.alignment")) {
      const std::uint64_t at = kvs_[kv_index_.find("general.alignment")->second].file_offset;
      if (!is_integer(a->type()))
        FASA_GGUF_FAIL("metadata key 'general.alignment' at byte offset ", at, " is ",
                       a->type_text(), ", expected an integer (uint32)");
      if (!a->fits_in<std::uint64_t>() || a->as_int<std::uint64_t>() == 0 ||
          !std::has_single_bit(a->as_int<std::uint64_t>()))
        FASA_GGUF_FAIL("metadata key 'general.alignment' at byte offset ", at, " is ",
                       a->integer_text(), ", which is not a power of two");
      alignment_ = a->as_int<std::uint64_t>();
    }

    // Tensor infos.
    if (tensor_count > remaining() / min_tensor_info_bytes)
      FASA_GGUF_FAIL("tensor_count ", tensor_count,
                     " at byte offset 8 runs past the end of the file: each "
                     "tensor info takes at least ",
                     min_tensor_info_bytes, " bytes, only ", remaining(),
                     " bytes remain after the metadata");
    tensors_.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(tensor_count, 4096)));
    for (std::uint64_t i = 0; i < tensor_count; ++i) parse_tensor_info(i);

    // Data section: after the infos, padded to the alignment.
    const std::uint64_t infos_end = pos_;
    data_offset_ = (infos_end + alignment_ - 1) / alignment_ * alignment_;
    if (tensor_count > 0 && data_offset_ > bytes_.size())
      FASA_GGUF_FAIL("truncated file: the data section starts at byte offset ", data_offset_,
                     " (the tensor infos end at ", infos_end, ", padded to the alignment ",
                     alignment_, "), past the end of the file (", bytes_.size(), " bytes)");
    for (auto& t : tensors_) {
      const std::uint64_t room = tensor_count > 0 ? bytes_.size() - data_offset_ : 0;
      if (t.offset > room || t.n_bytes > room - t.offset)
        FASA_GGUF_FAIL("tensor '", detail::printable(t.name), "' (", t.traits().name, ", dims ",
                       t.dims_text(), ", ", t.n_bytes, " bytes at data offset ", t.offset,
                       ", file offset ", file_offset_text(t.offset),
                       ") runs past the end of the file (", bytes_.size(),
                       " bytes); its info is at byte "
                       "offset ",
                       t.info_offset);
      t.data = data + data_offset_ + t.offset;
    }
    // No two tensors may share bytes.
    std::vector<std::size_t> order(tensors_.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return tensors_[a].offset < tensors_[b].offset;
    });
    const gguf_tensor_info* previous = nullptr;
    for (const std::size_t i : order) {
      const gguf_tensor_info& t = tensors_[i];
      if (t.n_bytes == 0) continue;
      if (previous && previous->offset + previous->n_bytes > t.offset)
        FASA_GGUF_FAIL("tensors '", detail::printable(previous->name), "' (data bytes [",
                       previous->offset, ", ", previous->offset + previous->n_bytes, ")) and '",
                       detail::printable(t.name), "' (data bytes [", t.offset, ", ",
                       t.offset + t.n_bytes,
                       ")) overlap; their infos "
                       "are at byte offsets ",
                       previous->info_offset, " and ", t.info_offset);
      previous = &t;
    }
  }

  // data_offset_ + offset, which a corrupt offset can push past 2^64.
  std::string file_offset_text(std::uint64_t offset) const {
    return offset <= std::numeric_limits<std::uint64_t>::max() - data_offset_
               ? std::to_string(data_offset_ + offset)
               : std::string("beyond 2^64");
  }

  void parse_tensor_info(std::uint64_t i) {
    gguf_tensor_info t;
    t.info_offset = pos_;
    const std::string_view name =
        read_string([&] { return fasa::detail::concat("the name of tensor ", i); });
    if (const auto it = tensor_index_.find(name); it != tensor_index_.end())
      FASA_GGUF_FAIL("duplicate tensor name '", detail::printable(name), "' at byte offset ",
                     t.info_offset, " (first at byte offset ", tensors_[it->second].info_offset,
                     ")");
    t.name = std::string(name);
    const auto what = [&] {
      return fasa::detail::concat("tensor '", detail::printable(name), "'");
    };

    const std::uint64_t n_dims_at = pos_;
    const std::uint32_t n_dims =
        read_u32([&] { return fasa::detail::concat("n_dims of ", what()); });
    if (n_dims > 4)
      FASA_GGUF_FAIL(what(), " has n_dims ", n_dims, " at byte offset ", n_dims_at,
                     "; GGUF tensors have at most 4 dims");
    t.dims.resize(n_dims);
    std::uint64_t n_elements = 1;
    bool overflow = false;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      const std::uint64_t at = pos_;
      t.dims[d] = read_u64([&] { return fasa::detail::concat("dims[", d, "] of ", what()); });
      if (t.dims[d] > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        FASA_GGUF_FAIL("dims[", d, "] of ", what(), " at byte offset ", at, " is ", t.dims[d],
                       ", more than ggml's limit 2^63 - 1");
      // The product of any prefix must stay below 2^63 (ggml's int64 element counts); once a
      // dim is 0 the product is 0 and cannot overflow.
      if (n_elements != 0 &&
          t.dims[d] >
              static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / n_elements)
        overflow = true;
      n_elements *= t.dims[d];
    }
    // n_rows() multiplies dims[1..] without the zero short-cut; it must not overflow either.
    std::uint64_t rows = 1;
    for (std::uint32_t d = 1; d < n_dims && !overflow; ++d) {
      if (t.dims[d] != 0 &&
          rows > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / t.dims[d])
        overflow = true;
      rows *= t.dims[d];
    }
    if (overflow)
      FASA_GGUF_FAIL("dims ", t.dims_text(), " of ", what(), " at byte offset ", n_dims_at + 4,
                     " overflow: their product exceeds 2^63 - 1 elements");
    t.n_elements = n_elements;

    const std::uint64_t type_at = pos_;
    const std::uint32_t type =
        read_u32([&] { return fasa::detail::concat("the type of ", what()); });
    const ggml_type_traits* traits = find_ggml_type(type);
    if (!traits)
      FASA_GGUF_FAIL(what(), " has unknown type ", type, " at byte offset ", type_at,
                     " (not a ggml type this reader knows)");
    t.type = static_cast<ggml_type>(type);
    if (t.row_length() % traits->block_size != 0)
      FASA_GGUF_FAIL(what(), " has row length dims[0] = ", t.row_length(),
                     ", not a multiple of the ", traits->name, " block size ", traits->block_size,
                     " (tensor info at byte offset ", t.info_offset, ")");
    const std::uint64_t blocks = n_elements / traits->block_size;
    if (blocks > std::numeric_limits<std::uint64_t>::max() / traits->type_size)
      FASA_GGUF_FAIL("the size of ", what(), " (", traits->name, ", dims ", t.dims_text(),
                     ") overflows 64 bits (tensor info at byte offset ", t.info_offset, ")");
    t.n_bytes = blocks * traits->type_size;

    const std::uint64_t offset_at = pos_;
    t.offset = read_u64([&] { return fasa::detail::concat("the data offset of ", what()); });
    if (t.offset % alignment_ != 0)
      FASA_GGUF_FAIL("data offset ", t.offset, " of ", what(), " at byte offset ", offset_at,
                     " is not a multiple of the alignment ", alignment_);

    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  std::string source_;
  detail::gguf_bytes bytes_;
  std::uint64_t pos_ = 0;  // parse cursor
  std::uint32_t version_ = 0;
  std::uint64_t alignment_ = 32;
  std::uint64_t data_offset_ = 0;
  std::vector<gguf_kv> kvs_;
  std::map<std::string, std::size_t, std::less<>> kv_index_;
  std::vector<gguf_tensor_info> tensors_;
  std::map<std::string, std::size_t, std::less<>> tensor_index_;
};

}  // namespace fasa::model

#undef FASA_GGUF_FAIL
