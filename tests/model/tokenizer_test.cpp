// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
//
// Tests of fasa/model/tokenizer_bpe.hpp, tokenizer_llama2c.hpp and unicode.hpp.
//
// The byte-level BPE is checked against an independent implementation at test time:
// tokenizer_reference.py builds Hugging Face `tokenizers` from the SmolLM2 GGUF's vocabulary and
// merges and prints its ids for the same texts (skipped, saying why, where the model or Python
// with gguf+tokenizers is missing). The llama2.c tokenizer is checked against run.c's quadratic
// merge loop written out here over the vocabulary as this file reads it, and against
// hand-derived encodings of single characters.

#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "fasa/model/tokenizer_bpe.hpp"
#include "fasa/model/tokenizer_llama2c.hpp"
#include "fasa/model/unicode.hpp"
#include "support.hpp"

// The project's GGUF reader, where it exists (the tokenizer itself does not depend on it).
#if __has_include("fasa/model/gguf.hpp")
#include "fasa/model/gguf.hpp"
#define FASA_TEST_HAS_GGUF_READER 1
#else
#define FASA_TEST_HAS_GGUF_READER 0
#endif

namespace {

namespace fs = std::filesystem;
using fasa::model::bpe_pretokenizer;
using fasa::model::bpe_tokenizer;
using fasa::model::bpe_vocab;
using fasa::model::llama2c_tokenizer;
using ids_t = std::vector<std::int32_t>;

// --- Helpers -------------------------------------------------------------------------------

// tests/model/, where the Python scripts live (from CMake's FASA_SOURCE_DIR; compiled by hand,
// from __FILE__, relative to the repository root when run from there).
fs::path scripts_dir() {
#ifdef FASA_SOURCE_DIR
  return fs::path(FASA_SOURCE_DIR) / "tests" / "model";
#else
  return fs::absolute(fs::path(__FILE__)).parent_path();
#endif
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (const char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Exit status of a shell command (-1 when it did not exit normally).
int run_shell(const std::string& cmd) {
  const int st = std::system(cmd.c_str());
  return (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

// A fresh directory for one test's files, removed at scope exit.
struct temp_dir {
  fs::path path;
  explicit temp_dir(const std::string& tag) {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("fasa_" + tag + "_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// $FASA_PYTHON, else the Python CMake found (tests/support.hpp).
std::string python() { return fasa::test::python_executable(); }

// Why the Python reference cannot run here, or empty when it can.
std::string python_reference_missing() {
  const fs::path script = scripts_dir() / "tokenizer_reference.py";
  if (!fs::exists(script)) return "tokenizer_reference.py not found at " + script.string();
  const std::string cmd =
      quote(python()) + " " + quote(script.string()) + " --check >/dev/null 2>&1";
  if (run_shell(cmd) != 0)
    return python() +
           " with the Python packages gguf and tokenizers is not available (pip install gguf "
           "tokenizers, or point FASA_PYTHON at a Python that has them)";
  return {};
}

// The SmolLM2 GGUF: $FASA_MODEL, else ${FASA_CACHE_DIR:-$HOME/.cache/fasa}/models/...
std::optional<fs::path> smollm_model() {
  const fs::path p = fasa::test::default_model_path();
  if (fs::exists(p)) return p;
  return std::nullopt;
}

// Moby Dick without the Project Gutenberg header and footer, or empty when missing.
std::string moby_dick() {
  const std::string dir = fasa::test::shared_data_dir();
  if (dir.empty()) return {};
  const std::string all = read_file(fs::path(dir) / "text" / "moby_dick.txt");
  const auto start = all.find("*** START OF");
  const auto end = all.find("*** END OF");
  if (start == std::string::npos || end == std::string::npos || end < start) return {};
  const auto body = all.find('\n', start) + 1;
  return all.substr(body, all.rfind('\n', end) - body);
}

// A random byte string (any bytes, mostly invalid UTF-8).
std::string random_bytes(std::mt19937& gen, std::size_t n) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(byte(gen));
  return s;
}

// Random valid UTF-8 built from code points that exercise every branch of the GPT-2 regex:
// letters of several scripts, digits of several scripts, every kind of whitespace the regex
// knows (and U+001C..U+001F, which it does not), apostrophes before contraction letters,
// punctuation, symbols, emoji, and (when `specials`) chat markers and near misses.
std::string random_text(std::mt19937& gen, std::size_t n, bool specials) {
  static const std::vector<std::string> atoms = {
      "a",      "Z",      "e",      "s",      "t",      "r",      "v",      "l",      "m",
      "d",      "'",      "'",      " ",      " ",      " ",      "\n",     "\t",     "\r",
      "\v",     "\f",     "1",      "0",      "9",      ".",      ",",      "!",      "?",
      "-",      "_",      "(",      ")",      "\"",     "#",      "$",      "<",      ">",
      "|",      "é",      "ß",      "Ω",      "ж",      "東",     "京",     "ا",      "٣",
      "५",      "Ⅻ",      "½",      "²",      "—",      "…",      "€",      "🙂",   "🚀",
      "\u0085", "\u00a0", "\u2028", "\u3000", "\u2009", "\u200b", "\u001c", "\u001f", "\u00ad",
      "\u0301", "ǅ",      "ʰ"};
  static const std::vector<std::string> special_atoms = {"<|im_start|>", "<|im_end|>",
                                                         "<|endoftext|>", "<|im_start", "<|"};
  std::uniform_int_distribution<std::size_t> pick(0, atoms.size() - 1);
  std::uniform_int_distribution<std::size_t> pick_special(0, special_atoms.size() - 1);
  std::uniform_int_distribution<int> percent(0, 99);
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    if (specials && percent(gen) < 3)
      s += special_atoms[pick_special(gen)];
    else
      s += atoms[pick(gen)];
  }
  return s;
}

std::string show_bytes(std::string_view s) {
  std::ostringstream os;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7F && c != '\\')
      os << ch;
    else
      os << "\\x"
         << "0123456789abcdef"[c >> 4] << "0123456789abcdef"[c & 15];
  }
  return os.str();
}

template <class Tok>
std::string show_ids(const Tok& tok, const ids_t& ids, std::size_t from, std::size_t count) {
  std::ostringstream os;
  for (std::size_t i = from; i < std::min(ids.size(), from + count); ++i) {
    os << ids[i];
    if (ids[i] >= 0 && ids[i] < tok.vocab_size())
      os << "'" << show_bytes(tok.token_text(ids[i])) << "'";
    os << ' ';
  }
  return os.str();
}

// CHECKs got == want and, when they differ, says where and shows the tokens around there.
template <class Tok>
void check_ids(const Tok& tok, const std::string& what, const ids_t& got, const ids_t& want) {
  if (got == want) {
    CHECK(true);
    return;
  }
  std::size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  const std::size_t from = i >= 3 ? i - 3 : 0;
  INFO(what, ": ", got.size(), " ids, reference ", want.size(), "; first difference at ", i,
       "\n  got:       ", show_ids(tok, got, from, 10),
       "\n  reference: ", show_ids(tok, want, from, 10));
  CHECK(got == want);
}

// --- A small byte-level vocabulary ---------------------------------------------------------

// The 256 byte tokens in byte order, then `extra` (token texts), `specials` (control tokens)
// and the merges.
bpe_vocab small_vocab(
    const std::vector<std::string>& extra, const std::vector<std::string>& merges,
    const std::vector<std::pair<std::string, fasa::model::token_type>>& specials = {},
    std::string pre = "gpt2") {
  bpe_vocab v;
  for (int b = 0; b < 256; ++b)
    v.tokens.push_back(fasa::model::gpt2_bytes_to_text(std::string(1, static_cast<char>(b))));
  v.token_types.assign(256, 1);
  for (const auto& t : extra) {
    v.tokens.push_back(t);
    v.token_types.push_back(1);
  }
  for (const auto& [t, type] : specials) {
    v.tokens.push_back(t);
    v.token_types.push_back(static_cast<std::int32_t>(type));
  }
  v.merges = merges;
  v.pre = std::move(pre);
  return v;
}

std::int32_t id_of(const bpe_tokenizer& tok, std::string_view text) {
  const auto id = tok.find_token(text);
  INFO("token '", text, "'");
  REQUIRE(id.has_value());
  return *id;
}

std::vector<std::string> pieces(std::string_view text, bpe_pretokenizer pre) {
  std::vector<std::string> out;
  fasa::model::pretokenize(text, pre, [&](std::string_view p) { out.emplace_back(p); });
  return out;
}

// A stand-in for the GGUF reader: the accessors from_gguf uses, over maps.
struct fake_gguf {
  std::map<std::string, std::string> strings;
  std::map<std::string, std::int64_t> ints;
  std::map<std::string, std::vector<std::string>> string_arrays;
  std::map<std::string, std::vector<std::int32_t>> int_arrays;
  bool has(std::string_view k) const {
    const std::string key(k);
    return strings.count(key) || ints.count(key) || string_arrays.count(key) ||
           int_arrays.count(key);
  }
  const std::string& get_string(std::string_view k) const { return strings.at(std::string(k)); }
  std::int64_t get_int(std::string_view k) const { return ints.at(std::string(k)); }
  const std::vector<std::string>& get_string_array(std::string_view k) const {
    return string_arrays.at(std::string(k));
  }
  const std::vector<std::int32_t>& get_int_array(std::string_view k) const {
    return int_arrays.at(std::string(k));
  }
};

// --- SmolLM2 and the Hugging Face reference ------------------------------------------------

struct named_text {
  std::string name;
  std::string text;
};

std::vector<named_text> reference_texts() {
  std::vector<named_text> t = {
      {"digits", "12345 3.14159"},
      {"unicode", "naïve café — 東京 🙂"},
      {"whitespace runs", "a   b\n\n\tc  "},
      {"contractions", "don't I'll we've"},
      {"contraction corners", "'S 'sx 're 'LL it's rock'n'roll ''s '"},
      {"code",
       "#include <vector>\nint main() {\n    std::vector<int> v{1, 2, 3};\n    for (auto& x : "
       "v) x *= 2;  // double\n\treturn v[0] == 2 ? 0 : 1;\n}\n\ndef f(x):\n    return "
       "x**2 + 0x1F\n"},
      {"punctuation runs", "!!! ... ?!?! --- ((())) <<>> ''' \"\"\" ~~~ ... !? ,,"},
      {"unicode whitespace", "x\x1cy\u0085z\u200bw\u3000v\u00a0u \u2028 \u2009\u2009end  \u3000"},
      {"numbers of other scripts", "٣٤ Ⅻ ½ ² ৫০ x١y"},
      {"chat", "<|im_start|>user\nHi<|im_end|>\n"},
      {"chat template",
       "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
       "Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"},
      {"special tokens adjacent", "<|im_start|><|im_end|><|endoftext|>x<|im_start <|im_end|"},
      {"empty", ""},
      {"one space", " "},
      {"one newline", "\n"},
      {"long whitespace", std::string(1000, ' ') + "x" + std::string(300, '\n') + "y\t\t\t"},
      {"long punctuation", std::string(2000, '=') + " " + std::string(777, '-')},
      {"long digits", std::string(500, '7') + "8"},
      // Bytes SmolLM2 has no token for (left out, as HF leaves them out), between ones that
      // then become adjacent and merge.
      {"bytes without a token",
       "control\x04"
       "chars\x1d!\x04! and \x13\x14\x16 end \U00050000"},
  };
  const std::string moby = moby_dick();
  if (!moby.empty()) {
    const auto at = moby.find("Call me Ishmael.");
    auto end = moby.find("\r\n\r\n", at);  // the file has CRLF line ends
    if (end == std::string::npos) end = moby.find("\n\n", at);
    if (at != std::string::npos && end != std::string::npos)
      t.push_back({"Moby Dick paragraph", moby.substr(at, end - at)});
    t.push_back({"Moby Dick, the whole book", moby});
  }
  std::mt19937 gen(20260207);
  for (int i = 0; i < 60; ++i)
    t.push_back({"random text " + std::to_string(i), random_text(gen, 1 + i * 7, i % 2 == 0)});
  return t;
}

// SmolLM2's tokenizer, and the Python reference's output for reference_texts(). The tokenizer
// comes from the project's GGUF reader where it exists, else from the vocabulary the reference
// read with the gguf package; so the tests that need only the tokenizer run without Python once
// the GGUF reader is there.
struct smollm_fixture {
  std::string skip;      // why no SmolLM2 tokenizer is available here, or empty
  std::string ref_skip;  // why the reference cannot run here, or empty
  std::string error;     // why the reference failed when it should have run, or empty
  std::optional<bpe_tokenizer> tok;
  std::optional<bpe_tokenizer> ref_vocab_tok;  // built from the gguf package's reading
  std::vector<named_text> texts;
  nlohmann::json ref;  // {"ids", "ids_no_special", "decoded", "vocab"}
};

std::optional<bpe_tokenizer> tokenizer_from_reference_vocab(const nlohmann::json& v) {
  bpe_vocab vocab;
  vocab.tokens = v.at("tokens").get<std::vector<std::string>>();
  vocab.token_types = v.at("token_types").get<std::vector<std::int32_t>>();
  vocab.merges = v.at("merges").get<std::vector<std::string>>();
  vocab.pre = v.at("pre").get<std::string>();
  vocab.add_bos = v.at("add_bos").get<bool>();
  for (auto [field, name] : {std::pair{&vocab.bos, "bos"}, std::pair{&vocab.eos, "eos"},
                             std::pair{&vocab.unk, "unk"}, std::pair{&vocab.pad, "pad"}})
    if (!v.at(name).is_null()) *field = v.at(name).get<std::int32_t>();
  return bpe_tokenizer(std::move(vocab));
}

smollm_fixture load_smollm() {
  smollm_fixture f;
  const auto model = smollm_model();
  if (!model) {
    f.skip = f.ref_skip = fasa::test::default_model_path() +
                          " is missing (run scripts/fetch-model.sh, or set FASA_MODEL)";
    return f;
  }
#if FASA_TEST_HAS_GGUF_READER
  f.tok.emplace(bpe_tokenizer::from_gguf(fasa::model::gguf_file(*model)));
#endif
  f.ref_skip = python_reference_missing();
  if (!f.ref_skip.empty()) {
    if (!f.tok) f.skip = f.ref_skip;
    return f;
  }
  f.texts = reference_texts();
  nlohmann::json in = nlohmann::json::array();
  for (const auto& t : f.texts) in.push_back(t.text);
  temp_dir dir("tokenizer_ref");
  write_file(dir.path / "texts.json", in.dump());
  const std::string cmd =
      quote(python()) + " " + quote((scripts_dir() / "tokenizer_reference.py").string()) + " " +
      quote(model->string()) + " " + quote((dir.path / "texts.json").string()) + " --vocab > " +
      quote((dir.path / "ref.json").string()) + " 2> " + quote((dir.path / "ref.err").string());
  const int rc = run_shell(cmd);
  if (rc != 0) {
    // The script can run here (its --check passed) but failed: a test failure, not a skip.
    f.error = "tokenizer_reference.py exited with " + std::to_string(rc) + ": " +
              read_file(dir.path / "ref.err");
    return f;
  }
  f.ref = nlohmann::json::parse(read_file(dir.path / "ref.json"));
  f.ref_vocab_tok = tokenizer_from_reference_vocab(f.ref.at("vocab"));
  if (!f.tok) f.tok = f.ref_vocab_tok;
  return f;
}

const smollm_fixture& smollm() {
  static const smollm_fixture f = load_smollm();
  return f;
}

// The SmolLM2 tokenizer tests need the model (and Python, until the GGUF reader exists); those
// that compare with Hugging Face need the reference too. Skipped when missing, failed instead
// under FASA_REQUIRE_MODEL_TESTS=1 (tests/support.hpp).
#define FASA_SKIP_WITHOUT_SMOLLM(f)              \
  REQUIRE_MESSAGE((f).error.empty(), (f).error); \
  FASA_SKIP_UNLESS((f).tok.has_value(), (f).skip)
#define FASA_SKIP_WITHOUT_REFERENCE(f)           \
  REQUIRE_MESSAGE((f).error.empty(), (f).error); \
  FASA_SKIP_UNLESS((f).ref_skip.empty() && !(f).ref.is_null(), (f).ref_skip)

}  // namespace

// === Unicode ===============================================================================

TEST_CASE("tokenizer unicode: classes of the GPT-2 regex") {
  using namespace fasa::model::unicode;
  for (char32_t c : {U'a', U'Z', U'é', U'ß', U'Ω', U'ж', U'東', U'ا', U'ǅ', U'ʰ', U'ª'})
    CHECK(is_letter(c));
  for (char32_t c : {U'0', U'9', U'٣', U'५', U'Ⅻ', U'½', U'²', U'𝟘'}) CHECK(is_number(c));
  for (char32_t c : {U' ', U'\t', U'\n', U'\v', U'\f', U'\r', U'\u0085', U'\u00a0', U'\u1680',
                     U'\u2000', U'\u200a', U'\u2028', U'\u2029', U'\u202f', U'\u205f', U'\u3000'})
    CHECK(is_whitespace(c));
  // Not whitespace for Oniguruma's \s (Python's isspace disagrees on U+001C..U+001F).
  for (char32_t c : {U'\u001c', U'\u001f', U'\u200b', U'\u180e', U'\ufeff'})
    CHECK_FALSE(is_whitespace(c));
  for (char32_t c : {U'.', U'\'', U'_', U'—', U'€', U'🙂', U'\u0301', U'\u00ad', U'\0'}) {
    CHECK_FALSE(is_letter(c));
    CHECK_FALSE(is_number(c));
    CHECK_FALSE(is_whitespace(c));
  }
  CHECK_FALSE(is_letter(0x10FFFF));
  CHECK_FALSE(is_letter(0x110000));
}

TEST_CASE("tokenizer unicode: lenient UTF-8 decoding") {
  using namespace fasa::model::unicode;
  const auto unit = [](std::string_view s) { return decode_utf8(s, 0); };
  CHECK(unit("A").cp == U'A');
  CHECK(unit("é").cp == U'é');
  CHECK(unit("é").len == 2);
  CHECK(unit("東").len == 3);
  CHECK(unit("🙂").cp == U'🙂');
  CHECK(unit("🙂").len == 4);
  // Invalid: a stray continuation byte, a truncated sequence, an overlong '/', a surrogate,
  // a code point above U+10FFFF, bytes that never occur.
  for (std::string_view bad : {"\x80", "\xC3", "\xE6\x9D", "\xC0\xAF", "\xED\xA0\x80",
                               "\xF4\x90\x80\x80", "\xFF", "\xFE"}) {
    const utf8_unit u = unit(bad);
    CHECK_FALSE(u.valid);
    CHECK(u.len == 1);
    CHECK(u.cp == static_cast<unsigned char>(bad[0]));
  }
  CHECK(is_valid_utf8("naïve café — 東京 🙂"));
  CHECK_FALSE(is_valid_utf8("ok\xC3("));
  std::string round;
  for (char32_t c : {U'a', U'é', U'東', U'🙂', char32_t{0x10FFFF}}) append_utf8(round, c);
  std::string expected = "aé東🙂\xF4\x8F\xBF\xBF";
  CHECK(round == expected);
}

TEST_CASE("tokenizer unicode: generated tables are what the generator makes") {
  const fs::path gen = scripts_dir() / "tokenizer_unicode_tables.py";
  const fs::path header = scripts_dir().parent_path().parent_path() / "include" / "fasa" / "model" /
                          "unicode_tables.hpp";
  if (!fs::exists(gen) || !fs::exists(header)) {
    MESSAGE("skipped: ", gen.string(), " or ", header.string(), " not found");
    return;
  }
  const int rc = run_shell(quote(python()) + " " + quote(gen.string()) + " --check " +
                           quote(header.string()) + " >/dev/null 2>&1");
  if (rc == 77 || rc == 127 || rc < 0) {
    MESSAGE("skipped: ", python(), " is missing or has another Unicode version than the tables (",
            std::string(fasa::model::unicode::tables_unicode_version), ")");
    return;
  }
  INFO("regenerate with: python3 tests/model/tokenizer_unicode_tables.py > ", header.string());
  CHECK(rc == 0);
}

// === Byte-level BPE without a model ========================================================

TEST_CASE("tokenizer bpe: GPT-2 byte-to-unicode map") {
  using fasa::model::gpt2_byte_to_codepoint;
  CHECK(gpt2_byte_to_codepoint('!') == U'!');
  CHECK(gpt2_byte_to_codepoint('~') == U'~');
  CHECK(gpt2_byte_to_codepoint(0x00) == U'\u0100');
  CHECK(gpt2_byte_to_codepoint('\n') == U'Ċ');
  CHECK(gpt2_byte_to_codepoint(' ') == U'Ġ');
  CHECK(gpt2_byte_to_codepoint(0x7F) == U'\u0121');
  CHECK(gpt2_byte_to_codepoint(0xA0) == U'\u0142');
  CHECK(gpt2_byte_to_codepoint(0xAD) == U'\u0143');
  CHECK(gpt2_byte_to_codepoint(0xFF) == U'ÿ');
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) seen.insert(gpt2_byte_to_codepoint(static_cast<std::uint8_t>(b)));
  CHECK(seen.size() == 256);
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  CHECK(fasa::model::gpt2_text_to_bytes(fasa::model::gpt2_bytes_to_text(all)) == all);
  CHECK(fasa::model::gpt2_bytes_to_text("\n the") == "ĊĠthe");
  CHECK_FALSE(fasa::model::gpt2_text_to_bytes("<|im_end|> ").has_value());
}

TEST_CASE("tokenizer bpe: pre-tokenizer pieces") {
  using P = std::vector<std::string>;
  const auto gpt2 = bpe_pretokenizer::gpt2;
  const auto smollm = bpe_pretokenizer::smollm;
  // Expected pieces as Hugging Face tokenizers' pre_tokenize_str gives them.
  CHECK(pieces("12345 3.14159", gpt2) == P{"12345", " 3", ".", "14159"});
  CHECK(pieces("12345 3.14159", smollm) ==
        P{"1", "2", "3", "4", "5", " ", "3", ".", "1", "4", "1", "5", "9"});
  CHECK(pieces("a 1b", smollm) == P{"a", " ", "1", "b"});
  CHECK(pieces("٣٤ Ⅻx", smollm) == P{"٣", "٤", " ", "Ⅻ", "x"});
  CHECK(pieces("hello world!!! ok", gpt2) == P{"hello", " world", "!!!", " ok"});
  CHECK(pieces("don't I'll we've", gpt2) == P{"don", "'t", " I", "'ll", " we", "'ve"});
  CHECK(pieces("'S 'sx 're", gpt2) == P{"'", "S", " '", "sx", " '", "re"});
  CHECK(pieces("'''s", gpt2) == P{"'''", "s"});
  CHECK(pieces("a   b\n\n\tc  ", gpt2) == P{"a", "  ", " b", "\n\n", "\t", "c", "  "});
  CHECK(pieces("x  \n y", gpt2) == P{"x", "  \n", " y"});
  CHECK(pieces("x\ny", gpt2) == P{"x", "\n", "y"});
  CHECK(pieces("x\x1cy", gpt2) == P{"x", "\x1c", "y"});
  CHECK(pieces("x \x1cy", gpt2) == P{"x", " \x1c", "y"});
  CHECK(pieces("a\u0085\u0085b", gpt2) == P{"a", "\u0085", "\u0085", "b"});
  CHECK(pieces("a\u3000\u3000b", gpt2) == P{"a", "\u3000", "\u3000", "b"});
  CHECK(pieces("a\u200b\u200bb", gpt2) == P{"a", "\u200b\u200b", "b"});
  CHECK(pieces(" ", gpt2) == P{" "});
  CHECK(pieces("  x", gpt2) == P{" ", " x"});
  CHECK(pieces("", gpt2).empty());
  // Bytes that are not UTF-8 are [^\s\p{L}\p{N}].
  CHECK(pieces("a\xff\xfe"
               "b c",
               gpt2) == P{"a", "\xff\xfe", "b", " c"});
  CHECK(pieces(" \xc3(", gpt2) == P{" \xc3("});
}

TEST_CASE("tokenizer bpe: merges by rank on a small vocabulary") {
  const bpe_tokenizer tok(
      small_vocab({"Ġt", "he", "Ġthe", "ll", "ell", "aa", "aaaa", "Ġhe"},
                  {"Ġ t", "h e", "Ġt he", "l l", "e ll", "a a", "aa aa", "Ġ he"},
                  {{"<|im_start|>", fasa::model::token_type::control},
                   {"<|im_end|>", fasa::model::token_type::control},
                   {"<tool>", fasa::model::token_type::user_defined},
                   {"<tool>call", fasa::model::token_type::control}}));
  const auto id = [&](std::string_view t) { return id_of(tok, t); };
  const auto byte = [&](char c) {
    return static_cast<std::int32_t>(static_cast<unsigned char>(c));
  };
  CHECK(tok.vocab_size() == 256 + 8 + 4);
  CHECK(tok.num_merges() == 8);
  // " the": Ġ t -> Ġt (rank 0), h e -> he (rank 1), Ġt he -> Ġthe (rank 2).
  CHECK(tok.encode(" the") == ids_t{id("Ġthe")});
  // "hell": h e (rank 1) before l l (rank 3), so e ll (rank 4) never applies.
  CHECK(tok.encode("hell") == ids_t{id("he"), id("ll")});
  // " he": Ġ he (rank 7) only after h e.
  CHECK(tok.encode(" he") == ids_t{id("Ġhe")});
  // Equal ranks merge leftmost first: aaa -> aa a; aaaaa -> aaaa a.
  CHECK(tok.encode("aaa") == ids_t{id("aa"), byte('a')});
  CHECK(tok.encode("aaaaa") == ids_t{id("aaaa"), byte('a')});
  CHECK(tok.encode("x") == ids_t{byte('x')});
  CHECK(tok.encode("").empty());
  // Special tokens: atomic, leftmost-longest, control ones only with parse_special.
  const auto im_start = id("<|im_start|>");
  CHECK(tok.im_start_id() == im_start);
  CHECK(tok.im_end_id() == id("<|im_end|>"));
  CHECK_FALSE(tok.endoftext_id().has_value());
  CHECK(tok.encode("x<|im_start|>he") == ids_t{byte('x'), im_start, id("he")});
  CHECK(tok.encode("<|im_start|><|im_start|>") == ids_t{im_start, im_start});
  CHECK(tok.encode("<tool>call") == ids_t{id("<tool>call")});
  CHECK(tok.encode("<tool>cal") == ids_t{id("<tool>"), byte('c'), byte('a'), byte('l')});
  const ids_t plain = tok.encode("<|im_start|>", false);
  CHECK(plain.size() > 1);
  CHECK(std::find(plain.begin(), plain.end(), im_start) == plain.end());
  CHECK(tok.decode(plain) == "<|im_start|>");
  // A user-defined token is matched even without parse_special; a control one is not.
  CHECK(tok.encode("<tool>call", false)[0] == id("<tool>"));
  CHECK(tok.is_special(im_start));
  CHECK_FALSE(tok.is_special(id("he")));
  // decode: bytes back, special text verbatim, or left out.
  const ids_t chat = tok.encode("<|im_start|> the<|im_end|>");
  CHECK(chat == ids_t{im_start, id("Ġthe"), id("<|im_end|>")});
  CHECK(tok.decode(chat) == "<|im_start|> the<|im_end|>");
  CHECK(tok.decode(chat, false) == " the");
  CHECK(tok.token_text(id("Ġthe")) == "Ġthe");
  CHECK(tok.token_bytes(id("Ġthe")) == " the");
}

TEST_CASE("tokenizer bpe: the smollm pre-tokenizer keeps digits apart before merging") {
  const std::vector<std::string> extra = {"12", "Ġ1"};
  const std::vector<std::string> merges = {"Ġ 1", "1 2"};
  const bpe_tokenizer gpt2(small_vocab(extra, merges, {}, "gpt2"));
  const bpe_tokenizer smol(small_vocab(extra, merges, {}, "smollm"));
  CHECK(gpt2.encode(" 12") == ids_t{id_of(gpt2, "Ġ1"), '2'});
  CHECK(smol.encode(" 12") == ids_t{' ', '1', '2'});
  CHECK(gpt2.encode("12") == ids_t{id_of(gpt2, "12")});
  CHECK(smol.pretokenizer() == bpe_pretokenizer::smollm);
}

TEST_CASE("tokenizer bpe: decode(encode(s)) == s for random bytes") {
  const bpe_tokenizer tok(small_vocab({"Ġt", "he", "Ġthe"}, {"Ġ t", "h e", "Ġt he"},
                                      {{"<|im_end|>", fasa::model::token_type::control}}));
  std::mt19937 gen(7);
  for (int i = 0; i < 200; ++i) {
    const std::string s = i % 2 ? random_bytes(gen, static_cast<std::size_t>(i))
                                : random_text(gen, static_cast<std::size_t>(i), true);
    INFO("input: ", show_bytes(s));
    CHECK(tok.decode(tok.encode(s)) == s);
    CHECK(tok.decode(tok.encode(s, false)) == s);
  }
}

TEST_CASE("tokenizer bpe: bytes without a token are left out") {
  auto v = small_vocab({"!!"}, {"! !"});
  v.tokens[4] = "<unused4>";  // byte 0x04 now has no token
  v.token_types[4] = static_cast<std::int32_t>(fasa::model::token_type::unused);
  const bpe_tokenizer tok(v);
  CHECK_FALSE(tok.has_byte_token(0x04));
  CHECK(tok.has_byte_token(0x05));
  CHECK(tok.encode("\x04").empty());
  // "!\x04!" is one piece; without the 0x04 its two '!' are adjacent and merge.
  CHECK(tok.encode("!\x04!") == ids_t{id_of(tok, "!!")});
  CHECK(tok.decode(tok.encode("a\x04"
                              "b")) == "ab");
}

TEST_CASE("tokenizer bpe: long pieces merge in O(n log n)") {
  // One 200K-byte piece whose merges cascade (a a -> aa, aa aa -> aaaa, ...): a quadratic
  // merge loop would take minutes.
  std::vector<std::string> extra, merges;
  std::string unit = "a";
  for (int k = 0; k < 12; ++k) {
    merges.push_back(unit + " " + unit);
    unit += unit;
    extra.push_back(unit);
  }
  const bpe_tokenizer tok(small_vocab(extra, merges));
  const std::string text(200000, 'a');
  const auto t0 = std::chrono::steady_clock::now();
  const ids_t ids = tok.encode(text);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE("encode of one 200000-byte piece: ", s, " s");
  // Level by level, leftmost pairs first: 48 x 4096 a's, then 3392 = 2048 + 1024 + 256 + 64.
  CHECK(ids.size() == 52);
  CHECK(tok.decode(ids) == text);
  CHECK(s < 5.0);
}

TEST_CASE("tokenizer bpe: errors") {
  const auto fails_with = [](auto&& make, std::string_view part) {
    try {
      make();
    } catch (const fasa::error& e) {
      INFO("message: ", e.what());
      CHECK(std::string_view(e.what()).find(part) != std::string_view::npos);
      return;
    }
    FAIL("no fasa::error thrown; expected one mentioning '", part, "'");
  };
  fails_with([] { (void)bpe_tokenizer(small_vocab({}, {}, {}, "qwen2")); },
             "unknown BPE pre-tokenizer 'qwen2'; known: gpt2, smollm");
  fails_with([] { (void)bpe_tokenizer(small_vocab({}, {"a b"})); },
             "merge 0 ('a b') names a merged token that is not in the vocabulary");
  fails_with([] { (void)bpe_tokenizer(small_vocab({}, {"ab"})); }, "is not two tokens");
  fails_with(
      [] {
        auto v = small_vocab({}, {});
        v.token_types.pop_back();
        (void)bpe_tokenizer{v};
      },
      "255 token types for 256 tokens");
  fails_with(
      [] {
        auto v = small_vocab({}, {});
        v.eos = 256;
        (void)bpe_tokenizer{v};
      },
      "eos id 256 is outside the vocabulary");
  const bpe_tokenizer tok(small_vocab({}, {}));
  const ids_t bad = {1, 2, 256};
  fails_with([&] { (void)tok.decode(bad); },
             "token id 256 at position 2 is outside the vocabulary [0, 256)");
  fails_with([&] { (void)tok.token_text(-1); }, "token id -1 is outside the vocabulary");
}

TEST_CASE("tokenizer bpe: from_gguf reads the tokenizer keys") {
  auto v = small_vocab({"Ġt", "he"}, {"Ġ t", "h e"},
                       {{"<|im_start|>", fasa::model::token_type::control}}, "smollm");
  fake_gguf g;
  g.strings["tokenizer.ggml.model"] = "gpt2";
  g.strings["tokenizer.ggml.pre"] = "smollm";
  g.string_arrays["tokenizer.ggml.tokens"] = v.tokens;
  g.string_arrays["tokenizer.ggml.merges"] = v.merges;
  g.int_arrays["tokenizer.ggml.token_type"] = v.token_types;
  g.ints["tokenizer.ggml.bos_token_id"] = 258;
  g.ints["tokenizer.ggml.eos_token_id"] = 257;
  g.ints["tokenizer.ggml.add_bos_token"] = 1;
  const auto tok = bpe_tokenizer::from_gguf(g);
  CHECK(tok.vocab_size() == 259);
  CHECK(tok.pretokenizer() == bpe_pretokenizer::smollm);
  CHECK(tok.bos_id() == 258);
  CHECK(tok.eos_id() == 257);
  CHECK_FALSE(tok.unk_id().has_value());
  CHECK(tok.add_bos_token());
  CHECK(tok.encode("<|im_start|>he") == ids_t{258, 257});
  CHECK(tok.is_end_of_generation(257));

  g.strings["tokenizer.ggml.pre"] = "llama3";
  CHECK_THROWS_WITH_AS(bpe_tokenizer::from_gguf(g),
                       doctest::Contains("unknown BPE pre-tokenizer 'llama3'; known: gpt2, smollm"),
                       fasa::error);
  g.strings["tokenizer.ggml.model"] = "llama";
  CHECK_THROWS_WITH_AS(bpe_tokenizer::from_gguf(g),
                       doctest::Contains("tokenizer.ggml.model is 'llama'"), fasa::error);
}

// === SmolLM2 against Hugging Face tokenizers ==============================================

TEST_CASE("tokenizer bpe: SmolLM2 encodes exactly as Hugging Face tokenizers") {
  const auto& f = smollm();
  FASA_SKIP_WITHOUT_REFERENCE(f);
  REQUIRE(f.tok);
  const bpe_tokenizer& tok = *f.tok;
  const auto& ids = f.ref.at("ids");
  const auto& ids_plain = f.ref.at("ids_no_special");
  const auto& decoded = f.ref.at("decoded");
  REQUIRE(ids.size() == f.texts.size());
  CHECK(tok.pretokenizer() == bpe_pretokenizer::smollm);
  for (std::size_t i = 0; i < f.texts.size(); ++i) {
    const auto& name = f.texts[i].name;  // not a binding: CAPTURE captures it (clang 14)
    const auto& text = f.texts[i].text;
    CAPTURE(name);
    const ids_t got = tok.encode(text);
    check_ids(tok, name, got, ids[i].get<ids_t>());
    check_ids(tok, name + " (parse_special false)", tok.encode(text, false),
              ids_plain[i].get<ids_t>());
    // Both round-trip, but for bytes the vocabulary has no token for.
    std::string kept = text;
    std::erase_if(kept, [&](char c) { return !tok.has_byte_token(static_cast<std::uint8_t>(c)); });
    if (fasa::model::unicode::is_valid_utf8(kept))  // HF decodes to a Python str, lossily
      CHECK(decoded[i].get<std::string>() == kept);
    CHECK(tok.decode(got) == kept);
  }
  MESSAGE("SmolLM2: ", f.texts.size(), " texts encode exactly as Hugging Face tokenizers");
}

TEST_CASE("tokenizer bpe: SmolLM2 vocabulary, chat markers and special ids") {
  const auto& f = smollm();
  FASA_SKIP_WITHOUT_SMOLLM(f);
  const bpe_tokenizer& tok = *f.tok;
  CHECK(tok.vocab_size() == 49152);
  CHECK(tok.num_merges() == 48900);
  REQUIRE(tok.im_start_id().has_value());
  REQUIRE(tok.im_end_id().has_value());
  CHECK(tok.token_text(*tok.im_start_id()) == "<|im_start|>");
  CHECK(tok.bos_id() == tok.im_start_id());  // SmolLM2-Instruct: bos 1 = <|im_start|>
  CHECK(tok.eos_id() == tok.im_end_id());    // eos 2 = <|im_end|>
  CHECK_FALSE(tok.add_bos_token());
  const ids_t chat = tok.encode("<|im_start|>user\nHi<|im_end|>\n");
  REQUIRE(chat.size() >= 3);
  CHECK(chat.front() == *tok.im_start_id());
  CHECK(std::count(chat.begin(), chat.end(), *tok.im_end_id()) == 1);
  CHECK(tok.is_end_of_generation(*tok.im_end_id()));
  CHECK(tok.is_end_of_generation(*tok.endoftext_id()));
  CHECK_FALSE(tok.is_end_of_generation(chat[1]));
  CHECK(tok.decode(chat, false) == "user\nHi\n");
  // Each byte is one token, but for the 21 that SmolLM2's vocabulary lacks.
  std::string missing;
  for (int b = 0; b < 256; ++b) {
    const std::string one(1, static_cast<char>(b));
    const ids_t ids = tok.encode(one);
    if (!tok.has_byte_token(static_cast<std::uint8_t>(b))) {
      missing += one;
      CHECK(ids.empty());
      continue;
    }
    REQUIRE(ids.size() == 1);
    CHECK(tok.token_bytes(ids[0]) == one);
  }
  CHECK(show_bytes(missing) ==
        "\\x04\\x06\\x13\\x14\\x16\\x1d\\xc0\\xc1\\xf1\\xf2\\xf5\\xf6\\xf7\\xf8\\xf9\\xfa"
        "\\xfb\\xfc\\xfd\\xfe\\xff");
  CHECK(tok.find_token("Ġthe").has_value());
  CHECK_FALSE(tok.find_token("not a token at all").has_value());
}

TEST_CASE("tokenizer bpe: SmolLM2 round trip of random bytes and text") {
  const auto& f = smollm();
  FASA_SKIP_WITHOUT_SMOLLM(f);
  const bpe_tokenizer& tok = *f.tok;
  std::mt19937 gen(11);
  for (int i = 0; i < 300; ++i) {
    const auto n = static_cast<std::size_t>(i * 3);
    std::string s = i % 3 == 0 ? random_bytes(gen, n) : random_text(gen, n, i % 3 == 1);
    // Only bytes the vocabulary has can come back (see has_byte_token).
    std::erase_if(s, [&](char c) { return !tok.has_byte_token(static_cast<std::uint8_t>(c)); });
    INFO("input: ", show_bytes(s));
    CHECK(tok.decode(tok.encode(s)) == s);
    CHECK(tok.decode(tok.encode(s, false)) == s);
  }
}

TEST_CASE("tokenizer bpe: SmolLM2 encodes Moby Dick quickly") {
  const auto& f = smollm();
  FASA_SKIP_WITHOUT_SMOLLM(f);
  const std::string book = moby_dick();
  if (book.empty()) {
    MESSAGE("skipped: ../shared/data/text/moby_dick.txt is missing");
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  const ids_t ids = f.tok->encode(book);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto t1 = std::chrono::steady_clock::now();
  const std::string back = f.tok->decode(ids);
  const double d = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  MESSAGE("Moby Dick: ", book.size(), " bytes -> ", ids.size(), " tokens; encode ", s,
          " s, decode ", d, " s");
  CHECK(back == book);
  CHECK(s < 10.0);  // a loose bound: it takes well under a second on one core
}

#if FASA_TEST_HAS_GGUF_READER
TEST_CASE("tokenizer bpe: SmolLM2 from_gguf through the GGUF reader") {
  const auto model = smollm_model();
  FASA_SKIP_UNLESS(model.has_value(), fasa::test::default_model_path() +
                                          " is missing (run scripts/fetch-model.sh, or set "
                                          "FASA_MODEL)");
  const fasa::model::gguf_file g(*model);
  const auto tok = bpe_tokenizer::from_gguf(g);
  CHECK(tok.vocab_size() == 49152);
  CHECK(tok.num_merges() == 48900);
  CHECK(tok.pretokenizer() == bpe_pretokenizer::smollm);
  CHECK(tok.bos_id() == 1);
  CHECK(tok.eos_id() == 2);
  CHECK(tok.unk_id() == 0);
  CHECK(tok.pad_id() == 2);
  CHECK_FALSE(tok.add_bos_token());
  CHECK(tok.im_start_id() == 1);
  CHECK(tok.im_end_id() == 2);
  CHECK(tok.endoftext_id() == 0);
  // Ids printed by tokenizer_reference.py (Hugging Face tokenizers), kept here so this check
  // runs without Python.
  CHECK(tok.encode("<|im_start|>user\nHi<|im_end|>\n") == ids_t{1, 4093, 198, 26843, 2, 198});
  CHECK(tok.encode("12345 3.14159") == ids_t{33, 34, 35, 36, 37, 216, 35, 30, 33, 36, 33, 37, 41});
  CHECK(tok.encode("don't I'll we've") == ids_t{12420, 982, 339, 3060, 392, 3543});
  CHECK(tok.encode("naïve café — 東京 🙂") ==
        ids_t{3546, 46494, 37366, 1841, 17097, 247, 126, 16736, 122, 47526});
  // The same vocabulary as the gguf package reads, where the Python reference can run.
  const auto& f = smollm();
  if (f.ref_vocab_tok) {
    const bpe_tokenizer& py = *f.ref_vocab_tok;
    REQUIRE(py.vocab_size() == tok.vocab_size());
    CHECK(py.num_merges() == tok.num_merges());
    for (std::int32_t id = 0; id < tok.vocab_size(); ++id) {
      if (tok.token_text(id) != py.token_text(id) || tok.type(id) != py.type(id)) {
        FAIL_CHECK("token ", id, " differs between gguf_file and the gguf package");
        break;
      }
    }
    for (const auto& [name, text] : f.texts)
      check_ids(tok, name, tok.encode(text), py.encode(text));
  }
}
#endif

// === llama2.c ==============================================================================

namespace {

// tok512.bin read by this file's own code: {max_token_length, texts, scores}.
struct raw_llama2c_vocab {
  std::int32_t max_len = 0;
  std::vector<std::string> texts;
  std::vector<float> scores;
  std::map<std::string, std::int32_t> index;
};

std::optional<fs::path> tok512_path() {
  const std::string dir = fasa::test::shared_data_dir();
  if (dir.empty()) return std::nullopt;
  const fs::path p = fs::path(dir) / "models" / "stories260K" / "tok512.bin";
  if (!fs::exists(p)) return std::nullopt;
  return p;
}

raw_llama2c_vocab read_raw(const std::string& bytes) {
  raw_llama2c_vocab v;
  std::size_t off = 0;
  const auto take = [&](void* dst, std::size_t n) {
    REQUIRE(off + n <= bytes.size());
    std::memcpy(dst, bytes.data() + off, n);
    off += n;
  };
  take(&v.max_len, 4);
  while (off < bytes.size()) {
    float score;
    std::int32_t len;
    take(&score, 4);
    take(&len, 4);
    REQUIRE(len >= 0);
    std::string text(static_cast<std::size_t>(len), '\0');
    take(text.data(), text.size());
    v.index.emplace(text, static_cast<std::int32_t>(v.texts.size()));
    v.texts.push_back(std::move(text));
    v.scores.push_back(score);
  }
  return v;
}

// run.c's encode(), step by step as it is written there: units, byte fallback, and the
// quadratic loop that merges the best-scoring pair until none is left.
ids_t run_c_encode(const raw_llama2c_vocab& v, std::string_view text, bool bos, bool eos) {
  ids_t t;
  if (bos) t.push_back(1);
  if (!text.empty()) t.push_back(v.index.at(" "));
  std::string buf;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) buf.clear();
    buf += text[i];
    const bool next_cont =
        i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80;
    if (next_cont && buf.size() < 4) continue;
    if (const auto it = v.index.find(buf); it != v.index.end()) {
      t.push_back(it->second);
    } else {
      for (const char c : buf) t.push_back(static_cast<unsigned char>(c) + 3);
    }
    buf.clear();
  }
  while (true) {
    float best_score = -1e10f;
    std::int32_t best_id = -1;
    std::size_t best_idx = SIZE_MAX;
    for (std::size_t i = 0; i + 1 < t.size(); ++i) {
      const auto it = v.index.find(v.texts[static_cast<std::size_t>(t[i])] +
                                   v.texts[static_cast<std::size_t>(t[i + 1])]);
      if (it != v.index.end() && v.scores[static_cast<std::size_t>(it->second)] > best_score) {
        best_score = v.scores[static_cast<std::size_t>(it->second)];
        best_id = it->second;
        best_idx = i;
      }
    }
    if (best_idx == SIZE_MAX) break;
    t[best_idx] = best_id;
    t.erase(t.begin() + static_cast<std::ptrdiff_t>(best_idx) + 1);
  }
  if (eos) t.push_back(2);
  return t;
}

const std::vector<std::string>& tinystories_texts() {
  static const std::vector<std::string> texts = {
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park.",
      "One day, she saw a big, red ball. She wanted to play with it, but it was too high.",
      "Tom and Sue went to the beach. They built a sandcastle!\n\"Look,\" said Tom, \"it is so "
      "big!\"",
      "The cat's name was Max; he liked fish (and milk) -- 3 times a day.",
      "  leading spaces, trailing spaces  ",
      "Zoë's café served crème brûlée 🍮 and 東京 tea.",
      "a",
      " ",
      "\n",
  };
  return texts;
}

}  // namespace

TEST_CASE("tokenizer llama2c: reads tok512.bin") {
  const auto path = tok512_path();
  if (!path) {
    MESSAGE("skipped: ../shared/data/models/stories260K/tok512.bin is missing");
    return;
  }
  const raw_llama2c_vocab raw = read_raw(read_file(*path));
  const auto tok = llama2c_tokenizer::from_file(*path);
  REQUIRE(tok.vocab_size() == 512);
  CHECK(raw.texts.size() == 512);
  CHECK(tok.max_token_length() == raw.max_len);
  for (std::int32_t i = 0; i < 512; ++i) {
    CHECK(tok.token_text(i) == raw.texts[static_cast<std::size_t>(i)]);
    CHECK(tok.score(i) == raw.scores[static_cast<std::size_t>(i)]);
  }
  CHECK(tok.token_text(1) == "\n<s>\n");
  CHECK(tok.token_text(3 + 0x41) == "<0x41>");
  CHECK(llama2c_tokenizer::from_file(*path, 512).vocab_size() == 512);
}

TEST_CASE("tokenizer llama2c: hand-derived encodings") {
  const auto path = tok512_path();
  if (!path) {
    MESSAGE("skipped: tok512.bin is missing");
    return;
  }
  const raw_llama2c_vocab raw = read_raw(read_file(*path));
  const auto tok = llama2c_tokenizer::from_file(*path);
  const auto id = [&](const std::string& s) { return raw.index.at(s); };
  CHECK(tok.encode("") == ids_t{1});
  CHECK(tok.encode("", false) == ids_t{});
  CHECK(tok.encode("", true, true) == ids_t{1, 2});
  // One character c: BOS, the dummy " ", c; the only possible merge is " " + c.
  for (const char c : std::string("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,!?'0")) {
    const std::string s(1, c);
    CAPTURE(s);
    ids_t want{1};
    if (raw.index.count(" " + s)) {
      want.push_back(id(" " + s));
    } else {
      want.push_back(id(" "));
      want.push_back(raw.index.count(s) ? id(s) : static_cast<unsigned char>(c) + 3);
    }
    CHECK(tok.encode(s) == want);
  }
  // Byte fallback: code points not in the vocabulary become their bytes + 3; "<0x..>" texts
  // never concatenate into tokens.
  CHECK(tok.encode("\x01") == ids_t{1, id(" "), 4});
  CHECK_FALSE(raw.index.count("🙂"));
  CHECK(tok.encode("🙂", false) == ids_t{id(" "), 0xF0 + 3, 0x9F + 3, 0x99 + 3, 0x82 + 3});
  CHECK(tok.encode("a", true, true).back() == 2);
  // decode: the space after BOS goes, byte tokens are their bytes.
  CHECK(tok.decode_piece(1, id(" a")) == "a");
  CHECK(tok.decode_piece(id("a"), id(" a")) == " a");
  CHECK(tok.decode_piece(5, 0x41 + 3) == "A");
  CHECK(tok.decode(ids_t{1, id(" "), 0xF0 + 3, 0x9F + 3, 0x99 + 3, 0x82 + 3, 2}) == "🙂");
}

TEST_CASE("tokenizer llama2c: encodes exactly as run.c's merge loop") {
  const auto path = tok512_path();
  if (!path) {
    MESSAGE("skipped: tok512.bin is missing");
    return;
  }
  const raw_llama2c_vocab raw = read_raw(read_file(*path));
  const auto tok = llama2c_tokenizer::from_file(*path);
  std::vector<std::string> inputs = tinystories_texts();
  std::mt19937 gen(3);
  for (int i = 0; i < 100; ++i) {
    const auto n = static_cast<std::size_t>(i * 2);
    inputs.push_back(i % 2 ? random_bytes(gen, n) : random_text(gen, n, false));
  }
  for (const auto& s : inputs) {
    INFO("input: ", show_bytes(s));
    check_ids(tok, "bos", tok.encode(s), run_c_encode(raw, s, true, false));
    check_ids(tok, "no bos, eos", tok.encode(s, false, true), run_c_encode(raw, s, false, true));
  }
}

TEST_CASE("tokenizer llama2c: decode(encode(s)) == s") {
  const auto path = tok512_path();
  if (!path) {
    MESSAGE("skipped: tok512.bin is missing");
    return;
  }
  const auto tok = llama2c_tokenizer::from_file(*path);
  std::vector<std::string> inputs = tinystories_texts();
  std::mt19937 gen(5);
  for (int i = 0; i < 100; ++i) inputs.push_back(random_bytes(gen, static_cast<std::size_t>(i)));
  const std::string moby = moby_dick();
  if (!moby.empty()) inputs.push_back(moby.substr(0, 20000));
  for (const auto& s : inputs) {
    INFO("input: ", show_bytes(s.substr(0, 200)));
    CHECK(tok.decode(tok.encode(s)) == s);
    CHECK(tok.decode(tok.encode(s, true, true)) == s);
  }
  // Without BOS the dummy prefix stays, as in run.c.
  CHECK(tok.decode(tok.encode("Once", false)) == " Once");
  CHECK_THROWS_WITH_AS(tok.decode(ids_t{1, 512}),
                       doctest::Contains("token id 512 at position 1 is outside the vocabulary"),
                       fasa::error);
}

TEST_CASE("tokenizer llama2c: truncated and malformed files") {
  const auto path = tok512_path();
  if (!path) {
    MESSAGE("skipped: tok512.bin is missing");
    return;
  }
  const std::string bytes = read_file(*path);
  const auto load = [&](std::size_t n, std::optional<std::int32_t> vocab_size = std::nullopt) {
    const std::vector<char> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    return llama2c_tokenizer::from_bytes(cut, "tok.bin", vocab_size);
  };
  // Layout: max_token_length at 0; token 0 = {score at 4, length 5 at 8, "<unk>" at 12..16}.
  CHECK_THROWS_WITH_AS(
      load(2), doctest::Contains("max_token_length needs 4 bytes at byte offset 0"), fasa::error);
  CHECK_THROWS_WITH_AS(
      load(6), doctest::Contains("truncated: the score of token 0 needs 4 bytes at byte offset 4"),
      fasa::error);
  CHECK_THROWS_WITH_AS(load(10),
                       doctest::Contains("the length of token 0 needs 4 bytes at byte offset 8"),
                       fasa::error);
  CHECK_THROWS_WITH_AS(load(14),
                       doctest::Contains("the text of token 0 needs 5 bytes at byte offset 12"),
                       fasa::error);
  CHECK_THROWS_WITH_AS(load(bytes.size() - 1), doctest::Contains("the text of token 511 needs"),
                       fasa::error);
  // Cut at a token boundary (after <unk>, BOS and EOS, byte 44): fine without vocab_size, an
  // error with it; fewer than three tokens is always an error.
  CHECK(load(44).vocab_size() == 3);
  CHECK_THROWS_WITH_AS(load(44, 512),
                       doctest::Contains("the score of token 3 needs 4 bytes at byte offset 44"),
                       fasa::error);
  CHECK_THROWS_WITH_AS(load(17), doctest::Contains("vocabulary has 1 tokens"), fasa::error);
  CHECK_THROWS_WITH_AS(load(bytes.size(), 511), doctest::Contains("bytes after its 511 tokens"),
                       fasa::error);
  // A negative length.
  std::vector<char> bad(bytes.begin(), bytes.end());
  const std::int32_t minus = -5;
  std::memcpy(bad.data() + 8, &minus, 4);
  CHECK_THROWS_WITH_AS(llama2c_tokenizer::from_bytes(bad, "tok.bin"),
                       doctest::Contains("token 0 has length -5 (at byte offset 8)"), fasa::error);
  // The file path is in the message.
  temp_dir dir("tokenizer_l2c");
  write_file(dir.path / "cut.bin", std::string_view(bytes).substr(0, 1000));
  CHECK_THROWS_WITH_AS(llama2c_tokenizer::from_file(dir.path / "cut.bin"),
                       doctest::Contains("cut.bin: llama2.c tokenizer is truncated"), fasa::error);
  CHECK_THROWS_WITH_AS(llama2c_tokenizer::from_file(dir.path / "missing.bin"),
                       doctest::Contains("cannot open llama2.c tokenizer"), fasa::error);
}
