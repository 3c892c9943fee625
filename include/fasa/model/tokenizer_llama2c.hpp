// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// The tokenizer of llama2.c models (stories260K's tok512.bin): a SentencePiece vocabulary
// exported by llama2.c's tokenizer.py and used the way its run.c uses it.
//
// File: int32 max_token_length, then for each token {float32 score, int32 length, length bytes},
// little-endian, no count (run.c takes vocab_size from the checkpoint). Ids 0, 1, 2 are <unk>,
// BOS ("\n<s>\n") and EOS ("\n</s>\n"); ids 3..258 are the byte tokens "<0x00>".."<0xFF>".
//
// encode (run.c's encode()):
//   1. BOS (1) when asked; then, when the text is not empty, the token " " (the dummy prefix
//      SentencePiece adds, add_dummy_prefix).
//   2. Each UTF-8 code point of the text becomes the token with that exact text, or, when there
//      is none, one byte token per byte (id = byte + 3). Code points are cut as run.c cuts them:
//      a unit is a byte that is not a continuation byte plus the continuation bytes after it,
//      at most four bytes; so invalid UTF-8 also encodes (by byte fallback).
//   3. Repeatedly merge the adjacent pair whose concatenated text is a token with the highest
//      score (strictly above -1e10; the leftmost among equal scores), BOS included as run.c
//      does, until no pair merges. run.c rescans the whole sequence per merge (O(n^2)); here a
//      heap with lazy invalidation picks the same pair each step in O(log n).
//   4. EOS (2) when asked.
// decode (run.c's decode()): a token's text, without its leading space right after BOS;
// "<0xXX>" tokens are their byte. BOS and EOS themselves decode to nothing (run.c never prints
// them; SentencePiece skips control tokens).

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fasa/core/error.hpp"

namespace fasa::model {

class llama2c_tokenizer {
 public:
  static constexpr std::int32_t unk = 0;
  static constexpr std::int32_t bos = 1;
  static constexpr std::int32_t eos = 2;
  static constexpr std::int32_t byte_offset = 3;  // id of byte b is b + 3

  // vocab: [vocab_size] token texts; scores: [vocab_size] merge scores.
  llama2c_tokenizer(std::vector<std::string> vocab, std::vector<float> scores,
                    std::int32_t max_token_length)
      : vocab_(std::move(vocab)), scores_(std::move(scores)), max_len_(max_token_length) {
    FASA_CHECK(vocab_.size() == scores_.size(), "llama2c_tokenizer: ", vocab_.size(),
               " tokens but ", scores_.size(), " scores");
    FASA_CHECK(vocab_.size() >= 3 && vocab_.size() < static_cast<std::size_t>(
                                                         std::numeric_limits<std::int32_t>::max()),
               "llama2c_tokenizer: vocabulary has ", vocab_.size(),
               " tokens; it needs at least <unk>, BOS and EOS");
    index_.reserve(vocab_.size());
    // run.c binary-searches a sorted copy, so which of two equal texts it finds is unspecified;
    // here the first wins.
    for (std::size_t i = 0; i < vocab_.size(); ++i)
      index_.emplace(vocab_[i], static_cast<std::int32_t>(i));
  }

