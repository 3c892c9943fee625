// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// GPT-2-style byte-level BPE, the tokenizer of SmolLM2 (GGUF tokenizer.ggml.model = "gpt2").
//
// encode(text):
//   1. Special tokens (GGUF types control, user-defined, unknown) are cut out of the text first,
//      leftmost-longest, each becoming its one id, as Hugging Face tokenizers' added-token trie
//      does. Control and unknown ones only when parse_special is true; user-defined ones always
//      (llama.cpp's rule, and HF's for non-special added tokens).
//   2. The pre-tokenizer splits every remaining fragment into pieces:
//        gpt2    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//        smollm  first every \p{N} code point alone (HF Digits(individual_digits=True)), then
//                the gpt2 regex on what lies between; llama.cpp's "smollm" regex list, and HF's
//                Sequence[Digits(individual_digits=True), ByteLevel(use_regex=True)].
//      The regex is matched by hand (gpt2_match below): std::regex has neither \p{..} nor
//      lookahead. Bytes that are not valid UTF-8 count as [^\s\p{L}\p{N}], so any byte string
//      encodes.
//   3. Each piece starts as one symbol per byte (the vocabulary holds bytes as GPT-2's
//      byte-to-unicode characters) and merges by rank: the lowest-rank adjacent pair first,
//      leftmost first among equal ranks, with a heap and lazy invalidation (O(n log n) in the
//      piece length), results cached per distinct piece within one call.
// decode(ids) concatenates each token's bytes: byte-level tokens map back through the inverse
// of byte-to-unicode; special tokens are their text verbatim.
//
// decode(encode(s)) == s for every byte string s whose bytes all have a token (has_byte_token).
// GPT-2's vocabulary has all 256; SmolLM2's lacks 21 that its training text never held
// (0x04 0x06 0x13 0x14 0x16 0x1D 0xC0 0xC1 0xF1 0xF2 0xF5..0xFF). Such a byte is left out, as
// HF's BPE (the reference, and what the model was trained with) leaves it out; llama.cpp throws
// instead, and the GGUF's unknown token (SmolLM2: <|endoftext|>) would end the document.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "fasa/core/error.hpp"
#include "fasa/model/unicode.hpp"

