// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
// fasa-generate: generate text from any prompt with a chosen KV-cache selector.

#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "common.hpp"
#include "fasa/model/sampling.hpp"

using namespace fasa;
using namespace fasa::tools;

int main(int argc, char** argv) {
  CLI::App app{"fasa-generate: generate text with dense, oracle or FASA attention"};
  std::string model_path = default_model_path();
  std::string prompt, prompt_file, granularity = "query_head", mapping = "rotation_pairs";
  bool chat = false;
  int max_tokens = 128;
  float temperature = 0.0f, top_p = 1.0f;
  std::uint64_t seed = 0;
  tools::attention_options o;
  calibration_options cal_opts;
  cal_opts.text = default_data_dir() + "/text/moby_dick.txt";
  app.add_option("--model", model_path, "GGUF file of a Llama-family model")->capture_default_str();
  app.add_option("--prompt", prompt, "the prompt text");
  app.add_option("--prompt-file", prompt_file, "read the prompt from this file instead");
  app.add_flag("--chat", chat, "wrap the prompt in the model's chat format (ChatML user turn)");
  app.add_option("--max-tokens", max_tokens, "tokens to generate at most")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--temperature", temperature, "0: greedy; else sample with this temperature")
      ->capture_default_str()
      ->check(real_in(0.0, 100.0));
  app.add_option("--top-p", top_p, "nucleus sampling mass, in (0, 1]")
      ->capture_default_str()
      ->check(real_in(0.0, 1.0, true));
  app.add_option("--seed", seed, "sampling seed")->capture_default_str()->check(seed_check());
  app.add_option("--selector", o.selector, "dense | oracle | fasa")->capture_default_str();
  app.add_option("--backend", o.backend, backend_help)->capture_default_str();
  app.add_option("--budget", o.budget, "tokens kept per step (N_fac), or a fraction < 1")
      ->capture_default_str()
      ->check(budget_check());
  app.add_option("--n-tip", o.n_tip, "dominant FCs per head (0: head_dim/8)")
      ->capture_default_str()
      ->check(n_tip_check());
  app.add_option("--granularity", granularity, "selection per query_head (the paper) or kv_head")
      ->capture_default_str();
  app.add_option("--dense-layers", o.dense_layers, "layers kept dense (the paper: 0)")
      ->capture_default_str()
      ->check(whole_in(0, 4095));
  app.add_option("--sinks", o.force.sinks,
                 "oracle, fasa: the first N tokens always kept, taking budget slots (0: none)")
      ->capture_default_str()
      ->check(tokens_at_least(0));
  app.add_option("--recent", o.force.recent,
                 "oracle, fasa: the last N tokens always kept, taking budget slots (0: none)")
      ->capture_default_str()
      ->check(tokens_at_least(0));
  app.add_option("--fc-mapping", mapping,
                 "rotation_pairs (the paper's FCs) or adjacent_dims (the released code's)")
      ->capture_default_str();
  app.add_option("--calibration", cal_opts.file,
                 "a calibration file (default: measure on --calibration-text once and cache it)");
  app.add_option("--calibration-text", cal_opts.text, "text to calibrate on")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    o.granularity = parse_granularity(granularity);
    cal_opts.granularity = o.granularity;
    cal_opts.mapping = parse_mapping(mapping);
    parse_budget(o.budget);
    FASA_CHECK(app.count("--prompt") == 0 || !prompt.empty(), "--prompt is empty");
    FASA_CHECK(prompt.empty() != prompt_file.empty(),
               "give exactly one of --prompt and --prompt-file");
    if (!prompt_file.empty()) prompt = read_text_file(prompt_file, "prompt file");
    const loaded_model m = load_model(model_path);
    if (chat) prompt = "<|im_start|>user\n" + prompt + "<|im_end|>\n<|im_start|>assistant\n";
    const auto ids = m.tokenizer.encode(prompt);
    FASA_CHECK(!ids.empty(), "the prompt is empty");
    o.capacity = static_cast<std::int64_t>(ids.size()) + max_tokens;
    calib::calibration cal;
    if (o.selector == "fasa") cal = obtain_calibration(m, model_path, cal_opts);
    model::llama_model lm(
        m.weights, build_attention(m.weights.config, o, o.selector == "fasa" ? &cal : nullptr));
    model::sampler sample(temperature, top_p, seed);

    const double t0 = seconds_now();
    auto logits = lm.prefill(ids);
    const double t1 = seconds_now();
    std::vector<std::int32_t> out;
    std::int64_t kv = 0;
    for (int i = 0; i < max_tokens; ++i) {
      const std::int32_t next = sample(logits);
      if (m.tokenizer.is_end_of_generation(next)) break;
      out.push_back(next);
      std::fputs(m.tokenizer.decode(std::span<const std::int32_t>(&out.back(), 1), false).c_str(),
                 stdout);
      std::fflush(stdout);
      logits = lm.decode(next);
      kv += kv_bytes_last_step(lm);
    }
    const double t2 = seconds_now();
    std::fprintf(stderr,
                 "\n[%s on %s: prompt %zu tokens in %.2fs (%.1f tok/s); %zu generated, %.2f tok/s; "
                 "%.2f MB of KV read per step on average]\n",
                 o.selector.c_str(), o.backend.c_str(), ids.size(), t1 - t0, ids.size() / (t1 - t0),
                 out.size(), out.size() / (t2 - t1),
                 out.empty() ? 0.0 : static_cast<double>(kv) / out.size() / 1e6);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fasa-generate: %s\n", e.what());
    return 2;
  }
}
