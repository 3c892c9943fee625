// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// LongBench-V1 (Bai et al. 2023; THUDM/LongBench, LongBench/{pred.py, eval.py, config/}) as the
// FASA paper runs it (FASA.md, "LongBench-V1 protocol"): the data files, the official per-task
// prompts, generation lengths and metrics, pred.py's middle truncation, and the chat template.
// docs/longbench.md explains each choice; text_metrics.hpp holds the metrics themselves.
//
//   1. read_longbench_jsonl: one sample a line ({"input", "context", "answers", ...}).
//   2. format_longbench_prompt: dataset2prompt.json's template with {context} and {input}.
//   3. middle_truncate_prompt: where the tokenised prompt is longer than max_length tokens, keep
//      the first max_length/2 and the last max_length/2 tokens, decoded back to text (pred.py).
//   4. the chat template, except for trec, triviaqa, samsum, lsht, lcc and repobench-p.
//   5. greedy generation of at most max_new_tokens (dataset2maxlen.json), by the caller.
//   6. longbench_score: the task's metric, best over the reference answers; the task's score is
//      100 x the mean (longbench_task_score).
//
// The model-agnostic part ends at step 4's chat template, which is a parameter: chatml_template
// covers the ChatML family, and chat_template_from_jinja recognises SmolLM2-Instruct's template
// (tokenizer.chat_template in its GGUF) and its default system prompt.
//
// The text is used exactly as the official code uses it: multi_news encodes its newlines as the
// literal word NEWLINE_CHAR, and neither pred.py nor eval.py replaces it, so neither does this.
//
// Not part of the umbrella header fasa/fasa.hpp, because of the nlohmann dependency.

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <istream>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fasa/core/error.hpp"
#include "fasa/eval/text_metrics.hpp"