namespace fasa::model {

// GGUF token types (llama.cpp's llama_token_type).
enum class token_type : std::int32_t {
  undefined = 0,
  normal = 1,
  unknown = 2,
  control = 3,
  user_defined = 4,
  unused = 5,
  byte = 6,
};

enum class bpe_pretokenizer { gpt2, smollm };

inline constexpr std::string_view bpe_pretokenizer_names = "gpt2, smollm";

inline bpe_pretokenizer parse_bpe_pretokenizer(std::string_view name) {
  if (name == "gpt2") return bpe_pretokenizer::gpt2;
  if (name == "smollm") return bpe_pretokenizer::smollm;
  FASA_FAIL("unknown BPE pre-tokenizer '", name, "'; known: ", bpe_pretokenizer_names);
}

inline std::string_view to_string(bpe_pretokenizer p) {
  return p == bpe_pretokenizer::smollm ? "smollm" : "gpt2";
}

// GPT-2's byte-to-unicode map: the printable bytes ! .. ~, ¡ .. ¬, ® .. ÿ stand for themselves,
// the other 68 bytes for U+0100 onwards in byte order, so every byte is one visible character.
inline char32_t gpt2_byte_to_codepoint(std::uint8_t b) {
  const auto printable = [](unsigned x) {
    return (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
  };
  if (printable(b)) return b;
  unsigned n = 0;
  for (unsigned x = 0; x < b; ++x) n += !printable(x);
  return 0x100 + n;
}

// The vocabulary text of a byte string ("\n the" -> "ĊĠthe").
inline std::string gpt2_bytes_to_text(std::string_view bytes) {
  std::string out;
  for (const char c : bytes)
    unicode::append_utf8(out, gpt2_byte_to_codepoint(static_cast<std::uint8_t>(c)));
  return out;
}

// The bytes behind a vocabulary text, or nothing when a character is not in the byte map.
inline std::optional<std::string> gpt2_text_to_bytes(std::string_view text) {
  static const auto inverse = [] {
    std::array<std::int16_t, 0x144> inv;  // the map's code points are all below U+0144
    inv.fill(-1);
    for (unsigned b = 0; b < 256; ++b)
      inv[gpt2_byte_to_codepoint(static_cast<std::uint8_t>(b))] = static_cast<std::int16_t>(b);
    return inv;
  }();
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    const unicode::utf8_unit u = unicode::decode_utf8(text, i);
    if (!u.valid || u.cp >= inverse.size() || inverse[u.cp] < 0) return std::nullopt;
    out += static_cast<char>(inverse[u.cp]);
    i += u.len;
  }
  return out;
}

namespace detail {

// One UTF-8 unit of a fragment being pre-tokenized: its byte offset, code point (the byte itself
// when invalid, always >= 0x80 then, so it never equals the ASCII the regex names) and class.
struct pre_unit {
  std::uint32_t offset;
  char32_t cp;
  unicode::char_class cls;
};

// The GPT-2 regex at u[i] within [i, e): returns the end of its match (always > i).
//   's|'t|'re|'ve|'m|'ll|'d | ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+ | \s+(?!\S) | \s+
// Alternatives are tried in order, as Oniguruma does; the three " ?class+" ones are one case
// because their classes are disjoint: the unit after an optional space decides which applies.
inline std::size_t gpt2_match(std::span<const pre_unit> u, std::size_t i, std::size_t e) {
  using cc = unicode::char_class;
  const char32_t c = u[i].cp;
  if (c == '\'' && i + 1 < e) {  // contractions, case-sensitive as in GPT-2
    const char32_t c1 = u[i + 1].cp;
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return i + 2;
    if (i + 2 < e) {
      const char32_t c2 = u[i + 2].cp;
      if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
        return i + 3;
    }
  }
  // " ?" is greedy: take the space when the unit after it starts a class run.
  const std::size_t j = (c == ' ' && i + 1 < e && u[i + 1].cls != cc::whitespace) ? i + 1 : i;
  const cc k = u[j].cls;
  if (k != cc::whitespace) {
    std::size_t end = j + 1;
    while (end < e && u[end].cls == k) ++end;
    return end;
  }
  // \s+(?!\S): a whitespace run that reaches the end, or all of it but the last unit when a
  // non-space follows (that unit then prefixes the next word); a lone one falls to \s+.
  std::size_t end = i + 1;
  while (end < e && u[end].cls == cc::whitespace) ++end;
  if (end == e || end - i == 1) return end;
  return end - 1;
}

}  // namespace detail

// Calls piece(std::string_view) for each pre-tokenizer piece of `text` (a fragment without
// special tokens), in order; the pieces concatenate to `text`.
template <class PieceFn>
void pretokenize(std::string_view text, bpe_pretokenizer pre, PieceFn&& piece) {
  FASA_CHECK(text.size() < std::numeric_limits<std::uint32_t>::max(), "bpe_tokenizer: text of ",
             text.size(), " bytes is over the 4 GiB limit");
  std::vector<detail::pre_unit> units;
  units.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const unicode::utf8_unit u = unicode::decode_utf8(text, i);
    units.push_back({static_cast<std::uint32_t>(i), u.cp, unicode::classify(u)});
    i += u.len;
  }
  const std::size_t n = units.size();
  const auto bytes = [&](std::size_t b, std::size_t e) {
    const std::size_t from = units[b].offset;
    const std::size_t to = e < n ? units[e].offset : text.size();
    piece(text.substr(from, to - from));
  };
  const auto regex_run = [&](std::size_t b, std::size_t e) {
    for (std::size_t i = b; i < e;) {
      const std::size_t end = detail::gpt2_match(units, i, e);
      bytes(i, end);
      i = end;
    }
  };
  if (pre == bpe_pretokenizer::gpt2) {
    regex_run(0, n);
    return;
  }
  // smollm: every \p{N} alone, the gpt2 regex on each run between them.
  std::size_t start = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (units[i].cls != unicode::char_class::number) continue;
    regex_run(start, i);
    bytes(i, i + 1);
    start = i + 1;
  }
  regex_run(start, n);
}

// What a byte-level BPE vocabulary is made of (the GGUF tokenizer.ggml.* keys).
struct bpe_vocab {
  // [vocab_size] token texts: byte-level tokens in GPT-2's byte-to-unicode form ("Ġthe"),
  // special tokens verbatim ("<|im_start|>").
  std::vector<std::string> tokens;
  // [vocab_size] GGUF token types (fasa::model::token_type values), or empty: all normal.
  std::vector<std::int32_t> token_types;
  // "left right" pairs of token texts, highest priority (rank 0) first.
  std::vector<std::string> merges;
  std::string pre = "gpt2";  // pre-tokenizer name, see bpe_pretokenizer
  std::optional<std::int32_t> bos, eos, unk, pad;
  bool add_bos = false;  // whether prompts start with bos (GGUF tokenizer.ggml.add_bos_token)
};

