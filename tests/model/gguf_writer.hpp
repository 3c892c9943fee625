// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// A small GGUF writer for the reader's tests, written from the format description and sharing
// no code with fasa/model/gguf.hpp: every field is appended byte by byte in little-endian
// order, and build() records where each entry landed so that a test can corrupt one field and
// expect its byte offset in the error. The writer writes whatever it is told (wrong magic,
// unknown types, impossible counts), which is what the malformed-file tests need.

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fasa::test::gguf {

using bytes = std::vector<std::uint8_t>;

// Value type ids of the GGUF specification.
enum vt : std::uint32_t {
  vt_uint8 = 0,
  vt_int8 = 1,
  vt_uint16 = 2,
  vt_int16 = 3,
  vt_uint32 = 4,
  vt_int32 = 5,
  vt_float32 = 6,
  vt_bool = 7,
  vt_string = 8,
  vt_array = 9,
  vt_uint64 = 10,
  vt_int64 = 11,
  vt_float64 = 12,
};

// ggml type ids (ggml.h) and their block geometry.
enum tt : std::uint32_t {
  tt_f32 = 0,
  tt_f16 = 1,
  tt_q4_0 = 2,
  tt_q4_1 = 3,
  tt_q5_1 = 7,
  tt_q8_0 = 8,
  tt_bf16 = 30,
};

inline void put_le(bytes& b, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
inline void put_u8(bytes& b, std::uint8_t v) { put_le(b, v, 1); }
inline void put_u16(bytes& b, std::uint16_t v) { put_le(b, v, 2); }
inline void put_u32(bytes& b, std::uint32_t v) { put_le(b, v, 4); }
inline void put_u64(bytes& b, std::uint64_t v) { put_le(b, v, 8); }
inline void put_f32(bytes& b, float v) {
  std::uint32_t u;
  std::memcpy(&u, &v, 4);
  put_u32(b, u);
}
inline void put_f64(bytes& b, double v) {
  std::uint64_t u;
  std::memcpy(&u, &v, 8);
  put_u64(b, u);
}
inline void put_str(bytes& b, std::string_view s) {
  put_u64(b, s.size());
  b.insert(b.end(), s.begin(), s.end());
}
inline void append(bytes& b, const bytes& more) { b.insert(b.end(), more.begin(), more.end()); }

// Payloads (what follows the value type of a metadata entry).
inline bytes le(std::uint64_t v, int n) {
  bytes b;
  put_le(b, v, n);
  return b;
}
inline bytes f32(float v) {
  bytes b;
  put_f32(b, v);
  return b;
}
inline bytes f64(double v) {
  bytes b;
  put_f64(b, v);
  return b;
}
inline bytes str(std::string_view s) {
  bytes b;
  put_str(b, s);
  return b;
}
// An array: element type, count, then the elements' encodings back to back.
inline bytes array(std::uint32_t element_type, std::uint64_t count, const bytes& elements) {
  bytes b;
  put_u32(b, element_type);
  put_u64(b, count);
  append(b, elements);
  return b;
}

struct kv_entry {
  std::string key;
  std::uint32_t type;
  bytes payload;
};

struct tensor_entry {
  std::string name;
  std::vector<std::uint64_t> dims;
  std::uint32_t type;
  bytes data;
  std::optional<std::uint64_t> offset;  // written instead of the computed offset
};

// Where build() put things (file offsets).
struct layout {
  std::vector<std::size_t> kv_at;           // each entry's key length field
  std::vector<std::size_t> tensor_info_at;  // each tensor info's name length field
  std::vector<std::size_t> tensor_data_at;  // each tensor's first data byte
  std::size_t data_offset = 0;
};

struct builder {
  std::string magic = "GGUF";
  std::uint32_t version = 3;
  std::optional<std::uint64_t> tensor_count;  // written instead of tensors.size()
  std::optional<std::uint64_t> kv_count;      // written instead of kvs.size()
  std::uint64_t alignment = 32;               // padding used (general.alignment is a kv)
  std::vector<kv_entry> kvs;
  std::vector<tensor_entry> tensors;

  builder& kv(std::string key, std::uint32_t type, bytes payload) {
    kvs.push_back({std::move(key), type, std::move(payload)});
    return *this;
  }
  builder& tensor(std::string name, std::vector<std::uint64_t> dims, std::uint32_t type,
                  bytes data) {
    tensors.push_back({std::move(name), std::move(dims), type, std::move(data), std::nullopt});
    return *this;
  }

  // Tensors are laid out in order, each at the next multiple of `alignment`; there is no
  // padding after the last one, so every strict prefix of the file cuts into some field.
  bytes build(layout* where = nullptr) const {
    layout l;
    bytes b;
    b.insert(b.end(), magic.begin(), magic.end());
    put_u32(b, version);
    put_u64(b, tensor_count.value_or(tensors.size()));
    put_u64(b, kv_count.value_or(kvs.size()));
    for (const auto& e : kvs) {
      l.kv_at.push_back(b.size());
      put_str(b, e.key);
      put_u32(b, e.type);
      append(b, e.payload);
    }
    std::vector<std::uint64_t> offsets;
    std::uint64_t next = 0;
    for (const auto& t : tensors) {
      next = (next + alignment - 1) / alignment * alignment;
      offsets.push_back(next);
      next += t.data.size();
    }
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const auto& t = tensors[i];
      l.tensor_info_at.push_back(b.size());
      put_str(b, t.name);
      put_u32(b, static_cast<std::uint32_t>(t.dims.size()));
      for (const auto d : t.dims) put_u64(b, d);
      put_u32(b, t.type);
      put_u64(b, t.offset.value_or(offsets[i]));
    }
    while (b.size() % alignment != 0) b.push_back(0);
    l.data_offset = b.size();
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      while (b.size() < l.data_offset + offsets[i]) b.push_back(0);
      l.tensor_data_at.push_back(b.size());
      append(b, tensors[i].data);
    }
    if (where) *where = l;
    return b;
  }
};

}  // namespace fasa::test::gguf
