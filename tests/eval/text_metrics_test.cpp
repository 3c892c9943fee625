// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
//
// Tests of fasa/eval/text_metrics.hpp: LongBench-V1's metrics.
//
// Hand-made cases pin each definition's quirks (ROUGE-L over word sets, the empty word of a
// blank sentence, the classification loop that skips after a removal, round half to even).
// Then every metric is compared, to the last bit, against the Python that LongBench's scorer
// runs (text_metrics_reference.py: the `rouge` and `fuzzywuzzy` packages, Python's str and re)
// on real multi_news reference answers (answer against answer, against cut and perturbed
// copies, against an excerpt of the news) and on edge cases, and the character classes
// (str.isspace, str.lower, re's \w and \d) are compared on every code point. The Python parts
// skip, saying why, where Python or its packages are missing, and fail when
// FASA_REQUIRE_MODEL_TESTS=1.

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "eval/python_reference.hpp"
#include "fasa/eval/text_metrics.hpp"
#include "support.hpp"

namespace {

namespace fs = std::filesystem;
namespace ev = fasa::eval;
namespace pt = fasa::eval::pytext;
using fasa::test::eval::quote;
using nlohmann::json;

std::string utf8(char32_t cp) {
  std::string s;
  fasa::model::unicode::append_utf8(s, cp);
  return s;
}

std::string excerpt(std::string_view s, std::size_t n = 70) {
  std::string out(s.substr(0, n));
  for (auto& c : out)
    if (c == '\n') c = ' ';
  return "\"" + out + (s.size() > n ? "...\"" : "\"");
}

// The bit-exact expected value of the package's F for given counts.
double rouge_f(double overlap, double hyp_words, double ref_words) {
  const double p = overlap / hyp_words, r = overlap / ref_words;
  return 2.0 * ((p * r) / (p + r + 1e-8));
}

// ---- Perturbations of a text, word-wise (so UTF-8 stays whole) -------------------------------

std::vector<std::string_view> words_of(std::string_view s) { return pt::split_whitespace(s); }

std::string first_words(std::string_view s, double fraction) {
  const auto w = words_of(s);
  const auto n = static_cast<std::size_t>(static_cast<double>(w.size()) * fraction);
  return pt::join(std::span(w).first(std::max<std::size_t>(n, 1)), " ");
}

// Drops some words, upper-cases some, duplicates some, deterministic per seed.
std::string perturbed(std::string_view s, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> pick(0, 9);
  std::string out;
  for (const auto w : words_of(s)) {
    const int r = pick(gen);
    if (r == 0) continue;  // dropped
    std::string word(w);
    if (r == 1)
      for (auto& c : word) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
    if (!out.empty()) out += ' ';
    out += word;
    if (r == 2) out += " " + word;  // repeated
  }
  return out;
}

// The sentences (split at ". ") in reverse order: the same words, a different order.
std::string sentences_reversed(std::string_view s) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (std::size_t at = s.find(". "); at != std::string_view::npos; at = s.find(". ", start)) {
    parts.push_back(s.substr(start, at + 1 - start));
    start = at + 2;
  }
  parts.push_back(s.substr(start));
  std::reverse(parts.begin(), parts.end());
  return pt::join(parts, " ");
}

std::string without_dots(std::string_view s) {
  std::string out;
  for (const char c : s)
    if (c != '.') out += c;
  return out;
}

// ---- Hand-made cases -------------------------------------------------------------------------

// Strings that exercise each rule: empty and dot-only texts, blank sentences, articles, ASCII
// and Unicode punctuation, case mapping beyond ASCII (İ lowers to two code points, the Kelvin
// sign to 'k'), every kind of Python whitespace, digits of other scripts, invalid UTF-8.
const std::vector<std::string> edge_cases = {
    "",
    " ",
    ".",
    "...",
    ". .",
    "x. . y",
    "The the THE a an",
    "!!!",
    "?!.,;:",
    "The cat sat on the mat.",
    "the cat sat on the mat",
    "Mr. Smith went to Washington. He said: \"hi\".",
    "İstanbul ÉCOLE école ΣΟΦΊΑ",
    "K \u212a k",
    "non\u00a0breaking\u2003spaces\u3000here",
    "info\x1cseparators\x1f"
    "and\u2028line\u2029breaks",
    "the\u2014end, a\u2013b, an\u2019s",
    "na\u00efve caf\u00e9 the r\u00e9sum\u00e9",
    "the_cat a_b _the_",
    "éthe théa the1 1the",
    "1,000.5 the 3rd \u0661\u0662 \uff11\uff12",
    "  leading and   trailing  ",
    "a a a a a",
    "\xff\xfe broken \xe2\x82 utf8 the",
};

