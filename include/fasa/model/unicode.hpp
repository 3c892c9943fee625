// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// The little Unicode that tokenizers need: lenient UTF-8 decoding (an invalid byte is reported
// as itself, so byte-level tokenizers still see every byte) and the classes \p{L}, \p{N} and \s
// of GPT-2-style pre-tokenizer regexes.
//
// Why generated tables and not ICU: the library is header-only and ICU would make every model
// consumer link libicuuc; the tables are ~16 KB of constexpr data; and they pin one Unicode
// version (see unicode_tables.hpp) instead of whatever ICU the machine has, so a prompt
// tokenizes the same everywhere. llama.cpp makes the same choice (its unicode-data.cpp).
// Classes change only for newly assigned code points between Unicode versions.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "fasa/model/unicode_tables.hpp"

namespace fasa::model::unicode {

// One decoded unit of a byte string: a code point and the bytes it took, or a single byte that
// does not start a valid UTF-8 sequence (valid == false, cp == that byte).
struct utf8_unit {
  char32_t cp;
  std::uint8_t len;
  bool valid;
};

// Decodes the unit starting at s[i] (i < s.size()). Rejects, one byte at a time, what RFC 3629
// forbids: stray continuation bytes, truncated sequences, overlong forms, surrogates
// (U+D800..U+DFFF) and code points above U+10FFFF.
inline utf8_unit decode_utf8(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {b0, 1, true};
  const utf8_unit invalid{b0, 1, false};
  std::size_t len;
  char32_t cp;
  char32_t min;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return invalid;
  }
  if (s.size() - i < len) return invalid;
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return invalid;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return invalid;
  return {cp, static_cast<std::uint8_t>(len), true};
}

inline bool is_valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const utf8_unit u = decode_utf8(s, i);
    if (!u.valid) return false;
    i += u.len;
  }
  return true;
}

// Appends the UTF-8 encoding of cp (cp <= U+10FFFF, not a surrogate).
inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

inline bool in_ranges(char32_t cp, std::span<const codepoint_range> ranges) {
  // The first range whose last >= cp is the only one that can hold cp.
  const auto it = std::lower_bound(ranges.begin(), ranges.end(), cp,
                                   [](const codepoint_range& r, char32_t c) { return r.last < c; });
  return it != ranges.end() && it->first <= cp;
}

inline bool is_letter(char32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return in_ranges(cp, letter_ranges);
}
inline bool is_number(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return in_ranges(cp, number_ranges);
}
inline bool is_whitespace(char32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return in_ranges(cp, whitespace_ranges);
}

// The three classes of the GPT-2 regex, and everything else. An invalid byte is `other`.
enum class char_class : std::uint8_t { letter, number, whitespace, other };

inline char_class classify(const utf8_unit& u) {
  if (!u.valid) return char_class::other;
  if (is_letter(u.cp)) return char_class::letter;
  if (is_number(u.cp)) return char_class::number;
  if (is_whitespace(u.cp)) return char_class::whitespace;
  return char_class::other;
}

}  // namespace fasa::model::unicode