namespace fasa::eval {

// ---- Tasks -------------------------------------------------------------------------------------

// eval.py's dataset2metric, English tasks.
enum class longbench_metric { qa_f1, rouge, classification, retrieval, count, code_sim };

inline std::string_view to_string(longbench_metric m) {
  switch (m) {
    case longbench_metric::qa_f1:
      return "qa_f1";
    case longbench_metric::rouge:
      return "rouge";
    case longbench_metric::classification:
      return "classification";
    case longbench_metric::retrieval:
      return "retrieval";
    case longbench_metric::count:
      return "count";
    case longbench_metric::code_sim:
      return "code_sim";
  }
  return "?";
}

struct longbench_task {
  std::string_view name;    // the dataset name, as in the file names and the configs
  std::string_view prompt;  // dataset2prompt.json: {context} and {input} are filled in
  int max_new_tokens;       // dataset2maxlen.json
  longbench_metric metric;  // eval.py dataset2metric
  // pred.py wraps the prompt in the chat template, except for trec, triviaqa, samsum, lsht, lcc
  // and repobench-p ("chat models are better off without build prompts on these tasks"): their
  // prompts are few-shot examples or code to continue.
  bool chat_template;
  // eval.py scores only the first line of the prediction (after leading newlines) for trec,
  // triviaqa, samsum and lsht.
  bool first_line_only;
  // pred.py generates samsum with "\n" as a second end-of-sequence token and at least one new
  // token (min_length = prompt + 1), since models otherwise go on with more dialogues.
  bool stop_at_newline;
};

// The sixteen English tasks of LongBench-V1, with the official prompts verbatim (typos and
// trailing spaces included: "asconcisely" in narrativeqa, "all news. \n" in multi_news). The
// Chinese tasks (multifieldqa_zh, dureader, vcsum, lsht, passage_retrieval_zh) need jieba's word
// segmentation for their metrics and are left out.
// clang-format off
inline constexpr longbench_task longbench_tasks[] = {
    {"narrativeqa",
     "You are given a story, which can be either a novel or a movie script, and a "
     "question. Answer the question asconcisely as you can, using a single phrase "
     "if possible. Do not provide any explanation.\n"
     "\n"
     "Story: {context}\n"
     "\n"
     "Now, answer the question based on the story asconcisely as you can, using a "
     "single phrase if possible. Do not provide any explanation.\n"
     "\n"
     "Question: {input}\n"
     "\n"
     "Answer:",
     128, longbench_metric::qa_f1, true, false, false},
    {"qasper",
     "You are given a scientific article and a question. Answer the question as "
     "concisely as you can, using a single phrase or sentence if possible. If the "
     "question cannot be answered based on the information in the article, write "
     "\"unanswerable\". If the question is a yes/no question, answer \"yes\", \"no\", "
     "or \"unanswerable\". Do not provide any explanation.\n"
     "\n"
     "Article: {context}\n"
     "\n"
     " Answer the question based on the above article as concisely as you can, "
     "using a single phrase or sentence if possible. If the question cannot be "
     "answered based on the information in the article, write \"unanswerable\". If "
     "the question is a yes/no question, answer \"yes\", \"no\", or \"unanswerable\". "
     "Do not provide any explanation.\n"
     "\n"
     "Question: {input}\n"
     "\n"
     "Answer:",
     128, longbench_metric::qa_f1, true, false, false},
    {"multifieldqa_en",
     "Read the following text and answer briefly.\n"
     "\n"
     "{context}\n"
     "\n"
     "Now, answer the following question based on the above text, only give me "
     "the answer and do not output any other words.\n"
     "\n"
     "Question: {input}\n"
     "Answer:",
     64, longbench_metric::qa_f1, true, false, false},
    {"hotpotqa",
     "Answer the question based on the given passages. Only give me the answer "
     "and do not output any other words.\n"
     "\n"
     "The following are given passages.\n"
     "{context}\n"
     "\n"
     "Answer the question based on the given passages. Only give me the answer "
     "and do not output any other words.\n"
     "\n"
     "Question: {input}\n"
     "Answer:",
     32, longbench_metric::qa_f1, true, false, false},
    {"2wikimqa",
     "Answer the question based on the given passages. Only give me the answer "
     "and do not output any other words.\n"
     "\n"
     "The following are given passages.\n"
     "{context}\n"
     "\n"
     "Answer the question based on the given passages. Only give me the answer "
     "and do not output any other words.\n"
     "\n"
     "Question: {input}\n"
     "Answer:",
     32, longbench_metric::qa_f1, true, false, false},
    {"musique",
     "Answer the question based on the given passages. Only give me the answer "
     "and do not output any other words.\n"
     "\n"
     "The following are given passages.\n"
     "{context}\n"
     "\n"
     "Answer the question based on the given passages. Only give me the answer "
     "and do not output any other words.\n"
     "\n"
     "Question: {input}\n"
     "Answer:",
     32, longbench_metric::qa_f1, true, false, false},
    {"gov_report",
     "You are given a report by a government agency. Write a one-page summary of "
     "the report.\n"
     "\n"
     "Report:\n"
     "{context}\n"
     "\n"
     "Now, write a one-page summary of the report.\n"
     "\n"
     "Summary:",
     512, longbench_metric::rouge, true, false, false},
    {"qmsum",
     "You are given a meeting transcript and a query containing a question or "
     "instruction. Answer the query in one or more sentences.\n"
     "\n"
     "Transcript:\n"
     "{context}\n"
     "\n"
     "Now, answer the query based on the above meeting transcript in one or more "
     "sentences.\n"
     "\n"
     "Query: {input}\n"
     "Answer:",
     512, longbench_metric::rouge, true, false, false},
    {"multi_news",
     "You are given several news passages. Write a one-page summary of all news. \n"
     "\n"
     "News:\n"
     "{context}\n"
     "\n"
     "Now, write a one-page summary of all the news.\n"
     "\n"
     "Summary:",
     512, longbench_metric::rouge, true, false, false},
    {"trec",
     "Please determine the type of the question below. Here are some examples of "
     "questions.\n"
     "\n"
     "{context}\n"
     "{input}",
     64, longbench_metric::classification, false, true, false},
    {"triviaqa",
     "Answer the question based on the given passage. Only give me the answer and "
     "do not output any other words. The following are some examples.\n"
     "\n"
     "{context}\n"
     "\n"
     "{input}",
     32, longbench_metric::qa_f1, false, true, false},
    {"samsum",
     "Summarize the dialogue into a few short sentences. The following are some examples.\n"
     "\n"
     "{context}\n"
     "\n"
     "{input}",
     128, longbench_metric::rouge, false, true, true},
    {"passage_count",
     "There are some paragraphs below sourced from Wikipedia. Some of them may be "
     "duplicates. Please carefully read these paragraphs and determine how many "
     "unique paragraphs there are after removing duplicates. In other words, how "
     "many non-repeating paragraphs are there in total?\n"
     "\n"
     "{context}\n"
     "\n"
     "Please enter the final count of unique paragraphs after removing "
     "duplicates. The output format should only contain the number, such as 1, 2, "
     "3, and so on.\n"
     "\n"
     "The final answer is: ",
     32, longbench_metric::count, true, false, false},
    {"passage_retrieval_en",
     "Here are 30 paragraphs from Wikipedia, along with an abstract. Please "
     "determine which paragraph the abstract is from.\n"
     "\n"
     "{context}\n"
     "\n"
     "The following is an abstract.\n"
     "\n"
     "{input}\n"
     "\n"
     "Please enter the number of the paragraph that the abstract is from. The "
     "answer format must be like \"Paragraph 1\", \"Paragraph 2\", etc.\n"
     "\n"
     "The answer is: ",
     32, longbench_metric::retrieval, true, false, false},
    {"lcc",
     "Please complete the code given below. \n"
     "{context}Next line of code:\n",
     64, longbench_metric::code_sim, false, false, false},
    {"repobench-p",
     "Please complete the code given below. \n"
     "{context}{input}Next line of code:\n",
     64, longbench_metric::code_sim, false, false, false},
};
// clang-format on

inline std::string longbench_task_names() {
  std::string out;
  for (const auto& t : longbench_tasks) out += (out.empty() ? "" : ", ") + std::string(t.name);
  return out;
}

inline const longbench_task& find_longbench_task(std::string_view name) {
  for (const auto& t : longbench_tasks)
    if (t.name == name) return t;
  FASA_FAIL("unknown LongBench task '", name, "'; known: ", longbench_task_names());
}

// ---- Data --------------------------------------------------------------------------------------

// One line of a LongBench data file (the Hugging Face dataset THUDM/LongBench, as jsonl).
struct longbench_sample {
  std::string input;    // the question or query; empty for summarisation and code tasks
  std::string context;  // the long document(s)
  std::vector<std::string> answers;      // the reference answers, at least one
  std::vector<std::string> all_classes;  // trec's class names; empty where the file has null
  std::int64_t length = 0;               // the context's length in words, as the file says
  std::string dataset, language, id;     // "dataset", "language", "_id" (empty when absent)
  std::size_t line = 0;                  // 1-based line in the file
};

namespace detail {

inline std::string describe_json(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::boolean:
      return j.get<bool>() ? "true" : "false";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return "the integer " + j.dump();
    case nlohmann::json::value_t::number_float:
      return "the number " + j.dump();
    case nlohmann::json::value_t::string: {
      std::string s = j.dump();
      if (s.size() > 42) s = s.substr(0, 40) + "...";
      return "the string " + s;
    }
    case nlohmann::json::value_t::array:
      return "an array of " + std::to_string(j.size()) + " elements";
    case nlohmann::json::value_t::object:
      return "an object";
    default:
      return j.type_name();
  }
}

// "<source>:<line>: <what>".
#define FASA_LONGBENCH_LINE_FAIL(source, line, ...) FASA_FAIL(source, ':', line, ": ", __VA_ARGS__)

inline std::string read_string_key(const nlohmann::json& obj, const char* key, std::string_view src,
                                   std::size_t line, bool required) {
  const auto it = obj.find(key);
  if (it == obj.end()) {
    if (required) FASA_LONGBENCH_LINE_FAIL(src, line, "key \"", key, "\" is missing");
    return {};
  }
  if (!it->is_string())
    FASA_LONGBENCH_LINE_FAIL(src, line, "key \"", key, "\" must be a string, found ",
                             describe_json(*it));
  return it->get<std::string>();
}

inline std::vector<std::string> read_string_list(const nlohmann::json& j, const char* key,
                                                 std::string_view src, std::size_t line) {
  if (!j.is_array())
    FASA_LONGBENCH_LINE_FAIL(src, line, "key \"", key, "\" must be an array of strings, found ",
                             describe_json(j));
  std::vector<std::string> out;
  for (std::size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_string())
      FASA_LONGBENCH_LINE_FAIL(src, line, "key \"", key, "\"[", i, "] must be a string, found ",
                               describe_json(j[i]));
    out.push_back(j[i].get<std::string>());
  }
  return out;
}