TEST_CASE("metric: normalize_answer and qa_f1_score by hand") {
  CHECK(ev::normalize_answer("The Quick, brown fox!") == "quick brown fox");
  CHECK(ev::normalize_answer("  An   apple\ta day ") == "apple day");
  CHECK(ev::normalize_answer("theatre anthem") == "theatre anthem");  // whole words only
  CHECK(ev::normalize_answer("the_end") == "theend");  // '_' is punctuation, removed first
  CHECK(ev::normalize_answer("İ") == "i\u0307");       // str.lower's special case
  CHECK(ev::normalize_answer("\u212a") == "k");
  CHECK(ev::normalize_answer("éthe") == "éthe");               // é is \w: no boundary before "the"
  CHECK(ev::normalize_answer("the\u2014end") == "\u2014end");  // the em dash is not \w
  CHECK(ev::normalize_answer("!!!") == "");

  CHECK(ev::qa_f1_score("Paris", "paris.") == 1.0);
  CHECK(ev::qa_f1_score("", "paris") == 0.0);
  CHECK(ev::qa_f1_score("", "") == 0.0);
  CHECK(ev::qa_f1_score("!!!", "!!!") == 0.0);  // nothing left after normalisation
  // 2 shared of 3 predicted and 4 reference words.
  const double p = 2.0 / 3, r = 2.0 / 4;
  CHECK(ev::qa_f1_score("the cat sat here", "a cat sat down there") == (2 * p * r) / (p + r));
  // Multisets: "cat cat" shares one "cat" with "cat".
  CHECK(ev::qa_f1_score("cat cat", "cat") == (2 * 0.5 * 1.0) / 1.5);
}

TEST_CASE("rouge: the package's ROUGE-L by hand") {
  // Nothing to score: the package raises, LongBench scores 0.
  CHECK_FALSE(ev::rouge_l_summary_level("", "a b").has_value());
  CHECK_FALSE(ev::rouge_l_summary_level("...", "a b").has_value());
  CHECK_FALSE(ev::rouge_l_summary_level("a b", ".").has_value());
  CHECK(ev::rouge_score("", "a b") == 0.0);
  CHECK(ev::rouge_score("a b", "") == 0.0);

  // Identical: P = R = 1, F = 2 / (2 + 1e-8), not 1.
  const std::string s = "The cat sat on the mat. It was happy.";
  CHECK(ev::rouge_score(s, s) == rouge_f(7, 7, 7));  // {The cat sat on the mat It was happy}
  CHECK(ev::rouge_score(s, s) < 1.0);

  // Case-sensitive, and '.' is the only punctuation removed.
  CHECK(ev::rouge_score("The cat", "the cat") == rouge_f(1, 2, 2));
  CHECK(ev::rouge_score("cat,", "cat") == 0.0);
  CHECK(ev::rouge_score("!!!", "!!!") == rouge_f(1, 1, 1));

  // Words are sets: repeats count once on each side.
  CHECK(ev::rouge_score("a a a", "a") == rouge_f(1, 1, 1));

  // A blank sentence is one empty word, and it matches another blank sentence.
  const auto blank = ev::rouge_l_summary_level(" ", "x. . y");
  REQUIRE(blank.has_value());
  CHECK(blank->hyp_words == 1);
  CHECK(blank->ref_words == 3);
  CHECK(blank->overlap == 1);
  CHECK(blank->f == rouge_f(1, 1, 3));

  // Summary level: the union over sentence pairs, so words matched in different sentences add.
  const auto two = ev::rouge_l_summary_level("w1 w2 w6 w7 w8. w1 w3 w8 w9 w5", "w1 w2 w3 w4 w5");
  REQUIRE(two.has_value());
  CHECK(two->overlap == 4);  // the paper's example: w1 w2 w3 w5
  CHECK(two->hyp_words == 8);
  CHECK(two->ref_words == 5);

  // The traceback's tie-break decides which LCS's words enter the set. Reference "a b" against
  // "b a" has two LCSs of length 1; stepping back in the hypothesis on a tie finds "b", and the
  // second sentence "a" adds "a": {a, b}. Stepping back in the reference would find "a" twice.
  const auto tie = ev::rouge_l_summary_level("b a. a", "a b");
  REQUIRE(tie.has_value());
  CHECK(tie->overlap == 2);
}

