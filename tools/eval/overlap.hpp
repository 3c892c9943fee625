// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Overlap: how much of decode step t's selection steps t-1 .. t-k already selected, the
// question behind a GPU-resident cache of recently fetched KV rows for FASA-M (the non-dominant
// key dims and the values in host memory, the chosen rows copied over the bus every step). The
// variant's own model runs teacher-forced over a window of real text, after a dense prefill
// (captured once, shared by the variants), and after every layer's decode step the selection
// the layer made (layer_attention::last_selection) is scored, per layer and selection unit, at
// each lag k of --lags:
//   overlap_lag{k}   |S_t ∩ S_{t-k}| / |S_t|
//   union_lag{k}     |S_t ∩ (S_{t-1} ∪ ... ∪ S_{t-k})| / |S_t|: what a cache holding the rows
//                    of the last k steps' selections would hit
//   new_lag{k}       the share of S_t that did not exist at step t-k (the tokens appended since;
//                    at lag 1 the token decoded at t). They count as misses in the two above.
// Rows are per KV head, so the same figures for the union U_t of a KV group's selections
// (kv_overlap_lag{k}, kv_union_lag{k}; under kv_head the unit is the KV head and these equal
// the unit figures), and the rows a KV head still fetches with a cache of the last k steps,
// |U_t \ (U_{t-1} ∪ ... ∪ U_{t-k})|, over what a per-unit gather without a cache fetches
// (group x budget under query_head, the budget under kv_head): fetch_lag{k}, and the rows that
// cache holds, |U_{t-1} ∪ ... ∪ U_{t-k}|, over the same: cache_lag{k}. Under query_head
// group_dedup = |U_t| / (group x budget) is what deduplicating the group's rows alone saves.
// Every figure is a mean over steps (a lag k over the steps from the (k+1)-th on) and units.
// Layers the variant keeps dense select nothing and are left out.

#include <cstdio>

#include "protocol.hpp"
#include "selection_overlap.hpp"

namespace fasa::tools::eval {

class overlap_protocol final : public protocol {
 public:
  std::string text = default_data_dir() + "/text/moby_dick.txt";
  std::int64_t skip = 2048;
  std::int64_t prefill = 7000;
  int steps = 64;
  std::vector<int> lags{1, 2, 4, 8};

  void add_options(CLI::App* app) {
    app->add_option("--text", text, "text whose window is decoded (plain text or JSON)")
        ->capture_default_str();
    app->add_option("--skip", skip,
                    "tokens at the start of the text not used (the default calibration reads "
                    "the first 1,088 tokens of the default text)")
        ->capture_default_str()
        ->check(tokens_at_least(0));
    app->add_option("--prefill", prefill, "P: tokens prefilled densely before the measured steps")
        ->capture_default_str()
        ->check(tokens_at_least(1));
    app->add_option("--steps", steps, "S: decode steps measured (teacher-forced on the text)")
        ->capture_default_str()
        ->check(whole_in(2, 1 << 20));
    app->add_option("--lags", lags,
                    "lags k, comma-separated: step t's selection against step t-k's, and "
                    "against the union of steps t-1 .. t-k (each k below --steps)")
        ->delimiter(',')
        ->capture_default_str()
        ->check(whole_in(1, 256));
  }

  std::string name() const override { return "overlap"; }
  std::string settings() const override {
    std::string l;
    for (int k : sorted_lags()) l += (l.empty() ? "" : ",") + std::to_string(k);
    return "text=" + fs::path(text).filename().string() + " skip=" + std::to_string(skip) +
           " P=" + std::to_string(prefill) + " S=" + std::to_string(steps) + " lags=" + l;
  }
  std::string metric() const override {
    return "overlap_lag" + std::to_string(sorted_lags().front());
  }
  std::vector<std::string> table_columns() const override {
    std::vector<std::string> cols{"variant", "kept"};
    for (const auto& c : metric_columns()) cols.push_back(c);
    return cols;
  }