inline longbench_sample parse_longbench_line(std::string_view text, std::string_view src,
                                             std::size_t line) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    FASA_LONGBENCH_LINE_FAIL(src, line, "not valid JSON (", e.what(), ")");
  }
  if (!j.is_object())
    FASA_LONGBENCH_LINE_FAIL(src, line, "expected a JSON object, found ", describe_json(j));
  longbench_sample s;
  s.line = line;
  s.input = read_string_key(j, "input", src, line, true);
  s.context = read_string_key(j, "context", src, line, true);
  const auto answers = j.find("answers");
  if (answers == j.end()) FASA_LONGBENCH_LINE_FAIL(src, line, "key \"answers\" is missing");
  s.answers = read_string_list(*answers, "answers", src, line);
  if (s.answers.empty())
    FASA_LONGBENCH_LINE_FAIL(src, line,
                             "key \"answers\" is an empty array; a sample needs at least one "
                             "reference answer");
  if (const auto c = j.find("all_classes"); c != j.end() && !c->is_null())
    s.all_classes = read_string_list(*c, "all_classes", src, line);
  if (const auto l = j.find("length"); l != j.end()) {
    if (!l->is_number_integer())
      FASA_LONGBENCH_LINE_FAIL(src, line, "key \"length\" must be an integer, found ",
                               describe_json(*l));
    s.length = l->get<std::int64_t>();
  }
  s.dataset = read_string_key(j, "dataset", src, line, false);
  s.language = read_string_key(j, "language", src, line, false);
  s.id = read_string_key(j, "_id", src, line, false);
  return s;
}

}  // namespace detail

