// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
//
// Tests of fasa/eval/longbench.hpp: the task table, reading LongBench jsonl (and every way a
// line can be wrong), prompt formatting, pred.py's middle truncation, the chat template (against
// the SmolLM2 GGUF's own Jinja template rendered by jinja2, chat_template_reference.py), and the
// per-sample and per-task scores. The model and Python parts skip, saying why, where they are
// missing, and fail when FASA_REQUIRE_MODEL_TESTS=1.

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "eval/python_reference.hpp"
#include "fasa/eval/longbench.hpp"
#include "fasa/model/gguf.hpp"
#include "fasa/model/tokenizer_bpe.hpp"
#include "support.hpp"

namespace {

namespace fs = std::filesystem;
namespace ev = fasa::eval;
using fasa::test::eval::quote;
using nlohmann::json;

// The message of the fasa::error that f throws, or "" when it throws none.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const fasa::error& e) {
    return e.what();
  }
  return {};
}

std::vector<ev::longbench_sample> parse(const std::string& text) {
  std::istringstream is(text);
  return ev::read_longbench_jsonl(is, "test.jsonl");
}

// One character, one token: makes the truncation arithmetic visible.
struct char_tokenizer {
  std::vector<std::int32_t> encode(std::string_view s, bool) const { return {s.begin(), s.end()}; }
  std::string decode(std::span<const std::int32_t> ids, bool) const {
    std::string out;
    for (const auto id : ids) out += static_cast<char>(id);
    return out;
  }
};
static_assert(ev::prompt_tokenizer<char_tokenizer>);
static_assert(ev::prompt_tokenizer<fasa::model::bpe_tokenizer>);

std::optional<fasa::model::bpe_tokenizer> smollm_tokenizer() {
  const fs::path p = fasa::test::default_model_path();
  if (!fs::is_regular_file(p)) return std::nullopt;
  const fasa::model::gguf_file f(p);
  return fasa::model::bpe_tokenizer::from_gguf(f);
}

const std::string model_missing =
    fasa::test::default_model_path() + " is missing; run scripts/fetch-model.sh or set FASA_MODEL";

TEST_CASE("longbench: the task table follows the official configs") {
  CHECK(std::size(ev::longbench_tasks) == 16);
  const auto& mn = ev::find_longbench_task("multi_news");
  CHECK(mn.max_new_tokens == 512);
  CHECK(mn.metric == ev::longbench_metric::rouge);
  CHECK(mn.chat_template);
  CHECK(mn.prompt ==
        "You are given several news passages. Write a one-page summary of all news. \n\nNews:\n"
        "{context}\n\nNow, write a one-page summary of all the news.\n\nSummary:");
  CHECK(ev::find_longbench_task("qasper").max_new_tokens == 128);
  CHECK(ev::find_longbench_task("hotpotqa").metric == ev::longbench_metric::qa_f1);
  CHECK(ev::find_longbench_task("lcc").metric == ev::longbench_metric::code_sim);
  CHECK(ev::find_longbench_task("samsum").stop_at_newline);
  // FASA.md: the chat template everywhere except trec, triviaqa, samsum, lsht, lcc, repobench-p;
  // eval.py: the first line only for trec, triviaqa, samsum, lsht.
  for (const auto& t : ev::longbench_tasks) {
    const bool plain = t.name == "trec" || t.name == "triviaqa" || t.name == "samsum" ||
                       t.name == "lcc" || t.name == "repobench-p";
    CHECK_MESSAGE(t.chat_template == !plain, t.name);
    CHECK_MESSAGE(
        t.first_line_only == (t.name == "trec" || t.name == "triviaqa" || t.name == "samsum"),
        t.name);
    CHECK_MESSAGE(t.prompt.find("{context}") != std::string_view::npos, t.name);
  }
  const std::string e = error_of([] { ev::find_longbench_task("multinews"); });
  CHECK(e.find("unknown LongBench task 'multinews'") != std::string::npos);
  CHECK(e.find("multi_news") != std::string::npos);  // the known names are listed
}