TEST_CASE("metric: classification, retrieval, count and code similarity by hand") {
  // The official loop removes "a" and then skips "ab": 1/2, not 1.
  const std::vector<std::string> classes = {"a", "ab", "abc"};
  CHECK(ev::classification_score("abc", "abc", classes) == 0.5);
  CHECK(ev::classification_score("Location", "Location", std::vector<std::string>{"Location"}) ==
        1.0);
  CHECK(ev::classification_score("Human", "Location",
                                 std::vector<std::string>{"Location", "Human"}) == 0.0);

  CHECK(ev::retrieval_score("Paragraph 12", "Paragraph 12") == 1.0);
  CHECK(ev::retrieval_score("Paragraph 3 or Paragraph 12", "Paragraph 12") == 0.5);
  CHECK(ev::retrieval_score("none", "Paragraph 12") == 0.0);
  CHECK(ev::retrieval_score("12", "see Paragraph x, Paragraph 12") == 1.0);
  CHECK_THROWS_AS(ev::retrieval_score("12", "12"), fasa::error);

  CHECK(ev::count_score("There are 5 unique paragraphs, not 05.", "5") == 0.5);
  CHECK(ev::count_score("five", "5") == 0.0);
  CHECK(ev::count_score("\u0665", "5") == 0.0);  // ARABIC-INDIC FIVE is a \d, but not "5"

  CHECK(ev::fuzz_ratio("abc", "abc") == 100);
  CHECK(ev::fuzz_ratio("", "") == 100);  // equal strings first, then the empty check
  CHECK(ev::fuzz_ratio("", "abc") == 0);
  // 1 and 3 matches of 16 code points: 12.5 and 37.5, which Python's round takes to even.
  CHECK(ev::fuzz_ratio("abcdefgh", "aBCDEFGH") == 12);
  CHECK(ev::fuzz_ratio("abcdefgh", "abcDEFGH") == 38);
  CHECK(ev::code_sim_score("\n\n# comment\n```\nx = 1\n", "x = 1") == 1.0);
  CHECK(ev::code_sim_score("// all\n# comments", "x") == 0.0);
}

// ---- Against Python ----------------------------------------------------------------------------

struct item {
  std::string metric, prediction, answer;
  std::vector<std::string> all_classes;
};

double cpp_score(const item& it) {
  if (it.metric == "qa_f1") return ev::qa_f1_score(it.prediction, it.answer);
  if (it.metric == "rouge") return ev::rouge_score(it.prediction, it.answer);
  if (it.metric == "count") return ev::count_score(it.prediction, it.answer);
  if (it.metric == "retrieval") return ev::retrieval_score(it.prediction, it.answer);
  if (it.metric == "classification")
    return ev::classification_score(it.prediction, it.answer, it.all_classes);
  if (it.metric == "code_sim") return ev::code_sim_score(it.prediction, it.answer);
  FAIL("unknown metric ", it.metric);
  return 0;
}

// Runs the reference on `items`; an empty json when it cannot (the caller has skipped).
json python_scores(const std::vector<item>& items) {
  namespace te = fasa::test::eval;
  te::temp_dir dir("text_metrics");
  json in = json::array();
  for (const auto& it : items) {
    json j = {{"metric", it.metric}, {"prediction", it.prediction}, {"answer", it.answer}};
    if (!it.all_classes.empty()) j["all_classes"] = it.all_classes;
    in.push_back(j);
  }
  // The edge cases hold invalid UTF-8, which Python's str cannot; those are compared by hand.
  te::write_file(dir.path / "in.json", in.dump(-1, ' ', false, json::error_handler_t::replace));
  const std::string err = te::run_python_script(
      "text_metrics_reference.py",
      quote((dir.path / "in.json").string()) + " " + quote((dir.path / "out.json").string()),
      dir.path / "log.txt");
  REQUIRE_MESSAGE(err.empty(), err);
  return json::parse(te::read_file(dir.path / "out.json"));
}