// Reads LongBench jsonl: one JSON object a line with the string keys "input" and "context" and
// "answers", an array of at least one string; "all_classes" (null or strings), "length"
// (integer), "dataset", "language" and "_id" (strings) are read when present, other keys are
// ignored. Blank lines are skipped. The first problem throws fasa::error naming the source, the
// line and the key. `source` names the stream in messages.
inline std::vector<longbench_sample> read_longbench_jsonl(std::istream& is,
                                                          std::string_view source) {
  std::vector<longbench_sample> out;
  std::string text;
  for (std::size_t line = 1; std::getline(is, text); ++line) {
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) continue;
    out.push_back(detail::parse_longbench_line(text, source, line));
  }
  if (is.bad()) FASA_FAIL(source, ": read error");
  if (out.empty()) FASA_FAIL(source, ": no samples (the file is empty or only blank lines)");
  return out;
}

inline std::vector<longbench_sample> read_longbench_jsonl(const std::filesystem::path& path) {
  std::ifstream is(path, std::ios::binary);
  if (!is) FASA_FAIL("cannot open LongBench file '", path.string(), "'");
  return read_longbench_jsonl(is, path.string());
}

// ---- Prompts -----------------------------------------------------------------------------------

// pred.py's prompt_format.format(**sample) for the official templates: {context} and {input}
// are replaced in one pass (text inside them is never substituted again), {{ and }} are literal
// braces, and any other {field} is an error (Python raises KeyError).
inline std::string format_longbench_prompt(std::string_view prompt_template,
                                           std::string_view context, std::string_view input) {
  std::string out;
  out.reserve(prompt_template.size() + context.size() + input.size());
  for (std::size_t i = 0; i < prompt_template.size(); ++i) {
    const char c = prompt_template[i];
    if ((c == '{' || c == '}') && i + 1 < prompt_template.size() && prompt_template[i + 1] == c) {
      out += c;
      ++i;
    } else if (c == '{') {
      const std::size_t close = prompt_template.find('}', i);
      const std::string_view field = prompt_template.substr(
          i + 1, close == std::string_view::npos ? std::string_view::npos : close - i - 1);
      if (close != std::string_view::npos && field == "context")
        out += context;
      else if (close != std::string_view::npos && field == "input")
        out += input;
      else
        FASA_FAIL("prompt template: unknown field '{", field, "}' at offset ", i,
                  "; known: {context}, {input}");
      i = close;
    } else if (c == '}') {
      FASA_FAIL("prompt template: single '}' at offset ", i, " (write }} for a brace)");
    } else {
      out += c;
    }
  }
  return out;
}