  protocol_result run(session& s, const variant& v) override {
    const std::vector<int> ks = sorted_lags();
    FASA_CHECK(!ks.empty() && ks.front() >= 1, "--lags must be at least 1");
    FASA_CHECK(ks.back() < steps, "--lags ", ks.back(), " needs more than ", ks.back(),
               " --steps, got ", steps);
    FASA_CHECK(prefill >= 1 && skip >= 0, "--prefill must be at least 1 and --skip >= 0");
    protocol_result res;
    res.summary = variant_row(v);
    if (v.selector == "dense") {
      std::fprintf(stderr, "overlap: dense attends to every cached token; nothing to measure\n");
      res.summary.set("unit_steps", std::int64_t{0});
      return res;
    }
    const auto& c = s.config();
    const auto& tokens = corpus_tokens(s);
    FASA_CHECK(static_cast<std::int64_t>(tokens.size()) >= skip + prefill + steps, "'", text,
               "' has ", tokens.size(), " tokens; need ", skip + prefill + steps, " (--skip ", skip,
               " + --prefill ", prefill, " + --steps ", steps, ")");
    const int group = c.n_heads / c.n_kv_heads;
    const bool per_query = v.granularity == selection_granularity::query_head;

    // Per layer: one tracker per selection unit, one per KV head's union (query_head only).
    struct layer_acc {
      std::vector<overlap_tracker> units, groups;
      double dedup = 0, kept = 0;
      std::int64_t dedup_n = 0, kept_n = 0;
    };
    std::vector<layer_acc> per_layer(static_cast<std::size_t>(c.n_layers));
    auto m = s.make_model(v, prefill + steps);
    m->set_decode_observer([&](int layer, std::span<const float>, std::int64_t pos,
                               const model::layer_attention& attn) {
      auto& a = per_layer[static_cast<std::size_t>(layer)];
      const selection& sel = attn.last_selection();
      if (sel.all) {  // a dense layer, or a budget that covers the cache
        for (auto& t : a.units) t.forget();
        for (auto& t : a.groups) t.forget();
        return;
      }
      FASA_CHECK(sel.granularity == v.granularity && sel.per_unit >= 1 &&
                     sel.units == num_selection_units(attn.shape(), v.granularity),
                 "overlap: layer ", layer, " reported a selection of ", sel.units, " units of ",
                 sel.per_unit, " tokens under ", to_string(sel.granularity), "; the variant '",
                 v.key(), "' selects per ", to_string(v.granularity));
      if (a.units.empty()) {
        a.units.assign(static_cast<std::size_t>(sel.units), overlap_tracker(ks));
        if (per_query) a.groups.assign(static_cast<std::size_t>(c.n_kv_heads), overlap_tracker(ks));
      }
      for (int u = 0; u < sel.units; ++u)
        a.units[static_cast<std::size_t>(u)].add(sel.unit_tokens(u), pos);
      a.kept += static_cast<double>(sel.per_unit), a.kept_n += 1;
      if (!per_query) return;
      const double per_gather = static_cast<double>(group) * static_cast<double>(sel.per_unit);
      for (int g = 0; g < c.n_kv_heads; ++g) {
        const std::vector<std::int32_t> rows = kv_group_rows(sel, g, group);
        a.groups[static_cast<std::size_t>(g)].add(rows, pos, per_gather);
        a.dedup += static_cast<double>(rows.size()) / per_gather, a.dedup_n += 1;
      }
    });
    const double start = seconds_now();
    const std::string label = "overlap " + v.key();
    const std::vector<std::int32_t> head(tokens.begin() + skip, tokens.begin() + skip + prefill);
    try {
      m->load_prefix(s.prefix(
          "overlap:" + text + ":" + std::to_string(skip) + "+" + std::to_string(prefill), head));
      for (int i = 0; i < steps; ++i) {
        m->decode(tokens[static_cast<std::size_t>(skip + prefill + i)]);
        progress_bar(label.c_str(), i + 1, steps, start);
      }
    } catch (...) {
      m->set_decode_observer({});
      throw;
    }
    m->set_decode_observer({});

    // Sums over trackers, then means per lag.
    using sums = overlap_tracker::sums;
    auto add_to = [&](std::vector<sums>& into, const overlap_tracker& t) {
      for (std::size_t i = 0; i < ks.size(); ++i) {
        const auto& x = t.totals()[i];
        into[i].overlap += x.overlap, into[i].with_union += x.with_union;
        into[i].fresh += x.fresh, into[i].fetched += x.fetched, into[i].cached += x.cached;
        into[i].steps += x.steps;
      }
    };
    auto mean = [](double sum, std::int64_t n) {
      return n > 0 ? sum / static_cast<double>(n) : 0.0;
    };
    auto set_unit = [&](row& r, const std::vector<sums>& u) {
      for (std::size_t i = 0; i < ks.size(); ++i) {
        const std::string k = std::to_string(ks[i]);
        r.set("overlap_lag" + k, mean(u[i].overlap, u[i].steps));
        r.set("union_lag" + k, mean(u[i].with_union, u[i].steps));
        r.set("new_lag" + k, mean(u[i].fresh, u[i].steps));
      }
    };
    auto set_kv = [&](row& r, const std::vector<sums>& g) {
      for (std::size_t i = 0; i < ks.size(); ++i) {
        const std::string k = std::to_string(ks[i]);
        r.set("kv_overlap_lag" + k, mean(g[i].overlap, g[i].steps));
        r.set("kv_union_lag" + k, mean(g[i].with_union, g[i].steps));
        r.set("fetch_lag" + k, mean(g[i].fetched, g[i].steps));
        r.set("cache_lag" + k, mean(g[i].cached, g[i].steps));
      }
    };
    std::vector<sums> all_units(ks.size()), all_groups(ks.size());
    std::vector<row> layer_rows;  // printed below
    double dedup = 0, kept = 0;
    std::int64_t dedup_n = 0, kept_n = 0, layers = 0;
    for (int l = 0; l < c.n_layers; ++l) {
      const auto& a = per_layer[static_cast<std::size_t>(l)];
      if (a.units.empty()) continue;
      ++layers;
      std::vector<sums> lu(ks.size()), lg(ks.size());
      for (std::size_t u = 0; u < a.units.size(); ++u) {
        std::vector<sums> one(ks.size());
        add_to(one, a.units[u]);
        add_to(lu, a.units[u]);
        row r = variant_row(v);
        r.set("level", to_string(v.granularity)).set("layer", l);
        r.set("head", static_cast<std::int64_t>(u));
        r.set("kv_head", static_cast<std::int64_t>(per_query ? static_cast<int>(u) / group
                                                             : static_cast<int>(u)));
        set_unit(r, one);
        if (!per_query) set_kv(r, one);
        res.samples.push_back(std::move(r));
      }
      for (std::size_t g = 0; g < a.groups.size(); ++g) {
        std::vector<sums> one(ks.size());
        add_to(one, a.groups[g]);
        add_to(lg, a.groups[g]);
        row r = variant_row(v);
        r.set("level", "kv_head").set("layer", l).set("head", static_cast<std::int64_t>(g));
        r.set("kv_head", static_cast<std::int64_t>(g));
        set_kv(r, one);
        res.samples.push_back(std::move(r));
      }
      row r = variant_row(v);
      r.set("level", "layer").set("layer", l).set("kept", mean(a.kept, a.kept_n));
      set_unit(r, lu);
      set_kv(r, per_query ? lg : lu);
      if (per_query) r.set("group_dedup", mean(a.dedup, a.dedup_n));
      layer_rows.push_back(r);
      res.samples.push_back(std::move(r));
      for (const auto& t : a.units) add_to(all_units, t);
      for (const auto& t : (per_query ? a.groups : a.units)) add_to(all_groups, t);
      dedup += a.dedup, dedup_n += a.dedup_n, kept += a.kept, kept_n += a.kept_n;
    }
    FASA_CHECK(layers > 0, "overlap: no layer selected tokens (every layer dense, or the budget ",
               variant::format_budget(v.budget), " covers the ", prefill + steps,
               "-token context)");
    res.summary.set("layers", layers);
    res.summary.set("unit_steps", all_units.front().steps);
    res.summary.set("kept", mean(kept, kept_n));
    set_unit(res.summary, all_units);
    set_kv(res.summary, all_groups);
    if (per_query) res.summary.set("group_dedup", mean(dedup, dedup_n));
    res.summary.set("seconds", seconds_now() - start);

    std::printf("overlap per layer: %s\n\n", v.key().c_str());
    std::vector<std::string> cols{"layer", "kept"};
    for (const auto& col : metric_columns())
      if (layer_rows.front().find(col)) cols.push_back(col);
    print_table(layer_rows, cols);
    std::printf("\n");
    return res;
  }