// Every score equal to Python's, bit for bit; the first mismatches printed.
void check_against_python(const std::vector<item>& items) {
  const json want = python_scores(items);
  REQUIRE(want.size() == items.size());
  std::size_t bad = 0;
  std::ostringstream first;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const item& it = items[i];
    if (it.metric == "normalize") {
      const std::string got = ev::normalize_answer(it.prediction);
      if (got != want[i].get<std::string>() && bad++ < 5)
        first << "  normalize " << excerpt(it.prediction) << ": got " << excerpt(got) << ", Python "
              << excerpt(want[i].get<std::string>()) << '\n';
      continue;
    }
    const double got = cpp_score(it);
    const double ref = want[i].get<double>();
    if (got != ref && bad++ < 5) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "got %.17g, Python %.17g", got, ref);
      first << "  " << it.metric << " of " << excerpt(it.prediction) << " against "
            << excerpt(it.answer) << ": " << buf << '\n';
    }
  }
  INFO(bad, " of ", items.size(), " scores differ from Python's:\n", first.str());
  CHECK(bad == 0);
}

bool is_valid_utf8(std::string_view s) { return fasa::model::unicode::is_valid_utf8(s); }

std::string python_missing() {
  return fasa::test::eval::python_script_missing("text_metrics_reference.py",
                                                 "the packages rouge and fuzzywuzzy");
}

TEST_CASE("rouge and qa_f1: bit-exact against Python on real multi_news answers") {
  const fs::path data = fasa::test::eval::multi_news_path();
  FASA_SKIP_UNLESS(!data.empty(), "../shared/data/longbench/multi_news.jsonl is missing");
  const std::string missing = python_missing();
  FASA_SKIP_UNLESS(missing.empty(), missing);

  std::vector<std::string> answers, contexts;
  {
    std::ifstream in(data);
    std::string line;
    while (std::getline(in, line)) {
      const json j = json::parse(line);
      answers.push_back(j.at("answers").at(0).get<std::string>());
      contexts.push_back(j.at("context").get<std::string>());
    }
  }
  REQUIRE(answers.size() == 200);

  // The `rouge` package's quadratic pure-Python LCS sets the budget (about 10 s): every 8th
  // answer (25), each scored against the next answer, its first 40%, a perturbed copy, its
  // sentences reversed, itself without dots (one long sentence) and 250 words of its own news.
  std::vector<item> items;
  for (std::size_t i = 0; i < answers.size(); i += answers.size() / 24) {
    const std::string& a = answers[i];
    const std::string& other = answers[(i + 1) % answers.size()];
    const auto ctx = words_of(contexts[i]);
    const std::size_t from = ctx.size() / 3;
    const std::string news =
        pt::join(std::span(ctx).subspan(from, std::min<std::size_t>(250, ctx.size() - from)), " ");
    for (const std::string& pred :
         {other, first_words(a, 0.4), perturbed(a, static_cast<std::uint32_t>(i)),
          sentences_reversed(a), without_dots(a), news})
      for (const char* m : {"rouge", "qa_f1"}) items.push_back({m, pred, a, {}});
    items.push_back({"normalize", a, "", {}});
  }
  check_against_python(items);
}

