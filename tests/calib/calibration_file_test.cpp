// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
// The calibration file: round trips, and for every field a file without it and a file with a
// wrong type or value, each of which must fail with a message naming the field. Then truncated,
// empty and non-JSON input, the compatibility check and the dominant_plan of one layer.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fasa/calib/calibration_file.hpp"
#include "support.hpp"

using fasa::selection_granularity;
using fasa::calib::calibration;
using fasa::calib::read_calibration;
using fasa::calib::write_calibration;
using fasa::positional::fc_mapping;
using fasa::positional::rope;
using fasa::positional::rope_layout;
using json = nlohmann::json;

namespace {

// 2 layers, 4 query heads over 2 KV heads, head_dim 8 (4 FCs), windows {16, 64}; mean CA from
// a fixed-seed uniform draw (doubles that have no short decimal form) plus exact 0 and 1.
calibration small_calibration(selection_granularity g = selection_granularity::query_head,
                              rope_layout layout = rope_layout::interleaved,
                              fc_mapping mapping = fc_mapping::rotation_pairs) {
  calibration c;
  c.model = {"tiny-llama-test", std::string(64, 'a')};
  c.num_layers = 2;
  c.num_q_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.rope = {layout, mapping, 500000.0, 8};
  c.granularity = g;
  c.k_values = {16, 64};
  c.steps = 37;
  c.selection = {64, 2};
  std::mt19937 gen(5);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  c.mean_ca.resize(static_cast<std::size_t>(2 * 2 * c.num_units() * 4));
  for (double& v : c.mean_ca) v = u(gen);
  c.mean_ca[0] = 0.0;
  c.mean_ca[1] = 1.0;
  c.dominant = fasa::calib::choose_dominant_fcs(c.ca(), 64, 2);
  return c;
}

std::string to_text(const calibration& c) {
  std::ostringstream os;
  write_calibration(c, os);
  return os.str();
}

calibration from_text(const std::string& s) {
  std::istringstream is(s);
  return read_calibration(is);
}

// The message of the fasa::error that reading `j` throws (empty when none is thrown).
std::string read_error(const json& j) {
  try {
    from_text(j.dump());
  } catch (const fasa::error& e) {
    return e.what();
  }
  return {};
}

json valid_json() { return json::parse(to_text(small_calibration())); }

// A fresh path in the temp directory, removed at scope exit.
struct temp_file {
  std::filesystem::path path;
  explicit temp_file(const std::string& name)
      : path(std::filesystem::temp_directory_path() /
             ("fasa_calib_test_" + std::to_string(std::random_device{}()) + "_" + name)) {}
  ~temp_file() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

}  // namespace

TEST_CASE("calib: calibration file round trip gives an equal struct") {
  for (auto g : {selection_granularity::query_head, selection_granularity::kv_head})
    for (auto layout : {rope_layout::interleaved, rope_layout::rotate_half})
      for (auto mapping : {fc_mapping::rotation_pairs, fc_mapping::adjacent_dims}) {
        CAPTURE(fasa::to_string(g));
        CAPTURE(fasa::positional::to_string(layout));
        CAPTURE(fasa::positional::to_string(mapping));
        const calibration c = small_calibration(g, layout, mapping);
        const std::string text = to_text(c);
        const calibration back = from_text(text);
        CHECK(back == c);
        CHECK(to_text(back) == text);  // writing is deterministic
      }
  // through a file, with an empty checksum and a partial rotary dim
  calibration c = small_calibration();
  c.model.file_sha256.clear();
  c.rope.rotary_dim = 4;
  temp_file f("round_trip.json");
  write_calibration(c, f.path);
  CHECK(read_calibration(f.path) == c);
}

TEST_CASE("calib: calibration file has the documented fields and layout") {
  const json j = valid_json();
  CHECK(j.at("format") == "fasa-calibration");
  CHECK(j.at("version") == 1);
  CHECK(j.at("model").at("name") == "tiny-llama-test");
  CHECK(j.at("rope").at("layout") == "interleaved");
  CHECK(j.at("rope").at("fc_mapping") == "rotation_pairs");
  CHECK(j.at("rope").at("theta") == 500000.0);
  CHECK(j.at("granularity") == "query_head");
  CHECK(j.at("k_values") == json({16, 64}));
  CHECK(j.at("selection").at("n_tip") == 2);
  // mean_ca is [n_K][num_layers][num_units][head_dim/2] and dominant [num_layers][num_units][n_tip]
  CHECK(j.at("mean_ca").size() == 2);
  CHECK(j.at("mean_ca")[1].size() == 2);
  CHECK(j.at("mean_ca")[1][0].size() == 4);
  CHECK(j.at("mean_ca")[1][0][3].size() == 4);
  const calibration c = small_calibration();
  CHECK(j.at("mean_ca")[1][0][3][2].get<double>() == c.mean_ca[((1 * 2 + 0) * 4 + 3) * 4 + 2]);
  CHECK(j.at("dominant").size() == 2);
  CHECK(j.at("dominant")[1][3] == json(c.dominant[1][3]));
  // one line per unit of mean_ca, not one line per number
  const std::string text = to_text(c);
  CHECK(std::count(text.begin(), text.end(), '\n') < 60);
  // unknown fields are ignored
  json extra = j;
  extra["calibration_data"] = "qasper, 1 sample";
  CHECK(read_error(extra).empty());
}

TEST_CASE("calib: calibration file with a field missing names the field") {
  const std::vector<std::string> fields = {
      "format",      "version",         "model",        "model.name",      "model.file_sha256",
      "num_layers",  "num_q_heads",     "num_kv_heads", "head_dim",        "rope",
      "rope.layout", "rope.fc_mapping", "rope.theta",   "rope.rotary_dim", "granularity",
      "k_values",    "steps",           "selection",    "selection.k",     "selection.n_tip",
      "mean_ca",     "dominant"};
  for (const std::string& field : fields) {
    CAPTURE(field);
    json j = valid_json();
    const auto dot = field.find('.');
    if (dot == std::string::npos)
      j.erase(field);
    else
      j.at(field.substr(0, dot)).erase(field.substr(dot + 1));
    const std::string msg = read_error(j);
    CAPTURE(msg);
    CHECK(msg.find("`" + field + "` is missing") != std::string::npos);
  }
}

TEST_CASE("calib: calibration file with a field of the wrong type names the field") {
  struct bad_field {
    std::string pointer;  // JSON pointer to replace
    json value;
    std::string field;  // the field path the message must name
  };
  const std::vector<bad_field> cases = {
      {"/format", 5, "format"},
      {"/version", "1", "version"},
      {"/version", 1.0, "version"},
      {"/model", json::array(), "model"},
      {"/model/name", 3, "model.name"},
      {"/model/file_sha256", nullptr, "model.file_sha256"},
      {"/num_layers", "2", "num_layers"},
      {"/num_q_heads", 4.5, "num_q_heads"},
      {"/num_kv_heads", true, "num_kv_heads"},
      {"/head_dim", json::array({8}), "head_dim"},
      {"/head_dim", 1e12, "head_dim"},
      {"/rope", "x", "rope"},
      {"/rope/layout", 1, "rope.layout"},
      {"/rope/fc_mapping", json::object(), "rope.fc_mapping"},
      {"/rope/theta", "1e4", "rope.theta"},
      {"/rope/rotary_dim", 8.0, "rope.rotary_dim"},
      {"/granularity", 0, "granularity"},
      {"/k_values", 16, "k_values"},
      {"/k_values/0", "16", "k_values[0]"},
      {"/k_values/1", 64.5, "k_values[1]"},
      {"/steps", "37", "steps"},
      {"/steps", 18446744073709551615ull, "steps"},
      {"/selection", 1, "selection"},
      {"/selection/k", "64", "selection.k"},
      {"/selection/n_tip", 2.5, "selection.n_tip"},
      {"/mean_ca", json::object(), "mean_ca"},
      {"/mean_ca/1", 0.5, "mean_ca[1]"},
      {"/mean_ca/0/1", "x", "mean_ca[0][1]"},
      {"/mean_ca/1/0/3", nullptr, "mean_ca[1][0][3]"},
      {"/mean_ca/0/1/1/2", "0.5", "mean_ca[0][1][1][2]"},
      {"/mean_ca/1/1/3/3", nullptr, "mean_ca[1][1][3][3]"},
      {"/dominant", 1, "dominant"},
      {"/dominant/1", json::object(), "dominant[1]"},
      {"/dominant/0/2", 3, "dominant[0][2]"},
      {"/dominant/1/0/1", "0", "dominant[1][0][1]"},
      {"/dominant/1/3/0", 1.0, "dominant[1][3][0]"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.pointer);
    CAPTURE(c.value.dump());
    json j = valid_json();
    j[json::json_pointer(c.pointer)] = c.value;
    const std::string msg = read_error(j);
    CAPTURE(msg);
    CHECK(msg.find("field `" + c.field + "`: expected") != std::string::npos);
    CHECK(msg.find("found") != std::string::npos);
  }
}

TEST_CASE("calib: calibration file with a field out of range or inconsistent names the field") {
  struct bad_value {
    std::string pointer;
    json value;
    std::string expect;  // a part of the message
  };
  const std::vector<bad_value> cases = {
      {"/format", "llama-calibration",
       "field `format`: expected \"fasa-calibration\", found \"llama-calibration\""},
      {"/version", 2, "field `version`: found version 2, newer than this reader understands (1)"},
      {"/version", 0, "field `version`: expected an integer >= 1, found 0"},
      {"/model/file_sha256", "abc123", "field `model.file_sha256`: expected an empty string or 64"},
      {"/model/file_sha256", std::string(64, 'A'), "field `model.file_sha256`"},
      {"/num_layers", 0, "field `num_layers`: expected an integer >= 1, found 0"},
      {"/num_layers", 3, "field `mean_ca[0]`: expected an array of 3 elements (num_layers)"},
      {"/num_q_heads", -4, "field `num_q_heads`: expected an integer >= 1, found -4"},
      {"/num_q_heads", 3, "field `num_kv_heads`: expected a divisor of num_q_heads (3)"},
      {"/num_kv_heads", 3, "field `num_kv_heads`: expected a divisor of num_q_heads (4)"},
      {"/rope/rotary_dim", 0, "field `rope.rotary_dim`: expected an integer in [2, 8], found 0"},
      {"/head_dim", 7, "field `head_dim`: expected an even number"},
      {"/head_dim", 0, "field `head_dim`: expected an integer >= 2, found 0"},
      {"/head_dim", 10, "field `mean_ca[0][0][0]`: expected an array of 5 elements"},
      {"/rope/layout", "neox",
       "field `rope.layout`: expected one of \"interleaved\", "
       "\"rotate_half\", found \"neox\""},
      {"/rope/fc_mapping", "pairs", "field `rope.fc_mapping`: expected one of"},
      {"/rope/theta", -1.0, "field `rope.theta`: expected a positive finite number, found -1"},
      {"/rope/theta", 0, "field `rope.theta`"},
      {"/rope/rotary_dim", 3, "field `rope.rotary_dim`: expected an even number, found 3"},
      {"/rope/rotary_dim", 10, "field `rope.rotary_dim`: expected an integer in [2, 8], found 10"},
      {"/granularity", "group",
       "field `granularity`: expected one of \"query_head\", "
       "\"kv_head\", found \"group\""},
      {"/granularity", "kv_head",
       "field `mean_ca[0][0]`: expected an array of 2 elements "
       "(num_units = num_kv_heads under kv_head granularity)"},
      {"/k_values", json::array(), "field `k_values`: expected at least one window K"},
      {"/k_values", json({64, 16}), "field `k_values[1]`: expected a window above 64"},
      {"/k_values", json({0, 64}), "field `k_values[0]`: expected an integer >= 1, found 0"},
      {"/k_values", json({16, 64, 128}),
       "field `mean_ca`: expected an array of 3 elements (one per k_values entry), found 2"},
      {"/steps", 0, "field `steps`: expected an integer >= 1, found 0"},
      {"/selection/k", 32, "field `selection.k`: expected one of k_values [16, 64], found 32"},
      {"/selection/n_tip", 0,
       "field `selection.n_tip`: N_tip (0) must be between 1 and head_dim/2 (4)"},
      {"/selection/n_tip", 5,
       "field `selection.n_tip`: N_tip (5) must be between 1 and head_dim/2 (4)"},
      {"/selection/n_tip", 3, "field `dominant[0][0]`: expected an array of 3 elements"},
      {"/mean_ca/1/0/3/2", 1.5,
       "field `mean_ca[1][0][3][2]`: expected a mean CA in [0, 1], "
       "found 1.5"},
      {"/mean_ca/0/1/2/0", -0.25, "field `mean_ca[0][1][2][0]`: expected a mean CA in [0, 1]"},
      {"/mean_ca/0/1/2", json({0.1, 0.2, 0.3}),
       "field `mean_ca[0][1][2]`: expected an array of 4 elements (head_dim/2 FCs), found 3"},
      {"/dominant/1", json::array(), "field `dominant[1]`: expected an array of 4 elements"},
      {"/dominant/0/1", json({3, 3}), "field `dominant[0][1][1]`: expected distinct FC indices"},
      {"/dominant/1/2", json({0, 4}), "field `dominant[1][2][1]`: expected an FC index in [0, 3]"},
      {"/dominant/1/2", json({-1, 2}),
       "field `dominant[1][2][0]`: expected an FC index in [0, 3], found -1"},
  };
  for (const auto& c : cases) {
    json j = valid_json();
    CAPTURE(c.pointer);
    CAPTURE(c.value.dump());
    j[json::json_pointer(c.pointer)] = c.value;
    const std::string msg = read_error(j);
    CAPTURE(msg);
    CHECK(msg.find(c.expect) != std::string::npos);
  }
}

TEST_CASE(
    "calib: calibration reader gives clear errors for non-JSON, truncated and foreign input") {
  const std::string text = to_text(small_calibration());
  const auto error_of = [](const std::string& s) {
    try {
      from_text(s);
    } catch (const fasa::error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string truncated = error_of(text.substr(0, text.size() / 2));
  CAPTURE(truncated);
  CHECK(truncated.find("calibration stream: not valid JSON at byte offset") != std::string::npos);
  CHECK(truncated.find("truncated") != std::string::npos);

  const std::string garbage = error_of("format = fasa-calibration\nversion = 1\n");
  CAPTURE(garbage);
  CHECK(garbage.find("calibration stream: not valid JSON at byte offset") != std::string::npos);

  CHECK(error_of("").find("not valid JSON: the input is empty") != std::string::npos);
  CHECK(
      error_of("[1, 2, 3]").find("expected a JSON object at the top level, found an array of 3") !=
      std::string::npos);
  CHECK(
      error_of(R"({"name": "x"})").find("`format` is missing; is this a fasa calibration file?") !=
      std::string::npos);
  CHECK(error_of(text + "}").find("not valid JSON") != std::string::npos);

  // from a path, the message names the file
  temp_file f("truncated.json");
  {
    std::ofstream os(f.path);
    os << text.substr(0, text.size() - 10);
  }
  const std::string named = "calibration file '" + f.path.string() + "': ";
  const std::string not_json = named + "not valid JSON at byte offset";
  CHECK_THROWS_WITH_AS(read_calibration(f.path), doctest::Contains(not_json.c_str()), fasa::error);
  {
    json j = json::parse(text);
    j["head_dim"] = "eight";
    std::ofstream os(f.path);
    os << j.dump();
  }
  const std::string bad_type =
      named + "field `head_dim`: expected an integer, found string \"eight\"";
  CHECK_THROWS_WITH_AS(read_calibration(f.path), doctest::Contains(bad_type.c_str()), fasa::error);
  temp_file missing("does_not_exist.json");
  CHECK_THROWS_WITH_AS(read_calibration(missing.path), doctest::Contains("does not exist"),
                       fasa::error);
}

TEST_CASE("calib: an invalid calibration is never written") {
  calibration c = small_calibration();
  c.dominant[1][2] = {3, 3};
  std::ostringstream os;
  CHECK_THROWS_WITH_AS(write_calibration(c, os),
                       doctest::Contains("calibration: field `dominant[1][2][1]`: expected "
                                         "distinct FC indices, found 3 twice"),
                       fasa::error);
  c = small_calibration();
  c.mean_ca.pop_back();
  CHECK_THROWS_WITH_AS(write_calibration(c, os), doctest::Contains("field `mean_ca`: expected"),
                       fasa::error);
  c = small_calibration();
  c.mean_ca[((1 * 2 + 1) * 4 + 0) * 4 + 3] = std::nan("");
  CHECK_THROWS_WITH_AS(write_calibration(c, os), doctest::Contains("field `mean_ca[1][1][0][3]`"),
                       fasa::error);
  CHECK(os.str().empty());
}

namespace {

// A positional encoding defined here: only the contract (no layout or mapping members), with
// interleaved FCs but for FC 2, whose dims are swapped.
struct odd_encoding {
  using policy_tag = fasa::positional_encoding_tag;
  int head_dim() const { return 8; }
  int num_fcs() const { return 4; }
  fasa::dim_pair fc_dims(int i) const {
    return i == 2 ? fasa::dim_pair{5, 4} : fasa::dim_pair{2 * i, 2 * i + 1};
  }
  void rotate(float*, std::int64_t) const {}
};
static_assert(fasa::PositionalEncoding<odd_encoding>);

}  // namespace

TEST_CASE("calib: calibration checks its RoPE and shape and builds a layer's dominant_plan") {
  const calibration c = small_calibration();
  const fasa::attention_shape shape{4, 2, 8, 128};
  const rope pe(8, 500000.0, rope_layout::interleaved);
  fasa::calib::check_compatible(c, pe, shape);

  CHECK_THROWS_WITH_AS(
      fasa::calib::check_compatible(c, rope(8, 500000.0, rope_layout::rotate_half), shape),
      doctest::Contains("RoPE layout interleaved differs from the positional "
                        "encoding's rotate_half"),
      fasa::error);
  CHECK_THROWS_WITH_AS(
      fasa::calib::check_compatible(
          c, rope(8, 500000.0, rope_layout::interleaved, fc_mapping::adjacent_dims), shape),
      doctest::Contains("fc_mapping rotation_pairs differs"), fasa::error);
  CHECK_THROWS_WITH_AS(fasa::calib::check_compatible(c, rope::interleaved(16, 500000.0), shape),
                       doctest::Contains("head_dim 8 differs from the positional encoding's 16"),
                       fasa::error);
  CHECK_THROWS_WITH_AS(fasa::calib::check_compatible(c, rope::interleaved(8, 10000.0), shape),
                       doctest::Contains("RoPE theta 500000 differs"), fasa::error);
  CHECK_THROWS_WITH_AS(
      fasa::calib::check_compatible(
          c, rope(8, 500000.0, rope_layout::interleaved, fc_mapping::rotation_pairs, {}, 4), shape),
      doctest::Contains("rotary_dim 8 differs"), fasa::error);
  CHECK_THROWS_WITH_AS(fasa::calib::check_compatible(c, pe, fasa::attention_shape{8, 2, 8, 128}),
                       doctest::Contains("num_q_heads/num_kv_heads 4/2 differ"), fasa::error);
  CHECK_THROWS_WITH_AS(fasa::calib::check_compatible(c, odd_encoding{}, shape),
                       doctest::Contains("FC 2 is dims (4, 5) in the calibration (layout "
                                         "interleaved, fc_mapping rotation_pairs) but (5, 4)"),
                       fasa::error);

  for (int layer = 0; layer < 2; ++layer) {
    const fasa::dominant_plan plan = fasa::calib::make_dominant_plan(c, pe, shape, layer);
    CHECK(plan.n_tip() == 2);
    CHECK(plan.granularity() == selection_granularity::query_head);
    for (int u = 0; u < 4; ++u) {
      const auto dims = plan.unit_dims(u);
      const auto& fcs = c.dominant[static_cast<std::size_t>(layer)][static_cast<std::size_t>(u)];
      REQUIRE(dims.size() == 4);
      for (std::size_t i = 0; i < 2; ++i) {
        CHECK(dims[2 * i] == 2 * fcs[i]);
        CHECK(dims[2 * i + 1] == 2 * fcs[i] + 1);
      }
    }
  }
  CHECK_THROWS_WITH_AS(fasa::calib::make_dominant_plan(c, pe, shape, 2),
                       doctest::Contains("layer 2 outside [0, num_layers=2)"), fasa::error);
}

TEST_CASE("calib: make_calibration turns an accumulated run into a file that reads back") {
  const rope pe = rope::rotate_half(16, 10000.0);
  fasa::calib::ca_accumulator acc(
      pe, fasa::calib::ca_config{2, 4, 2, selection_granularity::kv_head, {4, 16, 64}});
  std::uint32_t seed = 70;
  for (std::int64_t t : {20, 21, 22})
    for (int l = 0; l < 2; ++l) {
      const auto keys = fasa::test::random_vector(static_cast<std::size_t>(2 * t * 16), ++seed);
      const auto q = fasa::test::random_vector(4 * 16, ++seed);
      acc.add_layer(l, q.data(), keys.data(), t);
    }
  const calibration c = fasa::calib::make_calibration(acc, pe, {"synthetic", ""}, 16, 3);
  CHECK(c.steps == 3);
  CHECK(c.granularity == selection_granularity::kv_head);
  CHECK(c.rope.layout == rope_layout::rotate_half);
  CHECK(c.rope.rotary_dim == 16);
  CHECK(c.ca() == acc.mean());
  CHECK(c.dominant == fasa::calib::choose_dominant_fcs(acc.mean(), 16, 3));
  CHECK(from_text(to_text(c)) == c);
  CHECK_THROWS_WITH_AS(
      fasa::calib::make_calibration(acc, rope::interleaved(16, 10000.0), {"synthetic", ""}, 16, 3),
      doctest::Contains("the accumulator's FC map is not the RoPE's"), fasa::error);
  CHECK_THROWS_WITH_AS(
      fasa::calib::make_calibration(acc, pe, {"synthetic", ""}, 32, 3),
      doctest::Contains("K = 32 is not one of the calibrated k_values [4, 16, 64]"), fasa::error);
}