 private:
  std::vector<int> sorted_lags() const {
    std::vector<int> ks = lags;
    std::sort(ks.begin(), ks.end());
    ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
    return ks;
  }
  // The figures of the printed tables: the unit's, the KV head's, the group's dedup.
  std::vector<std::string> metric_columns() const {
    std::vector<std::string> cols;
    const auto ks = sorted_lags();
    for (int k : ks) cols.push_back("overlap_lag" + std::to_string(k));
    for (int k : ks)
      if (k > 1) cols.push_back("union_lag" + std::to_string(k));
    cols.push_back("new_lag" + std::to_string(ks.front()));
    for (int k : ks) cols.push_back("kv_union_lag" + std::to_string(k));
    cols.push_back("group_dedup");
    for (int k : ks) cols.push_back("fetch_lag" + std::to_string(k));
    for (int k : ks) cols.push_back("cache_lag" + std::to_string(k));
    return cols;
  }
  const std::vector<std::int32_t>& corpus_tokens(session& s) {
    if (tokens_.empty()) {
      std::string t = read_text_corpus(text, "text");
      // The window needs skip + prefill + steps tokens; about 8 characters a token is ample.
      t.resize(std::min<std::size_t>(t.size(),
                                     static_cast<std::size_t>(skip + prefill + steps) * 8 + 1024));
      tokens_ = s.model().tokenizer.encode(t, false);
    }
    return tokens_;
  }
  std::vector<std::int32_t> tokens_;
};

}  // namespace fasa::tools::eval