  // Reads a tokenizer file from memory; `source` names it in errors. With vocab_size, exactly
  // that many tokens are read (as run.c does); without, tokens are read to the end of the data.
  // A short read names the field and its byte offset; bytes left after the last token throw.
  static llama2c_tokenizer from_bytes(std::span<const char> bytes, const std::string& source,
                                      std::optional<std::int32_t> vocab_size = std::nullopt) {
    FASA_CHECK(!vocab_size || *vocab_size >= 3, source, ": vocab_size ", *vocab_size,
               " is below 3 (<unk>, BOS, EOS)");
    std::size_t off = 0;
    const auto read_i32 = [&](const char* what, std::size_t token) {
      FASA_CHECK(bytes.size() - off >= 4, source, ": llama2.c tokenizer is truncated: ", what,
                 token == SIZE_MAX ? std::string() : " of token " + std::to_string(token),
                 " needs 4 bytes at byte offset ", off, " but the file has ", bytes.size(),
                 " bytes");
      std::int32_t v;
      std::memcpy(&v, bytes.data() + off, 4);
      off += 4;
      return v;
    };
    const std::int32_t max_len = read_i32("max_token_length", SIZE_MAX);
    FASA_CHECK(max_len > 0, source, ": llama2.c tokenizer max_token_length is ", max_len,
               " (byte offset 0)");
    std::vector<std::string> vocab;
    std::vector<float> scores;
    for (std::size_t i = 0;
         vocab_size ? i < static_cast<std::size_t>(*vocab_size) : off < bytes.size(); ++i) {
      const std::int32_t score_bits = read_i32("the score", i);
      float score;
      std::memcpy(&score, &score_bits, 4);
      const std::size_t len_at = off;
      const std::int32_t len = read_i32("the length", i);
      FASA_CHECK(len >= 0 && len <= max_len, source, ": llama2.c tokenizer token ", i,
                 " has length ", len, " (at byte offset ", len_at,
                 "), outside [0, max_token_length = ", max_len, "]");
      FASA_CHECK(bytes.size() - off >= static_cast<std::size_t>(len), source,
                 ": llama2.c tokenizer is truncated: the text of token ", i, " needs ", len,
                 " bytes at byte offset ", off, " but the file has ", bytes.size(), " bytes");
      vocab.emplace_back(bytes.data() + off, static_cast<std::size_t>(len));
      scores.push_back(score);
      off += static_cast<std::size_t>(len);
    }
    FASA_CHECK(off == bytes.size(), source, ": llama2.c tokenizer has ", bytes.size() - off,
               " bytes after its ", vocab.size(), " tokens (from byte offset ", off,
               "); is vocab_size right?");
    return llama2c_tokenizer(std::move(vocab), std::move(scores), max_len);
  }

  static llama2c_tokenizer from_file(const std::filesystem::path& path,
                                     std::optional<std::int32_t> vocab_size = std::nullopt) {
    std::ifstream in(path, std::ios::binary);
    FASA_CHECK(in.good(), "cannot open llama2.c tokenizer '", path.string(), "'");
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
    return from_bytes(bytes, path.string(), vocab_size);
  }

  std::vector<std::int32_t> encode(std::string_view text, bool add_bos = true,
                                   bool add_eos = false) const {
    std::vector<std::int32_t> t;
    t.reserve(text.size() + 3);
    if (add_bos) t.push_back(bos);
    if (!text.empty()) {
      const auto space = find_token(" ");
      FASA_CHECK(space.has_value(),
                 "llama2c_tokenizer: the vocabulary has no \" \" token for the dummy prefix");
      t.push_back(*space);
    }
    const auto continuation = [](char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; };
    for (std::size_t i = 0; i < text.size();) {
      // A unit: this byte and up to three continuation bytes after it (run.c's str_len < 4).
      std::size_t len = 1;
      while (len < 4 && i + len < text.size() && continuation(text[i + len])) ++len;
      const std::string_view unit = text.substr(i, len);
      if (const auto id = find_token(unit)) {
        t.push_back(*id);
      } else {
        FASA_CHECK(vocab_.size() >= 256 + byte_offset, "llama2c_tokenizer: '", unit,
                   "' is not in the vocabulary and its ", vocab_.size(),
                   " tokens have no byte tokens to fall back on");
        for (const char c : unit) t.push_back(static_cast<unsigned char>(c) + byte_offset);
      }
      i += len;
    }
    merge(t);
    if (add_eos) t.push_back(eos);
    return t;
  }

  // run.c's decode(prev_token, token): the piece `token` prints as after `prev_token`.
  std::string_view decode_piece(std::int32_t prev_token, std::int32_t token) const {
    check_id(token, "decode_piece");
    std::string_view piece = vocab_[static_cast<std::size_t>(token)];
    if (prev_token == bos && !piece.empty() && piece[0] == ' ') piece.remove_prefix(1);
    if (const auto b = byte_token_value(piece)) return byte_pieces()[*b];
    return piece;
  }