TEST_CASE("metric: every metric bit-exact against Python on edge cases and random variants") {
  const std::string missing = python_missing();
  FASA_SKIP_UNLESS(missing.empty(), missing);

  std::vector<item> items;
  std::vector<std::string> valid;
  for (const auto& e : edge_cases)
    if (is_valid_utf8(e)) valid.push_back(e);
  for (const auto& p : valid) {
    items.push_back({"normalize", p, "", {}});
    for (const auto& a : valid)
      for (const char* m : {"rouge", "qa_f1", "code_sim", "count"}) items.push_back({m, p, a, {}});
  }

  // count and retrieval: numbers in several scripts and positions.
  const std::vector<std::string> number_texts = {"12",
                                                 "There are 12 paragraphs.",
                                                 "1 2 12",
                                                 "012",
                                                 "\u0661\u0662",
                                                 "\uff11\uff12",
                                                 "12 and 12",
                                                 "Paragraph 12",
                                                 "Paragraph 3, Paragraph 12 and Paragraph 21",
                                                 "no number",
                                                 "3.12",
                                                 "Paragraph12"};
  for (const auto& p : number_texts) {
    items.push_back({"count", p, "12", {}});
    items.push_back({"retrieval", p, "Paragraph 12", {}});
  }

  // classification: TREC-like names that contain one another, predictions built from them.
  const std::vector<std::string> classes = {
      "Description", "Definition of something", "Definition",  "Entity", "Human", "Human being",
      "Location",    "Other location",          "Abbreviation"};
  std::mt19937 gen(7);
  std::uniform_int_distribution<std::size_t> pick(0, classes.size() - 1);
  for (int k = 0; k < 200; ++k) {
    std::string pred;
    for (int n = 0; n < 1 + k % 3; ++n) pred += classes[pick(gen)] + (n % 2 ? "; " : " or ");
    items.push_back({"classification", pred, classes[pick(gen)], classes});
  }

  // code_sim: lines of prose and code cut and mutated, short and past difflib's 200-element
  // autojunk threshold (popular characters are then matched only by extension).
  const std::string prose =
      "The Occupy LA encampment got a stay of execution this morning, though a few arrests have "
      "been reported beyond the boundaries of City Hall Park. for (int i = 0; i < n; ++i) { "
      "total += values[i] * weights[i]; } return total / static_cast<double>(n); self.assertEqual"
      "(result, expected) if x is not None else default_value";
  std::uniform_int_distribution<std::size_t> len(1, prose.size());
  std::uniform_int_distribution<int> op(0, 19);
  for (int k = 0; k < 150; ++k) {
    const std::size_t start = len(gen) % prose.size();
    std::string a = prose.substr(start, len(gen)), b;
    for (const char c : a) {
      const int o = op(gen);
      if (o == 0) continue;
      if (o == 1) b += 'x';
      b += c;
    }
    const std::string prefixes[] = {"", "\n", "# note\n", "```python\n", "// c\n", "a // b\n"};
    items.push_back({"code_sim", prefixes[k % 6] + b + (k % 4 ? "\nnext" : ""), a, {}});
  }
  check_against_python(items);

  // Invalid UTF-8 cannot reach Python: what U+FFFD would do there, bytes do here.
  CHECK(ev::normalize_answer("\xff The \xe2\x82") == "\xff \xe2\x82");
  CHECK(ev::rouge_score("\xff a", "\xff a") == rouge_f(2, 2, 2));
  CHECK(ev::qa_f1_score("\xfe", "\xff") == 0.0);
}

TEST_CASE("metric: Python's character classes and case mapping on every code point") {
  const std::string missing = python_missing();
  FASA_SKIP_UNLESS(missing.empty(), missing);
  namespace te = fasa::test::eval;
  te::temp_dir dir("text_metrics_unicode");
  const std::string err = te::run_python_script(
      "text_metrics_reference.py", "--unicode " + quote((dir.path / "classes.json").string()),
      dir.path / "log.txt");
  REQUIRE_MESSAGE(err.empty(), err);
  const json j = json::parse(te::read_file(dir.path / "classes.json"));
  const std::string version = j.at("unicode_version").get<std::string>();
  if (version != fasa::model::unicode::tables_unicode_version) {
    MESSAGE("skipped: Python's Unicode ", version, " is not the tables' ",
            fasa::model::unicode::tables_unicode_version, "; classes legitimately differ");
    return;
  }
  std::set<char32_t> space;
  for (const auto& cp : j.at("space")) space.insert(cp.get<char32_t>());
  std::vector<char> word(0x110000, 0), decimal(0x110000, 0);
  for (const auto& r : j.at("word"))
    for (auto cp = r[0].get<char32_t>(); cp <= r[1].get<char32_t>(); ++cp) word[cp] = 1;
  for (const auto& r : j.at("decimal"))
    for (auto cp = r[0].get<char32_t>(); cp <= r[1].get<char32_t>(); ++cp) decimal[cp] = 1;
  const json& lower = j.at("lower");
  std::size_t bad = 0;
  std::ostringstream first;
  for (char32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    std::string want_lower;
    if (const auto it = lower.find(std::to_string(cp)); it != lower.end())
      for (const auto& c : *it) fasa::model::unicode::append_utf8(want_lower, c.get<char32_t>());
    else
      want_lower = utf8(cp);
    const bool ok = pt::is_space(cp) == (space.count(cp) > 0) &&
                    pt::is_word(cp) == (word[cp] != 0) &&
                    pt::is_decimal(cp) == (decimal[cp] != 0) && pt::lower(utf8(cp)) == want_lower;
    if (!ok && bad++ < 5)
      first << "  U+" << std::hex << static_cast<std::uint32_t>(cp) << std::dec << '\n';
  }
  INFO(bad, " code points classed or lowered unlike Python:\n", first.str());
  CHECK(bad == 0);
}

}  // namespace