inline std::string format_longbench_prompt(const longbench_task& task,
                                           const longbench_sample& sample) {
  return format_longbench_prompt(task.prompt, sample.context, sample.input);
}

// pred.py's middle truncation on token ids: a sequence longer than max_length keeps its first
// and last max_length/2 (rounded down) tokens. max_length >= 2.
template <class T>
std::vector<T> middle_truncate(std::span<const T> ids, std::size_t max_length) {
  FASA_CHECK(max_length >= 2, "middle_truncate: max_length must be at least 2, got ", max_length);
  if (ids.size() <= max_length) return {ids.begin(), ids.end()};
  const std::size_t half = max_length / 2;
  std::vector<T> out(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(half));
  out.insert(out.end(), ids.end() - static_cast<std::ptrdiff_t>(half), ids.end());
  return out;
}

// What a tokenizer needs for the prompt steps: fasa::model::bpe_tokenizer fits.
template <class T>
concept prompt_tokenizer = requires(const T& t, std::string_view s,
                                    std::span<const std::int32_t> ids) {
  { t.encode(s, true) } -> std::convertible_to<std::vector<std::int32_t>>;
  { t.decode(ids, false) } -> std::convertible_to<std::string>;
};

namespace detail {

// The ids a Hugging Face tokenizer(text) call gives: special tokens in the text parsed, bos
// first where the tokenizer adds it.
template <prompt_tokenizer Tokenizer>
std::vector<std::int32_t> hf_encode(const Tokenizer& tok, std::string_view text) {
  std::vector<std::int32_t> ids;
  if constexpr (requires {
                  { tok.add_bos_token() } -> std::convertible_to<bool>;
                  { *tok.bos_id() } -> std::convertible_to<std::int32_t>;
                }) {
    if (tok.add_bos_token() && tok.bos_id()) ids.push_back(*tok.bos_id());
  }
  const auto body = tok.encode(text, true);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

}  // namespace detail

// pred.py's truncation of a formatted prompt (before the chat template): tokenised as
// tokenizer(prompt) does (bos included where the tokenizer adds it); when that is longer than
// max_length tokens, the text becomes decode(first max_length/2 tokens) +
// decode(last max_length/2 tokens), special tokens skipped. Otherwise the prompt is unchanged.
// Decoding keeps the bytes of a character cut at the seam, where Hugging Face writes U+FFFD.
template <prompt_tokenizer Tokenizer>
std::string middle_truncate_prompt(const Tokenizer& tok, std::string_view prompt,
                                   std::size_t max_length) {
  FASA_CHECK(max_length >= 2, "middle_truncate_prompt: max_length must be at least 2, got ",
             max_length);
  const auto ids = detail::hf_encode(tok, prompt);
  if (ids.size() <= max_length) return std::string(prompt);
  const std::size_t half = max_length / 2;
  const std::span<const std::int32_t> all(ids);
  return tok.decode(all.first(half), false) + tok.decode(all.last(half), false);
}

// ---- Chat template -----------------------------------------------------------------------------

struct chat_message {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

// The ChatML family: each message is "<|im_start|>" role "\n" content "<|im_end|>\n", and the
// generation prompt is "<|im_start|>assistant\n". Some templates (SmolLM2's) insert a default
// system turn when the first message is not a system message.
struct chatml_template {
  std::optional<std::string> default_system;
};

inline std::string apply_chat_template(const chatml_template& t,
                                       std::span<const chat_message> messages,
                                       bool add_generation_prompt) {
  std::string out;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (i == 0 && t.default_system && messages[0].role != "system")
      out += "<|im_start|>system\n" + *t.default_system + "<|im_end|>\n";
    out += "<|im_start|>" + messages[i].role + "\n" + messages[i].content + "<|im_end|>\n";
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

// One user turn and the generation prompt: what pred.py's build_chat does with the prompt.
inline std::string chat_user_prompt(const chatml_template& t, std::string_view user) {
  const chat_message m{"user", std::string(user)};
  return apply_chat_template(t, std::span<const chat_message>(&m, 1), true);
}

// SmolLM2-Instruct's default system prompt and the Jinja template its GGUF carries
// (tokenizer.chat_template; the "\n" inside the Jinja string literals are newline characters).
inline constexpr std::string_view smollm2_default_system =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

namespace detail {
inline constexpr std::string_view chatml_jinja_loop = "{% for message in messages %}";
inline constexpr std::string_view chatml_jinja_system_open =
    "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n";
inline constexpr std::string_view chatml_jinja_system_close = "<|im_end|>\n' }}{% endif %}";
inline constexpr std::string_view chatml_jinja_body =
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
}  // namespace detail

// Recognises a tokenizer.chat_template: the ChatML loop of SmolLM2-Instruct, with or without its
// default-system block (any system text without quotes or backslashes). Anything else throws:
// a template this code does not render exactly must not be approximated.
inline chatml_template chat_template_from_jinja(std::string_view jinja) {
  using namespace detail;
  const auto unrecognised = [&]() {
    FASA_FAIL("chat template not recognised (fasa::eval renders SmolLM2-style ChatML only): \"",
              jinja.substr(0, 120), jinja.size() > 120 ? "...\"" : "\"");
  };
  if (!jinja.starts_with(chatml_jinja_loop) || !jinja.ends_with(chatml_jinja_body)) unrecognised();
  std::string_view middle = jinja.substr(
      chatml_jinja_loop.size(), jinja.size() - chatml_jinja_loop.size() - chatml_jinja_body.size());
  chatml_template t;
  if (middle.empty()) return t;
  if (!middle.starts_with(chatml_jinja_system_open) || !middle.ends_with(chatml_jinja_system_close))
    unrecognised();
  middle.remove_prefix(chatml_jinja_system_open.size());
  middle.remove_suffix(chatml_jinja_system_close.size());
  if (middle.find_first_of("'\\") != std::string_view::npos) unrecognised();
  t.default_system = std::string(middle);
  return t;
}

// ---- The whole prompt --------------------------------------------------------------------------

struct longbench_prompt_options {
  // pred.py's limit on the formatted prompt (model2maxlen.json), in tokens; 0: no truncation.
  std::size_t max_length = 0;
  // The chat template for the tasks that use one; nullopt: plain prompts for every task.
  std::optional<chatml_template> chat;
};

// The text pred.py feeds the model for `sample`: formatted, middle-truncated, then wrapped in
// the chat template where the task uses one. Encode it with special tokens parsed (the chat
// markers are special tokens), or use longbench_prompt_ids.
template <prompt_tokenizer Tokenizer>
std::string longbench_prompt(const Tokenizer& tok, const longbench_task& task,
                             const longbench_sample& sample, const longbench_prompt_options& o) {
  std::string prompt = format_longbench_prompt(task, sample);
  if (o.max_length > 0) prompt = middle_truncate_prompt(tok, prompt, o.max_length);
  if (task.chat_template && o.chat) prompt = chat_user_prompt(*o.chat, prompt);
  return prompt;
}

// longbench_prompt's token ids, as pred.py's tokenizer(prompt) gives them (bos first where the
// tokenizer adds one; SmolLM2's does not).
template <prompt_tokenizer Tokenizer>
std::vector<std::int32_t> longbench_prompt_ids(const Tokenizer& tok, const longbench_task& task,
                                               const longbench_sample& sample,
                                               const longbench_prompt_options& o) {
  return detail::hf_encode(tok, longbench_prompt(tok, task, sample, o));
}

// ---- Scores ------------------------------------------------------------------------------------

// One metric on one (prediction, reference answer) pair, in [0, 1].
inline double longbench_metric_score(longbench_metric m, std::string_view prediction,
                                     std::string_view answer,
                                     std::span<const std::string> all_classes) {
  switch (m) {
    case longbench_metric::qa_f1:
      return qa_f1_score(prediction, answer);
    case longbench_metric::rouge:
      return rouge_score(prediction, answer);
    case longbench_metric::classification:
      return classification_score(prediction, answer, all_classes);
    case longbench_metric::retrieval:
      return retrieval_score(prediction, answer);
    case longbench_metric::count:
      return count_score(prediction, answer);
    case longbench_metric::code_sim:
      return code_sim_score(prediction, answer);
  }
  FASA_FAIL("unknown LongBench metric ", static_cast<int>(m));
}

// eval.py's scorer for one sample: the best score over the reference answers, in [0, 1]; for
// the first_line_only tasks only the prediction's first line (after leading newlines) counts.
inline double longbench_score(const longbench_task& task, std::string_view prediction,
                              std::span<const std::string> answers,
                              std::span<const std::string> all_classes = {}) {
  FASA_CHECK(task.metric != longbench_metric::classification || !all_classes.empty(),
             "longbench_score: task ", task.name,
             " is scored by classification and needs the "
             "sample's all_classes");
  if (task.first_line_only) {
    const std::size_t start = prediction.find_first_not_of('\n');
    prediction = start == std::string_view::npos ? std::string_view{} : prediction.substr(start);
    prediction = prediction.substr(0, prediction.find('\n'));
  }
  double best = 0.0;
  for (const auto& a : answers)
    best = std::max(best, longbench_metric_score(task.metric, prediction, a, all_classes));
  return best;
}

inline double longbench_score(const longbench_task& task, std::string_view prediction,
                              const longbench_sample& sample) {
  return longbench_score(task, prediction, sample.answers, sample.all_classes);
}

// eval.py's task score: 100 x the mean of the per-sample scores (summed in order, as Python
// does). The official code rounds it to two decimals with round(x, 2); printf's "%.2f" prints
// the same digits, since both round the exact binary value.
inline double longbench_task_score(std::span<const double> per_sample) {
  FASA_CHECK(!per_sample.empty(), "longbench_task_score: no samples");
  double total = 0.0;
  for (const double s : per_sample) total += s;
  return 100 * total / static_cast<double>(per_sample.size());
}

}  // namespace fasa::eval

#undef FASA_LONGBENCH_LINE_FAIL