TEST_CASE("longbench: reading jsonl, and every malformed line named by line and key") {
  const auto ok = parse(
      R"({"input": "q?", "context": "c", "answers": ["a1", "a2"], "length": 7, "dataset": "x",)"
      R"( "language": "en", "all_classes": null, "_id": "id0", "extra": 1})"
      "\n\n   \n"
      R"({"input": "", "context": "d", "answers": ["b"], "all_classes": ["k1", "k2"]})"
      "\r\n");
  REQUIRE(ok.size() == 2);
  CHECK(ok[0].input == "q?");
  CHECK(ok[0].answers == std::vector<std::string>{"a1", "a2"});
  CHECK(ok[0].length == 7);
  CHECK(ok[0].dataset == "x");
  CHECK(ok[0].language == "en");
  CHECK(ok[0].id == "id0");
  CHECK(ok[0].all_classes.empty());
  CHECK(ok[0].line == 1);
  CHECK(ok[1].line == 4);  // blank lines are skipped but counted
  CHECK(ok[1].all_classes == std::vector<std::string>{"k1", "k2"});

  const auto fails_with = [](const std::string& text, const std::string& needle) {
    const std::string e = error_of([&] { parse(text); });
    INFO("error: ", e);
    CHECK(e.find(needle) != std::string::npos);
  };
  const std::string good = R"({"input": "", "context": "c", "answers": ["a"]})";
  fails_with(good + "\n{\"input\": \"\", ", "test.jsonl:2: not valid JSON");
  fails_with(good + "\n" + good + "\n[1, 2]",
             "test.jsonl:3: expected a JSON object, found an array");
  fails_with(R"({"context": "c", "answers": ["a"]})", "test.jsonl:1: key \"input\" is missing");
  fails_with(R"({"input": "", "answers": ["a"]})", "test.jsonl:1: key \"context\" is missing");
  fails_with(R"({"input": "", "context": "c"})", "test.jsonl:1: key \"answers\" is missing");
  fails_with(R"({"input": 3, "context": "c", "answers": ["a"]})",
             "key \"input\" must be a string, found the integer 3");
  fails_with(R"({"input": "", "context": "c", "answers": "a"})",
             "key \"answers\" must be an array of strings, found the string \"a\"");
  fails_with(R"({"input": "", "context": "c", "answers": ["a", 2]})",
             "key \"answers\"[1] must be a string, found the integer 2");
  fails_with(R"({"input": "", "context": "c", "answers": []})",
             "key \"answers\" is an empty array");
  fails_with(R"({"input": "", "context": "c", "answers": ["a"], "length": "7"})",
             "key \"length\" must be an integer");
  fails_with(R"({"input": "", "context": "c", "answers": ["a"], "all_classes": 1})",
             "key \"all_classes\" must be an array of strings");
  fails_with("\n\n", "test.jsonl: no samples");

  const std::string missing =
      error_of([] { ev::read_longbench_jsonl(fs::path("/nonexistent/lb.jsonl")); });
  CHECK(missing.find("cannot open LongBench file '/nonexistent/lb.jsonl'") != std::string::npos);
}

TEST_CASE("longbench: prompt formatting is one pass of {context} and {input}") {
  CHECK(ev::format_longbench_prompt("A{context}B{input}C", "x", "y") == "AxByC");
  // Text inside a field is not substituted again (str.format).
  CHECK(ev::format_longbench_prompt("{context}|{input}", "{input}", "q") == "{input}|q");
  CHECK(ev::format_longbench_prompt("{{literal}} {input}", "", "q") == "{literal} q");
  CHECK(error_of([] {
          ev::format_longbench_prompt("{question}", "", "");
        }).find("unknown field '{question}'") != std::string::npos);
  CHECK_THROWS_AS(ev::format_longbench_prompt("{context", "", ""), fasa::error);
  CHECK_THROWS_AS(ev::format_longbench_prompt("a } b", "", ""), fasa::error);
}

TEST_CASE("longbench: middle truncation keeps the first and last halves") {
  const std::vector<int> ids = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  CHECK(ev::middle_truncate<int>(ids, 6) == std::vector<int>{0, 1, 2, 7, 8, 9});
  CHECK(ev::middle_truncate<int>(ids, 7) == std::vector<int>{0, 1, 2, 7, 8, 9});  // int(7/2) = 3
  CHECK(ev::middle_truncate<int>(ids, 10) == ids);
  CHECK(ev::middle_truncate<int>(ids, 2) == std::vector<int>{0, 9});
  CHECK_THROWS_AS(ev::middle_truncate<int>(ids, 1), fasa::error);

  const char_tokenizer tok;
  CHECK(ev::middle_truncate_prompt(tok, "abcdefghij", 4) == "abij");
  CHECK(ev::middle_truncate_prompt(tok, "abcdefghij", 10) == "abcdefghij");
}