class bpe_tokenizer {
 public:
  explicit bpe_tokenizer(bpe_vocab v)
      : texts_(std::move(v.tokens)),
        pre_(parse_bpe_pretokenizer(v.pre)),
        bos_(v.bos),
        eos_(v.eos),
        unk_(v.unk),
        pad_(v.pad),
        add_bos_(v.add_bos) {
    const std::size_t n = texts_.size();
    FASA_CHECK(n > 0 && n < static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()),
               "bpe_tokenizer: vocabulary has ", n, " tokens");
    FASA_CHECK(v.token_types.empty() || v.token_types.size() == n,
               "bpe_tokenizer: ", v.token_types.size(), " token types for ", n, " tokens");
    types_.resize(n, token_type::normal);
    for (std::size_t i = 0; i < v.token_types.size(); ++i) {
      FASA_CHECK(v.token_types[i] >= 0 && v.token_types[i] <= 6, "bpe_tokenizer: token ", i, " ('",
                 texts_[i], "') has unknown type ", v.token_types[i]);
      types_[i] = static_cast<token_type>(v.token_types[i]);
    }
    for (const auto& [name, id] : {std::pair{"bos", bos_}, std::pair{"eos", eos_},
                                   std::pair{"unk", unk_}, std::pair{"pad", pad_}})
      FASA_CHECK(!id || (*id >= 0 && static_cast<std::size_t>(*id) < n), "bpe_tokenizer: ", name,
                 " id ", *id, " is outside the vocabulary [0, ", n, ")");