  // The text of `ids`: each token's piece after the one before it; BOS and EOS give nothing.
  std::string decode(std::span<const std::int32_t> ids) const {
    std::string out;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] < 0 || static_cast<std::size_t>(ids[i]) >= vocab_.size())
        FASA_FAIL("llama2c_tokenizer::decode: token id ", ids[i], " at position ", i,
                  " is outside the vocabulary [0, ", vocab_.size(), ")");
      if (ids[i] == bos || ids[i] == eos) continue;
      out += decode_piece(i > 0 ? ids[i - 1] : -1, ids[i]);
    }
    return out;
  }

  const std::string& token_text(std::int32_t id) const {
    check_id(id, "token_text");
    return vocab_[static_cast<std::size_t>(id)];
  }
  float score(std::int32_t id) const {
    check_id(id, "score");
    return scores_[static_cast<std::size_t>(id)];
  }
  std::optional<std::int32_t> find_token(std::string_view text) const {
    const auto it = index_.find(text);
    if (it == index_.end()) return std::nullopt;
    return it->second;
  }
  std::int32_t vocab_size() const { return static_cast<std::int32_t>(vocab_.size()); }
  std::int32_t max_token_length() const { return max_len_; }
  std::int32_t bos_id() const { return bos; }
  std::int32_t eos_id() const { return eos; }
  std::int32_t unk_id() const { return unk; }

 private:
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct symbol {
    std::int32_t id;
    std::int32_t prev;
    std::int32_t next;
    bool alive;
  };
  struct candidate {
    float score;
    std::int32_t pos;
    std::int32_t left;
    std::int32_t right;
    std::int32_t merged;
    // Heap order: the highest score on top, then the leftmost position.
    bool operator<(const candidate& o) const {
      return score != o.score ? score < o.score : pos > o.pos;
    }
  };

  void check_id(std::int32_t id, const char* what) const {
    FASA_CHECK(id >= 0 && static_cast<std::size_t>(id) < vocab_.size(), "llama2c_tokenizer::", what,
               ": token id ", id, " is outside the vocabulary [0, ", vocab_.size(), ")");
  }

  // "<0xXX>" (two upper- or lower-case hex digits) -> XX.
  static std::optional<unsigned> byte_token_value(std::string_view piece) {
    if (piece.size() != 6 || !piece.starts_with("<0x") || piece[5] != '>') return std::nullopt;
    const auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    const int hi = hex(piece[3]), lo = hex(piece[4]);
    if (hi < 0 || lo < 0) return std::nullopt;
    return static_cast<unsigned>(hi * 16 + lo);
  }
  static const std::array<std::string, 256>& byte_pieces() {
    static const auto pieces = [] {
      std::array<std::string, 256> p;
      for (unsigned b = 0; b < 256; ++b) p[b] = std::string(1, static_cast<char>(b));
      return p;
    }();
    return pieces;
  }

  // run.c's merge loop: the best-scoring adjacent pair whose concatenation is a token, leftmost
  // on ties, until none is left.
  void merge(std::vector<std::int32_t>& t) const {
    const auto n = static_cast<std::int32_t>(t.size());
    if (n < 2) return;
    std::vector<symbol> sym(t.size());
    for (std::int32_t i = 0; i < n; ++i)
      sym[static_cast<std::size_t>(i)] = {t[static_cast<std::size_t>(i)], i - 1,
                                          i + 1 < n ? i + 1 : -1, true};
    std::vector<candidate> heap;
    std::string pair;
    const auto push = [&](std::int32_t pos) {
      const symbol& a = sym[static_cast<std::size_t>(pos)];
      if (a.next < 0) return;
      const symbol& b = sym[static_cast<std::size_t>(a.next)];
      pair.assign(vocab_[static_cast<std::size_t>(a.id)]);
      pair += vocab_[static_cast<std::size_t>(b.id)];
      const auto id = find_token(pair);
      if (!id) return;
      const float s = scores_[static_cast<std::size_t>(*id)];
      // run.c starts its search at best_score = -1e10 and keeps only strictly better pairs
      // (a NaN score never is).
      if (!(s > -1e10f)) return;
      heap.push_back({s, pos, a.id, b.id, *id});
      std::push_heap(heap.begin(), heap.end());
    };
    for (std::int32_t i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end());
      const candidate c = heap.back();
      heap.pop_back();
      symbol& a = sym[static_cast<std::size_t>(c.pos)];
      if (!a.alive || a.id != c.left || a.next < 0) continue;
      symbol& b = sym[static_cast<std::size_t>(a.next)];
      if (b.id != c.right) continue;  // stale
      a.id = c.merged;
      b.alive = false;
      a.next = b.next;
      if (b.next >= 0) sym[static_cast<std::size_t>(b.next)].prev = c.pos;
      if (a.prev >= 0) push(a.prev);
      push(c.pos);
    }
    t.clear();
    for (std::int32_t i = 0; i >= 0; i = sym[static_cast<std::size_t>(i)].next)
      t.push_back(sym[static_cast<std::size_t>(i)].id);
  }

  std::vector<std::string> vocab_;  // [vocab_size]
  std::vector<float> scores_;       // [vocab_size]
  std::int32_t max_len_;
  std::unordered_map<std::string, std::int32_t, string_hash, std::equal_to<>> index_;
};

}  // namespace fasa::model