TEST_CASE("longbench: scores per sample and per task") {
  const auto& trivia = ev::find_longbench_task("triviaqa");
  const std::vector<std::string> answers = {"Paris", "City of Paris"};
  // triviaqa scores the first line after leading newlines only; the best answer counts.
  CHECK(ev::longbench_score(trivia, "\n\nParis\nLondon London London", answers) == 1.0);
  CHECK(ev::longbench_score(trivia, "London\nParis", answers) == 0.0);
  const auto& hotpot = ev::find_longbench_task("hotpotqa");
  CHECK(ev::longbench_score(hotpot, "London\nParis", answers) ==
        ev::qa_f1_score("London\nParis", "Paris"));
  const auto& trec = ev::find_longbench_task("trec");
  CHECK_THROWS_AS(ev::longbench_score(trec, "Location", answers), fasa::error);
  const std::vector<std::string> classes = {"Location", "Human"};
  CHECK(ev::longbench_score(trec, "Location", std::vector<std::string>{"Location"}, classes) ==
        1.0);
  const auto& mn = ev::find_longbench_task("multi_news");
  CHECK(ev::longbench_score(mn, "a b. c", std::vector<std::string>{"a b c"}) ==
        ev::rouge_score("a b. c", "a b c"));
  const std::vector<double> per = {1.0, 0.5, 0.0, 0.25};
  CHECK(ev::longbench_task_score(per) == 100 * 1.75 / 4);
  CHECK_THROWS_AS(ev::longbench_task_score(std::vector<double>{}), fasa::error);
}

TEST_CASE("longbench: the shared multi_news file and its prompts") {
  const fs::path data = fasa::test::eval::multi_news_path();
  FASA_SKIP_UNLESS(!data.empty(), "../shared/data/longbench/multi_news.jsonl is missing");
  const auto samples = ev::read_longbench_jsonl(data);
  REQUIRE(samples.size() == 200);
  const auto& task = ev::find_longbench_task("multi_news");
  for (const auto& s : samples) {
    CHECK(s.dataset == "multi_news");
    CHECK(s.input.empty());
    CHECK(s.answers.size() == 1);
  }
  const auto& s = samples[0];
  // NEWLINE_CHAR stays as it is, as in the official pred.py.
  CHECK(s.context.find("NEWLINE_CHAR") != std::string::npos);
  const std::string prompt = ev::format_longbench_prompt(task, s);
  CHECK(prompt.find(s.context) != std::string::npos);
  CHECK(prompt.starts_with("You are given several news passages."));
  CHECK(prompt.ends_with("\n\nSummary:"));
  CHECK(prompt.size() ==
        task.prompt.size() - std::string_view("{context}").size() + s.context.size());

  // Without a tokenizer-dependent step, longbench_prompt is the formatted prompt.
  const char_tokenizer tok;
  CHECK(ev::longbench_prompt(tok, task, s, {}) == prompt);
  ev::longbench_prompt_options o;
  o.chat = ev::chatml_template{std::string(ev::smollm2_default_system)};
  const std::string chat = ev::longbench_prompt(tok, task, s, o);
  CHECK(chat.starts_with("<|im_start|>system\n"));
  CHECK(chat.find("<|im_start|>user\n" + prompt + "<|im_end|>\n") != std::string::npos);
  CHECK(chat.ends_with("<|im_start|>assistant\n"));
  // Few-shot tasks stay plain.
  CHECK(ev::longbench_prompt(tok, ev::find_longbench_task("samsum"), s, o) ==
        ev::format_longbench_prompt(ev::find_longbench_task("samsum"), s));
}