    byte_to_id_.fill(-1);
    bytes_.resize(n);
    index_.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      const auto id = static_cast<std::int32_t>(i);
      index_.insert_or_assign(texts_[i], id);  // a duplicate text: the last id wins (HF, llama.cpp)
      if (is_special_type(types_[i])) {
        bytes_[i] = texts_[i];
        if (!texts_[i].empty()) specials_.push_back(id);
        continue;
      }
      // A byte-level token whose text is not in the byte map (none in GPT-2-style vocabularies)
      // decodes verbatim, as llama.cpp does.
      auto b = gpt2_text_to_bytes(texts_[i]);
      bytes_[i] = b ? std::move(*b) : texts_[i];
    }
    for (unsigned b = 0; b < 256; ++b) {
      const auto it = index_.find(gpt2_bytes_to_text(std::string(1, static_cast<char>(b))));
      if (it != index_.end() && !is_special_type(types_[static_cast<std::size_t>(it->second)]))
        byte_to_id_[b] = it->second;
    }

    merges_.reserve(v.merges.size());
    for (std::size_t r = 0; r < v.merges.size(); ++r) {
      const std::string& m = v.merges[r];
      const std::size_t space = m.find(' ', 1);
      FASA_CHECK(space != std::string::npos && space + 1 < m.size(), "bpe_tokenizer: merge ", r,
                 " ('", m, "') is not two tokens separated by a space");
      const auto left = find_token(std::string_view(m).substr(0, space));
      const auto right = find_token(std::string_view(m).substr(space + 1));
      const auto merged = find_token(m.substr(0, space) + m.substr(space + 1));
      FASA_CHECK(left && right && merged, "bpe_tokenizer: merge ", r, " ('", m, "') names ",
                 !left    ? "a left token"
                 : !right ? "a right token"
                          : "a merged token",
                 " that is not in the vocabulary");
      // A repeated pair keeps its first (highest-priority) rank.
      merges_.emplace(pair_key(*left, *right), merge_rule{static_cast<std::int32_t>(r), *merged});
    }

    for (const std::int32_t id : specials_)
      special_first_byte_[static_cast<unsigned char>(texts_[static_cast<std::size_t>(id)][0])] =
          true;
    // Leftmost-longest: at one position the longest special token wins.
    std::stable_sort(specials_.begin(), specials_.end(), [&](std::int32_t a, std::int32_t b) {
      return texts_[static_cast<std::size_t>(a)].size() >
             texts_[static_cast<std::size_t>(b)].size();
    });
    im_start_ = find_token("<|im_start|>");
    im_end_ = find_token("<|im_end|>");
    endoftext_ = find_token("<|endoftext|>");
  }

  // Reads a GGUF file's tokenizer. Gguf is fasa::model's GGUF reader, or anything with
  // has(key), get_string(key), get_int(key), get_string_array(key), get_int_array(key) (and
  // optionally get_bool(key)); a template so this header does not depend on the reader's.
  template <class Gguf>
  static bpe_tokenizer from_gguf(const Gguf& g) {
    FASA_CHECK(g.has("tokenizer.ggml.model"),
               "GGUF has no tokenizer: the key tokenizer.ggml.model is missing");
    const std::string model(g.get_string("tokenizer.ggml.model"));
    FASA_CHECK(model == "gpt2", "GGUF tokenizer.ggml.model is '", model,
               "'; bpe_tokenizer reads byte-level BPE vocabularies ('gpt2')");
    for (const char* key : {"tokenizer.ggml.tokens", "tokenizer.ggml.merges"})
      FASA_CHECK(g.has(key), "GGUF tokenizer '", model, "' has no key ", key);
    bpe_vocab v;
    for (auto&& t : g.get_string_array("tokenizer.ggml.tokens")) v.tokens.emplace_back(t);
    for (auto&& m : g.get_string_array("tokenizer.ggml.merges")) v.merges.emplace_back(m);
    if (g.has("tokenizer.ggml.token_type"))
      for (auto&& t : g.get_int_array("tokenizer.ggml.token_type"))
        v.token_types.push_back(static_cast<std::int32_t>(t));
    // Files without the key predate llama.cpp's pre-tokenizer names; GPT-2's regex is theirs.
    if (g.has("tokenizer.ggml.pre")) v.pre = std::string(g.get_string("tokenizer.ggml.pre"));
    const auto id = [&](const char* key) -> std::optional<std::int32_t> {
      if (!g.has(key)) return std::nullopt;
      const auto x = g.get_int(key);
      FASA_CHECK(x >= 0 && x <= std::numeric_limits<std::int32_t>::max(), "GGUF ", key, " = ", x,
                 " is not a token id");
      return static_cast<std::int32_t>(x);
    };
    v.bos = id("tokenizer.ggml.bos_token_id");
    v.eos = id("tokenizer.ggml.eos_token_id");
    v.unk = id("tokenizer.ggml.unknown_token_id");
    v.pad = id("tokenizer.ggml.padding_token_id");
    if constexpr (requires { g.get_bool("tokenizer.ggml.add_bos_token"); }) {
      if (g.has("tokenizer.ggml.add_bos_token"))
        v.add_bos = static_cast<bool>(g.get_bool("tokenizer.ggml.add_bos_token"));
    } else {
      if (g.has("tokenizer.ggml.add_bos_token"))
        v.add_bos = g.get_int("tokenizer.ggml.add_bos_token") != 0;
    }
    return bpe_tokenizer(std::move(v));
  }

  // Token ids of `text` (any bytes). With parse_special, the text of a control token such as
  // "<|im_start|>" becomes that token; without, it is tokenized as plain text. Never adds bos:
  // prepend bos_id() where add_bos_token() says so.
  std::vector<std::int32_t> encode(std::string_view text, bool parse_special = true) const {
    std::vector<std::int32_t> out;
    out.reserve(text.size() / 3 + 1);
    workspace ws;
    std::size_t start = 0;
    for (std::size_t i = 0; i < text.size();) {
      const std::int32_t sp = special_at(text, i, parse_special);
      if (sp < 0) {
        ++i;
        continue;
      }
      encode_fragment(text.substr(start, i - start), out, ws);
      out.push_back(sp);
      i += texts_[static_cast<std::size_t>(sp)].size();
      start = i;
    }
    encode_fragment(text.substr(start), out, ws);
    return out;
  }

  // The bytes of `ids`. Special tokens give their text, or nothing when render_special is false
  // (control and unknown ones; user-defined text always shows). An id outside the vocabulary
  // throws.
  std::string decode(std::span<const std::int32_t> ids, bool render_special = true) const {
    std::string out;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      check_id(ids[i], "decode", i);
      const auto t = static_cast<std::size_t>(ids[i]);
      if (!render_special && (types_[t] == token_type::control || types_[t] == token_type::unknown))
        continue;
      out += bytes_[t];
    }
    return out;
  }

  // The token's text as the vocabulary stores it ("Ġthe", "<|im_end|>").
  const std::string& token_text(std::int32_t id) const {
    check_id(id, "token_text");
    return texts_[static_cast<std::size_t>(id)];
  }
  // The bytes the token decodes to (" the", "<|im_end|>").
  const std::string& token_bytes(std::int32_t id) const {
    check_id(id, "token_bytes");
    return bytes_[static_cast<std::size_t>(id)];
  }
  token_type type(std::int32_t id) const {
    check_id(id, "type");
    return types_[static_cast<std::size_t>(id)];
  }
  // Whether byte b has a token of its own; encode leaves out bytes that have none.
  bool has_byte_token(std::uint8_t b) const { return byte_to_id_[b] >= 0; }
  // Control, user-defined and unknown tokens: matched whole in the text, never merged.
  bool is_special(std::int32_t id) const { return is_special_type(type(id)); }

  // The id of the token whose vocabulary text is exactly `text` (see token_text).
  std::optional<std::int32_t> find_token(std::string_view text) const {
    const auto it = index_.find(text);
    if (it == index_.end()) return std::nullopt;
    return it->second;
  }

  std::int32_t vocab_size() const { return static_cast<std::int32_t>(texts_.size()); }
  bpe_pretokenizer pretokenizer() const { return pre_; }
  std::size_t num_merges() const { return merges_.size(); }
  std::optional<std::int32_t> bos_id() const { return bos_; }
  std::optional<std::int32_t> eos_id() const { return eos_; }
  std::optional<std::int32_t> unk_id() const { return unk_; }
  std::optional<std::int32_t> pad_id() const { return pad_; }
  bool add_bos_token() const { return add_bos_; }
  // The chat template's markers (ChatML) and GPT-2's document separator, where the vocabulary
  // has them.
  std::optional<std::int32_t> im_start_id() const { return im_start_; }
  std::optional<std::int32_t> im_end_id() const { return im_end_; }
  std::optional<std::int32_t> endoftext_id() const { return endoftext_; }
  // Whether generation stops at `id`: eos, <|im_end|> or <|endoftext|>.
  bool is_end_of_generation(std::int32_t id) const {
    return id == eos_ || id == im_end_ || id == endoftext_;
  }

 private:
  struct merge_rule {
    std::int32_t rank;
    std::int32_t merged;
  };
  // One symbol of a piece during merging, in a doubly linked list.
  struct symbol {
    std::int32_t id;
    std::int32_t prev;  // -1 at the start
    std::int32_t next;  // -1 at the end
    bool alive;
  };
  // A candidate merge of symbols[pos] and the symbol after it, valid while both still hold the
  // ids it was made from.
  struct candidate {
    std::int32_t rank;
    std::int32_t pos;
    std::int32_t left;
    std::int32_t right;
    std::int32_t merged;
    // Lowest rank first, then leftmost: positions keep their order as symbols merge.
    bool operator>(const candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  // Scratch space of one encode call: pieces repeat (" the"), so each distinct piece is merged
  // once; the cache holds [offset, count) into cached_ids.
  struct workspace {
    std::vector<symbol> symbols;
    std::vector<candidate> heap;
    std::unordered_map<std::string_view, std::pair<std::uint32_t, std::uint32_t>> cache;
    std::vector<std::int32_t> cached_ids;
  };

  static bool is_special_type(token_type t) {
    return t == token_type::control || t == token_type::user_defined || t == token_type::unknown;
  }
  static std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
           static_cast<std::uint32_t>(b);
  }

  void check_id(std::int32_t id, const char* what, std::size_t at = 0) const {
    if (id >= 0 && static_cast<std::size_t>(id) < texts_.size()) return;
    if (std::string_view(what) == "decode")
      FASA_FAIL("bpe_tokenizer::decode: token id ", id, " at position ", at,
                " is outside the vocabulary [0, ", texts_.size(), ")");
    FASA_FAIL("bpe_tokenizer::", what, ": token id ", id, " is outside the vocabulary [0, ",
              texts_.size(), ")");
  }

  // The special token starting at text[i] (the longest), or -1.
  std::int32_t special_at(std::string_view text, std::size_t i, bool parse_special) const {
    if (!special_first_byte_[static_cast<unsigned char>(text[i])]) return -1;
    const std::string_view rest = text.substr(i);
    for (const std::int32_t id : specials_) {
      const auto t = static_cast<std::size_t>(id);
      if (!parse_special && types_[t] != token_type::user_defined) continue;
      if (rest.starts_with(texts_[t])) return id;
    }
    return -1;
  }

  void encode_fragment(std::string_view fragment, std::vector<std::int32_t>& out,
                       workspace& ws) const {
    if (fragment.empty()) return;
    pretokenize(fragment, pre_, [&](std::string_view piece) {
      if (piece.size() == 1) {
        const std::int32_t id = byte_to_id_[static_cast<unsigned char>(piece[0])];
        if (id >= 0) out.push_back(id);
        return;
      }
      if (const auto hit = ws.cache.find(piece); hit != ws.cache.end()) {
        const auto [from, count] = hit->second;
        out.insert(out.end(), ws.cached_ids.begin() + from, ws.cached_ids.begin() + from + count);
        return;
      }
      const std::size_t before = out.size();
      merge_piece(piece, out, ws);
      const auto from = static_cast<std::uint32_t>(ws.cached_ids.size());
      ws.cached_ids.insert(ws.cached_ids.end(), out.begin() + static_cast<std::ptrdiff_t>(before),
                           out.end());
      ws.cache.emplace(piece, std::pair{from, static_cast<std::uint32_t>(out.size() - before)});
    });
  }

  // BPE over one piece: one symbol per byte, then merges by rank until no adjacent pair has one.
  void merge_piece(std::string_view piece, std::vector<std::int32_t>& out, workspace& ws) const {
    auto& sym = ws.symbols;
    auto& heap = ws.heap;
    // Bytes without a token are left out, as HF's BPE leaves out characters it has no token
    // for (without an unknown token); their neighbours become adjacent.
    sym.clear();
    heap.clear();
    for (const char c : piece) {
      const std::int32_t id = byte_to_id_[static_cast<unsigned char>(c)];
      if (id >= 0) sym.push_back({id, -1, -1, true});
    }
    const auto n = static_cast<std::int32_t>(sym.size());
    if (n == 0) return;
    for (std::int32_t i = 0; i < n; ++i) {
      sym[static_cast<std::size_t>(i)].prev = i - 1;
      sym[static_cast<std::size_t>(i)].next = i + 1 < n ? i + 1 : -1;
    }
    const auto push = [&](std::int32_t pos) {
      const symbol& a = sym[static_cast<std::size_t>(pos)];
      if (a.next < 0) return;
      const symbol& b = sym[static_cast<std::size_t>(a.next)];
      const auto it = merges_.find(pair_key(a.id, b.id));
      if (it == merges_.end()) return;
      heap.push_back({it->second.rank, pos, a.id, b.id, it->second.merged});
      std::push_heap(heap.begin(), heap.end(), std::greater<>{});
    };
    for (std::int32_t i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
      const candidate c = heap.back();
      heap.pop_back();
      symbol& a = sym[static_cast<std::size_t>(c.pos)];
      if (!a.alive || a.id != c.left || a.next < 0) continue;
      symbol& b = sym[static_cast<std::size_t>(a.next)];
      if (b.id != c.right) continue;  // stale: one side has merged since
      a.id = c.merged;
      b.alive = false;
      a.next = b.next;
      if (b.next >= 0) sym[static_cast<std::size_t>(b.next)].prev = c.pos;
      if (a.prev >= 0) push(a.prev);
      push(c.pos);
    }
    for (std::int32_t i = 0; i >= 0; i = sym[static_cast<std::size_t>(i)].next)
      out.push_back(sym[static_cast<std::size_t>(i)].id);
  }

  std::vector<std::string> texts_;  // [vocab_size] as stored
  std::vector<std::string> bytes_;  // [vocab_size] what each token decodes to
  std::vector<token_type> types_;   // [vocab_size]
  std::unordered_map<std::string, std::int32_t, string_hash, std::equal_to<>> index_;
  std::unordered_map<std::uint64_t, merge_rule> merges_;  // (left id, right id) -> rule
  std::array<std::int32_t, 256> byte_to_id_{};
  std::vector<std::int32_t> specials_;  // special token ids, longest text first
  std::array<bool, 256> special_first_byte_{};
  bpe_pretokenizer pre_;
  std::optional<std::int32_t> bos_, eos_, unk_, pad_;
  std::optional<std::int32_t> im_start_, im_end_, endoftext_;
  bool add_bos_;
};

}  // namespace fasa::model