TEST_CASE("longbench: middle truncation of a multi_news prompt with the SmolLM2 tokenizer") {
  const fs::path data = fasa::test::eval::multi_news_path();
  FASA_SKIP_UNLESS(!data.empty(), "../shared/data/longbench/multi_news.jsonl is missing");
  const auto tok = smollm_tokenizer();
  FASA_SKIP_UNLESS(tok.has_value(), model_missing);
  const auto samples = ev::read_longbench_jsonl(data);
  const auto& task = ev::find_longbench_task("multi_news");
  // The longest sample: its prompt has several thousand tokens.
  const auto& sample = *std::max_element(
      samples.begin(), samples.end(),
      [](const auto& a, const auto& b) { return a.context.size() < b.context.size(); });
  const std::string prompt = ev::format_longbench_prompt(task, sample);
  const auto ids = tok->encode(prompt);
  REQUIRE(ids.size() > 2000);

  const std::string cut = ev::middle_truncate_prompt(*tok, prompt, 1000);
  const std::span<const std::int32_t> all(ids);
  CHECK(cut == tok->decode(all.first(500)) + tok->decode(all.last(500)));
  CHECK(prompt.starts_with(tok->decode(all.first(500))));
  CHECK(prompt.ends_with(tok->decode(all.last(500))));
  CHECK(cut.ends_with("Now, write a one-page summary of all the news.\n\nSummary:"));
  // Re-encoding the joined halves gives about max_length tokens (the seam may merge).
  const auto again = tok->encode(cut);
  CHECK(again.size() <= 1000);
  CHECK(again.size() >= 990);
  CHECK(ev::middle_truncate_prompt(*tok, prompt, ids.size()) == prompt);

  ev::longbench_prompt_options o;
  o.max_length = 1000;
  o.chat = ev::chatml_template{std::string(ev::smollm2_default_system)};
  const auto prompt_ids = ev::longbench_prompt_ids(*tok, task, sample, o);
  REQUIRE(tok->im_start_id().has_value());
  CHECK(prompt_ids.front() == *tok->im_start_id());  // the markers are special tokens
  CHECK(tok->decode(prompt_ids) == ev::chat_user_prompt(*o.chat, cut));
}

TEST_CASE("longbench: SmolLM2's chat template, against the GGUF's Jinja rendered by jinja2") {
  // Without Python: the ChatML layout and the default system turn.
  const ev::chatml_template smol{std::string(ev::smollm2_default_system)};
  CHECK(ev::chat_user_prompt(smol, "Hi") ==
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  CHECK(ev::chat_user_prompt(ev::chatml_template{}, "Hi") ==
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  const std::vector<ev::chat_message> with_system = {{"system", "S"}, {"user", "U"}};
  CHECK(ev::apply_chat_template(smol, with_system, false) ==
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n");
  CHECK(ev::apply_chat_template(smol, {}, true) == "<|im_start|>assistant\n");
  CHECK(error_of([] {
          ev::chat_template_from_jinja("{{ bos_token }}{{ messages }}");
        }).find("chat template not recognised") != std::string::npos);

  const fs::path model = fasa::test::default_model_path();
  FASA_SKIP_UNLESS(fs::is_regular_file(model), model_missing);
  const fasa::model::gguf_file f(model);
  REQUIRE(f.has("tokenizer.chat_template"));
  const std::string jinja = f.get_string("tokenizer.chat_template");
  const ev::chatml_template t = ev::chat_template_from_jinja(jinja);
  REQUIRE(t.default_system.has_value());
  CHECK(*t.default_system == ev::smollm2_default_system);

  namespace te = fasa::test::eval;
  const std::string missing =
      te::python_script_missing("chat_template_reference.py", "the packages gguf and jinja2");
  FASA_SKIP_UNLESS(missing.empty(), missing);
  const std::vector<std::vector<ev::chat_message>> conversations = {
      {{"user", "What is 2 + 2?"}},
      {{"system", "Be brief."}, {"user", "Hi"}},
      {{"user", "a\nb <b>&amp;</b> {{ x }} 'q' \"d\""}, {"assistant", "ok"}, {"user", "more"}},
      {{"user", ""}},
      {},
  };
  json in = json::array();
  for (const auto& conv : conversations)
    for (const bool gen : {true, false}) {
      json msgs = json::array();
      for (const auto& m : conv) msgs.push_back({{"role", m.role}, {"content", m.content}});
      in.push_back({{"messages", msgs}, {"add_generation_prompt", gen}});
    }
  te::temp_dir dir("chat_template");
  te::write_file(dir.path / "in.json", in.dump());
  const std::string err =
      te::run_python_script("chat_template_reference.py",
                            quote(model.string()) + " " + quote((dir.path / "in.json").string()) +
                                " " + quote((dir.path / "out.json").string()),
                            dir.path / "log.txt");
  REQUIRE_MESSAGE(err.empty(), err);
  const json out = json::parse(te::read_file(dir.path / "out.json"));
  CHECK(out.at("template").get<std::string>() == jinja);  // the same text both readers see
  std::size_t k = 0;
  for (const auto& conv : conversations)
    for (const bool gen : {true, false}) {
      INFO("conversation ", k / 2, ", add_generation_prompt ", gen);
      CHECK(ev::apply_chat_template(t, conv, gen) == out.at("rendered").at(k).get<std::string>());
      ++k;
    }
}

}  // namespace
