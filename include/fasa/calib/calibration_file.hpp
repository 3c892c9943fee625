// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// The calibration file: the mean contextual agreement of a calibration run and the dominant FCs
// chosen from it (FASA Alg. 1), with everything needed to check that it fits the model it is
// applied to. JSON (nlohmann/json), versioned; docs/calibration.md describes every field.
//
//   {"format": "fasa-calibration", "version": 1,
//    "model": {"name": str, "file_sha256": str},
//    "num_layers": int, "num_q_heads": int, "num_kv_heads": int, "head_dim": int,
//    "rope": {"layout": "interleaved"|"rotate_half",
//             "fc_mapping": "rotation_pairs"|"adjacent_dims", "theta": number, "rotary_dim": int},
//    "granularity": "query_head"|"kv_head",
//    "k_values": [int, ...], "steps": int,
//    "selection": {"k": int, "n_tip": int},
//    "mean_ca": [n_K][num_layers][num_units][head_dim/2] numbers in [0, 1],
//    "dominant": [num_layers][num_units][n_tip] FC indices}
//
// The reader checks every field (presence, JSON type, range, shape against the others) and
// names the source, the field path (`mean_ca[0][3][2]`), what it expected and what it found.
// Unknown fields are ignored, so a later writer may add optional fields without a new version;
// anything a version-1 reader must understand changes the version, and newer versions are
// refused. Not part of the umbrella header fasa/fasa.hpp, because of the nlohmann dependency.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <istream>
#include <limits>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "fasa/calib/contextual_agreement.hpp"
#include "fasa/calib/dominant_sets.hpp"
#include "fasa/compose/dominant_plan.hpp"
#include "fasa/core/error.hpp"
#include "fasa/core/shape.hpp"
#include "fasa/policies/concepts.hpp"
#include "fasa/policies/positional/rope.hpp"

namespace fasa::calib {

inline constexpr std::string_view calibration_format = "fasa-calibration";
inline constexpr int calibration_version = 1;  // the newest version this reader understands

struct calibration {
  struct model_info {
    std::string name;         // free text, e.g. "Llama-3.2-1B-Instruct"
    std::string file_sha256;  // SHA-256 of the model file, 64 lowercase hex digits, or empty
    friend bool operator==(const model_info&, const model_info&) = default;
  };
  struct rope_info {
    positional::rope_layout layout = positional::rope_layout::interleaved;
    positional::fc_mapping mapping = positional::fc_mapping::rotation_pairs;
    double theta = 10000.0;
    int rotary_dim = 0;  // rotated dims per head, even, in [2, head_dim]
    friend bool operator==(const rope_info&, const rope_info&) = default;
  };
  struct selection_info {
    int k = 0;      // the window K (one of k_values) whose mean CA chose `dominant`
    int n_tip = 0;  // dominant FCs per unit
    friend bool operator==(const selection_info&, const selection_info&) = default;
  };

  model_info model;
  int num_layers = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  rope_info rope;
  selection_granularity granularity = selection_granularity::query_head;
  std::vector<int> k_values;  // [n_K] strictly ascending, positive
  std::int64_t steps = 0;     // decode steps averaged per (layer, unit)
  selection_info selection;
  std::vector<double> mean_ca;  // [n_K, num_layers, num_units, head_dim/2], flat, row-major
  dominant_fc_sets dominant;    // [num_layers][num_units][n_tip]

  int num_units() const {
    return granularity == selection_granularity::query_head ? num_q_heads : num_kv_heads;
  }
  int num_fcs() const { return head_dim / 2; }

  // The mean CA as a table (for choose_dominant_fcs, sparsity).
  ca_table ca() const {
    ca_table t;
    t.k_values = k_values;
    t.num_layers = num_layers;
    t.num_units = num_units();
    t.num_fcs = num_fcs();
    t.values = mean_ca;
    return t;
  }
  // The RoPE the calibration was measured under (without frequency scaling, which the file
  // does not record: it changes frequencies, not which dims form an FC).
  positional::rope rope_encoding() const {
    return positional::rope(head_dim, rope.theta, rope.layout, rope.mapping, {}, rope.rotary_dim);
  }
  // FC i -> dims under the calibration's layout and mapping.
  fc_table fcs() const { return fc_table(rope_encoding()); }

  // Throws fasa::error naming the first invalid field (the same checks the reader makes).
  void validate() const;

  friend bool operator==(const calibration&, const calibration&) = default;
};

// ---------------------------------------------------------------------------------------------
namespace detail {

using json = nlohmann::json;

inline std::string field_path(std::string_view parent, std::string_view key) {
  return parent.empty() ? std::string(key) : std::string(parent) + "." + std::string(key);
}
inline std::string index_path(std::string_view parent, std::size_t i) {
  return std::string(parent) + "[" + std::to_string(i) + "]";
}
inline std::string mean_ca_path(std::size_t m, std::size_t l, std::size_t u, std::size_t i) {
  return index_path(index_path(index_path(index_path("mean_ca", m), l), u), i);
}

// What a JSON value is, for "found ..." in messages.
inline std::string describe(const json& j) {
  switch (j.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return std::string("boolean ") + (j.get<bool>() ? "true" : "false");
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "integer " + j.dump();
    case json::value_t::number_float:
      return "number " + j.dump();
    case json::value_t::string: {
      std::string s = j.dump();
      if (s.size() > 42) s = s.substr(0, 40) + "...";
      return "string " + s;
    }
    case json::value_t::array:
      return "an array of " + std::to_string(j.size()) + " elements";
    case json::value_t::object:
      return "an object";
    default:
      return j.type_name();
  }
}

// Every failure: "<source>: field `<path>`: <what>".
#define FASA_CALIB_FIELD_FAIL(source, path, ...) \
  FASA_FAIL(source, ": field `", path, "`: ", __VA_ARGS__)

inline void check_range(std::int64_t v, std::int64_t lo, std::int64_t hi, std::string_view path,
                        std::string_view src, std::string_view what = "an integer") {
  if (v < lo || v > hi) {
    if (hi == std::numeric_limits<std::int64_t>::max() || hi == std::numeric_limits<int>::max())
      FASA_CALIB_FIELD_FAIL(src, path, "expected ", what, " >= ", lo, ", found ", v);
    FASA_CALIB_FIELD_FAIL(src, path, "expected ", what, " in [", lo, ", ", hi, "], found ", v);
  }
}

inline bool is_sha256_hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// The checks on scalars and short lists, shared by the reader and calibration::validate; they
// run before any array is read, because the arrays' shapes follow from these fields.
inline void validate_header(const calibration& c, std::string_view src) {
  if (!c.model.file_sha256.empty() && !is_sha256_hex(c.model.file_sha256))
    FASA_CALIB_FIELD_FAIL(src, "model.file_sha256",
                          "expected an empty string or 64 lowercase hex digits, found \"",
                          c.model.file_sha256, "\"");
  constexpr std::int64_t int_max = std::numeric_limits<int>::max();
  check_range(c.num_layers, 1, int_max, "num_layers", src);
  check_range(c.num_q_heads, 1, int_max, "num_q_heads", src);
  check_range(c.num_kv_heads, 1, int_max, "num_kv_heads", src);
  if (c.num_q_heads % c.num_kv_heads != 0)
    FASA_CALIB_FIELD_FAIL(src, "num_kv_heads", "expected a divisor of num_q_heads (", c.num_q_heads,
                          ") for GQA, found ", c.num_kv_heads);
  check_range(c.head_dim, 2, int_max, "head_dim", src);
  if (c.head_dim % 2 != 0)
    FASA_CALIB_FIELD_FAIL(src, "head_dim",
                          "expected an even number (an FC is a pair of dims), "
                          "found ",
                          c.head_dim);
  if (!(c.rope.theta > 0.0 && std::isfinite(c.rope.theta)))
    FASA_CALIB_FIELD_FAIL(src, "rope.theta", "expected a positive finite number, found ",
                          c.rope.theta);
  check_range(c.rope.rotary_dim, 2, c.head_dim, "rope.rotary_dim", src);
  if (c.rope.rotary_dim % 2 != 0)
    FASA_CALIB_FIELD_FAIL(src, "rope.rotary_dim", "expected an even number, found ",
                          c.rope.rotary_dim);
  if (c.k_values.empty())
    FASA_CALIB_FIELD_FAIL(src, "k_values", "expected at least one window K, found an empty list");
  for (std::size_t i = 0; i < c.k_values.size(); ++i) {
    check_range(c.k_values[i], 1, int_max, index_path("k_values", i), src);
    if (i > 0 && c.k_values[i] <= c.k_values[i - 1])
      FASA_CALIB_FIELD_FAIL(src, index_path("k_values", i), "expected a window above ",
                            c.k_values[i - 1], " (k_values must be strictly ascending), found ",
                            c.k_values[i]);
  }
  check_range(c.steps, 1, std::numeric_limits<std::int64_t>::max(), "steps", src);
  bool k_listed = false;
  for (int k : c.k_values) k_listed = k_listed || k == c.selection.k;
  if (!k_listed) {
    std::string list;
    for (int k : c.k_values) list += (list.empty() ? "" : ", ") + std::to_string(k);
    FASA_CALIB_FIELD_FAIL(src, "selection.k", "expected one of k_values [", list, "], found ",
                          c.selection.k);
  }
  if (c.selection.n_tip < 1 || c.selection.n_tip > c.num_fcs())
    FASA_CALIB_FIELD_FAIL(src, "selection.n_tip", "N_tip (", c.selection.n_tip,
                          ") must be between 1 and head_dim/2 (", c.num_fcs(), ")");
}

// The checks on mean_ca and dominant (shapes and values).
inline void validate_arrays(const calibration& c, std::string_view src) {
  const auto nk = c.k_values.size();
  const auto nl = static_cast<std::size_t>(c.num_layers);
  const auto nu = static_cast<std::size_t>(c.num_units());
  const auto nf = static_cast<std::size_t>(c.num_fcs());
  if (c.mean_ca.size() != nk * nl * nu * nf)
    FASA_CALIB_FIELD_FAIL(
        src, "mean_ca", "expected n_K * num_layers * num_units * head_dim/2 = ", nk, " * ", nl,
        " * ", nu, " * ", nf, " = ", nk * nl * nu * nf, " numbers, found ", c.mean_ca.size());
  for (std::size_t at = 0; at < c.mean_ca.size(); ++at) {
    const double v = c.mean_ca[at];
    if (!(v >= 0.0 && v <= 1.0))
      FASA_CALIB_FIELD_FAIL(
          src, mean_ca_path(at / (nl * nu * nf), at / (nu * nf) % nl, at / nf % nu, at % nf),
          "expected a mean CA in [0, 1], found ", v);
  }
  if (c.dominant.size() != nl)
    FASA_CALIB_FIELD_FAIL(src, "dominant", "expected num_layers = ", nl, " layers, found ",
                          c.dominant.size());
  const auto n_tip = static_cast<std::size_t>(c.selection.n_tip);
  for (std::size_t l = 0; l < nl; ++l) {
    const auto& layer = c.dominant[l];
    const std::string lpath = index_path("dominant", l);
    if (layer.size() != nu)
      FASA_CALIB_FIELD_FAIL(src, lpath, "expected num_units = ", nu, " units (",
                            to_string(c.granularity), " granularity), found ", layer.size());
    for (std::size_t u = 0; u < nu; ++u) {
      const auto& set = layer[u];
      const std::string upath = index_path(lpath, u);
      if (set.size() != n_tip)
        FASA_CALIB_FIELD_FAIL(src, upath, "expected selection.n_tip = ", n_tip,
                              " FC indices, found ", set.size());
      std::vector<bool> seen(nf, false);
      for (std::size_t i = 0; i < n_tip; ++i) {
        const int fc = set[i];
        check_range(fc, 0, static_cast<std::int64_t>(nf) - 1, index_path(upath, i), src,
                    "an FC index");
        if (seen[static_cast<std::size_t>(fc)])
          FASA_CALIB_FIELD_FAIL(src, index_path(upath, i), "expected distinct FC indices, found ",
                                fc, " twice");
        seen[static_cast<std::size_t>(fc)] = true;
      }
    }
  }
}

// ---- reading --------------------------------------------------------------------------------

inline const json& member(const json& obj, std::string_view key, std::string_view parent,
                          std::string_view src) {
  const auto it = obj.find(key);
  if (it == obj.end()) {
    const std::string path = field_path(parent, key);
    FASA_FAIL(src, ": field `", path, "` is missing");
  }
  return *it;
}

inline const json& expect_object(const json& j, std::string_view path, std::string_view src) {
  if (!j.is_object()) FASA_CALIB_FIELD_FAIL(src, path, "expected an object, found ", describe(j));
  return j;
}

inline std::string read_string(const json& j, std::string_view path, std::string_view src) {
  if (!j.is_string()) FASA_CALIB_FIELD_FAIL(src, path, "expected a string, found ", describe(j));
  return j.get<std::string>();
}

inline std::int64_t read_int(const json& j, std::string_view path, std::string_view src) {
  if (j.is_number_unsigned()) {
    const auto v = j.get<std::uint64_t>();
    if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      FASA_CALIB_FIELD_FAIL(src, path, "expected an integer that fits 64 bits, found ", j.dump());
    return static_cast<std::int64_t>(v);
  }
  if (!j.is_number_integer())
    FASA_CALIB_FIELD_FAIL(src, path, "expected an integer, found ", describe(j));
  return j.get<std::int64_t>();
}

// An int field: an integer that fits int (further ranges are validate_header's).
inline int read_int32(const json& j, std::string_view path, std::string_view src) {
  const std::int64_t v = read_int(j, path, src);
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
    FASA_CALIB_FIELD_FAIL(src, path, "expected an integer that fits 32 bits, found ", v);
  return static_cast<int>(v);
}

inline double read_number(const json& j, std::string_view path, std::string_view src) {
  if (!j.is_number()) FASA_CALIB_FIELD_FAIL(src, path, "expected a number, found ", describe(j));
  return j.get<double>();
}

// An array of exactly `size` elements (any size when size < 0).
inline const json& expect_array(const json& j, std::string_view path, std::string_view src,
                                std::int64_t size = -1, std::string_view size_meaning = "") {
  if (!j.is_array()) FASA_CALIB_FIELD_FAIL(src, path, "expected an array, found ", describe(j));
  if (size >= 0 && static_cast<std::int64_t>(j.size()) != size)
    FASA_CALIB_FIELD_FAIL(src, path, "expected an array of ", size, " elements (", size_meaning,
                          "), found ", j.size());
  return j;
}

template <class Enum, std::size_t N>
Enum read_enum(const json& j, std::string_view path, std::string_view src,
               const std::pair<std::string_view, Enum> (&names)[N]) {
  const std::string s = read_string(j, path, src);
  for (const auto& [name, value] : names)
    if (s == name) return value;
  std::string known;
  for (const auto& [name, value] : names)
    known += (known.empty() ? "\"" : ", \"") + std::string(name) + "\"";
  FASA_CALIB_FIELD_FAIL(src, path, "expected one of ", known, ", found \"", s, "\"");
}

inline calibration parse_calibration(const json& root, std::string_view src) {
  using positional::fc_mapping;
  using positional::rope_layout;
  if (!root.is_object())
    FASA_FAIL(src, ": expected a JSON object at the top level, found ", describe(root));
  calibration c;

  // What the file is, before anything else, so that a foreign JSON file is named as such.
  const auto fmt_it = root.find("format");
  if (fmt_it == root.end())
    FASA_FAIL(src, ": field `format` is missing; is this a fasa calibration file?");
  const std::string format = read_string(*fmt_it, "format", src);
  if (format != calibration_format)
    FASA_CALIB_FIELD_FAIL(src, "format", "expected \"", calibration_format, "\", found \"", format,
                          "\"");
  const std::int64_t version = read_int(member(root, "version", "", src), "version", src);
  if (version < 1)
    FASA_CALIB_FIELD_FAIL(src, "version", "expected an integer >= 1, found ", version);
  if (version > calibration_version)
    FASA_CALIB_FIELD_FAIL(src, "version", "found version ", version,
                          ", newer than this reader understands (", calibration_version,
                          "); update fasa to read it");

  const json& model = expect_object(member(root, "model", "", src), "model", src);
  c.model.name = read_string(member(model, "name", "model", src), "model.name", src);
  c.model.file_sha256 =
      read_string(member(model, "file_sha256", "model", src), "model.file_sha256", src);

  c.num_layers = read_int32(member(root, "num_layers", "", src), "num_layers", src);
  c.num_q_heads = read_int32(member(root, "num_q_heads", "", src), "num_q_heads", src);
  c.num_kv_heads = read_int32(member(root, "num_kv_heads", "", src), "num_kv_heads", src);
  c.head_dim = read_int32(member(root, "head_dim", "", src), "head_dim", src);

  const json& rope = expect_object(member(root, "rope", "", src), "rope", src);
  static constexpr std::pair<std::string_view, rope_layout> layouts[] = {
      {"interleaved", rope_layout::interleaved}, {"rotate_half", rope_layout::rotate_half}};
  static constexpr std::pair<std::string_view, fc_mapping> mappings[] = {
      {"rotation_pairs", fc_mapping::rotation_pairs}, {"adjacent_dims", fc_mapping::adjacent_dims}};
  static constexpr std::pair<std::string_view, selection_granularity> granularities[] = {
      {"query_head", selection_granularity::query_head},
      {"kv_head", selection_granularity::kv_head}};
  c.rope.layout = read_enum(member(rope, "layout", "rope", src), "rope.layout", src, layouts);
  c.rope.mapping =
      read_enum(member(rope, "fc_mapping", "rope", src), "rope.fc_mapping", src, mappings);
  c.rope.theta = read_number(member(rope, "theta", "rope", src), "rope.theta", src);
  c.rope.rotary_dim = read_int32(member(rope, "rotary_dim", "rope", src), "rope.rotary_dim", src);

  c.granularity =
      read_enum(member(root, "granularity", "", src), "granularity", src, granularities);

  const json& ks = expect_array(member(root, "k_values", "", src), "k_values", src);
  for (std::size_t i = 0; i < ks.size(); ++i)
    c.k_values.push_back(read_int32(ks[i], index_path("k_values", i), src));
  c.steps = read_int(member(root, "steps", "", src), "steps", src);

  const json& sel = expect_object(member(root, "selection", "", src), "selection", src);
  c.selection.k = read_int32(member(sel, "k", "selection", src), "selection.k", src);
  c.selection.n_tip = read_int32(member(sel, "n_tip", "selection", src), "selection.n_tip", src);

  validate_header(c, src);  // the arrays' shapes below follow from these fields

  const auto nk = static_cast<std::int64_t>(c.k_values.size());
  const std::int64_t nl = c.num_layers, nu = c.num_units(), nf = c.num_fcs();
  const std::string unit_meaning =
      std::string("num_units = ") + (c.granularity == selection_granularity::query_head
                                         ? "num_q_heads under query_head granularity"
                                         : "num_kv_heads under kv_head granularity");
  const json& ca =
      expect_array(member(root, "mean_ca", "", src), "mean_ca", src, nk, "one per k_values entry");
  c.mean_ca.reserve(static_cast<std::size_t>(nk * nl * nu * nf));
  for (std::size_t m = 0; m < ca.size(); ++m) {
    const std::string pm = index_path("mean_ca", m);
    const json& per_k = expect_array(ca[m], pm, src, nl, "num_layers");
    for (std::size_t l = 0; l < per_k.size(); ++l) {
      const std::string pl = index_path(pm, l);
      const json& layer = expect_array(per_k[l], pl, src, nu, unit_meaning);
      for (std::size_t u = 0; u < layer.size(); ++u) {
        const std::string pu = index_path(pl, u);
        const json& unit = expect_array(layer[u], pu, src, nf, "head_dim/2 FCs");
        for (std::size_t i = 0; i < unit.size(); ++i) {
          const json& v = unit[i];
          if (!v.is_number())  // path built only on failure: mean_ca has ~10^5-10^6 entries
            FASA_CALIB_FIELD_FAIL(src, index_path(pu, i), "expected a number, found ", describe(v));
          c.mean_ca.push_back(v.get<double>());
        }
      }
    }
  }

  const json& dom =
      expect_array(member(root, "dominant", "", src), "dominant", src, nl, "num_layers");
  c.dominant.resize(static_cast<std::size_t>(nl));
  for (std::size_t l = 0; l < dom.size(); ++l) {
    const std::string pl = index_path("dominant", l);
    const json& layer = expect_array(dom[l], pl, src, nu, unit_meaning);
    auto& out_layer = c.dominant[l];
    out_layer.resize(static_cast<std::size_t>(nu));
    for (std::size_t u = 0; u < layer.size(); ++u) {
      const std::string pu = index_path(pl, u);
      const json& set = expect_array(layer[u], pu, src, c.selection.n_tip, "selection.n_tip");
      for (std::size_t i = 0; i < set.size(); ++i)
        out_layer[u].push_back(read_int32(set[i], index_path(pu, i), src));
    }
  }

  validate_arrays(c, src);
  return c;
}

// ---- writing --------------------------------------------------------------------------------

// JSON with containers of scalars on one line and containers of containers one element per
// line: the metadata stays readable and mean_ca is one line per (K, layer, unit).
inline void emit(std::ostream& os, const nlohmann::ordered_json& j, int indent) {
  const bool nested =
      (j.is_array() || j.is_object()) &&
      std::any_of(j.begin(), j.end(), [](const auto& e) { return e.is_array() || e.is_object(); });
  if (!nested) {
    if (!j.is_array() && !j.is_object()) {
      os << j.dump();
      return;
    }
    os << (j.is_array() ? '[' : '{');
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it != j.begin()) os << ", ";
      if (j.is_object()) os << nlohmann::ordered_json(it.key()).dump() << ": ";
      os << it->dump();
    }
    os << (j.is_array() ? ']' : '}');
    return;
  }
  const std::string pad(static_cast<std::size_t>(indent) + 2, ' ');
  os << (j.is_array() ? "[\n" : "{\n");
  bool first = true;
  for (auto it = j.begin(); it != j.end(); ++it) {
    os << (first ? "" : ",\n") << pad;
    first = false;
    if (j.is_object()) os << nlohmann::ordered_json(it.key()).dump() << ": ";
    emit(os, *it, indent + 2);
  }
  os << '\n' << std::string(static_cast<std::size_t>(indent), ' ') << (j.is_array() ? ']' : '}');
}

}  // namespace detail

inline void calibration::validate() const {
  detail::validate_header(*this, "calibration");
  detail::validate_arrays(*this, "calibration");
}

// Writes c as a version-1 calibration file (validating it first: an invalid calibration is
// never written).
inline void write_calibration(const calibration& c, std::ostream& os) {
  c.validate();
  using ojson = nlohmann::ordered_json;
  ojson j;
  j["format"] = calibration_format;
  j["version"] = calibration_version;
  j["model"] = {{"name", c.model.name}, {"file_sha256", c.model.file_sha256}};
  j["num_layers"] = c.num_layers;
  j["num_q_heads"] = c.num_q_heads;
  j["num_kv_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["rope"] = {{"layout", positional::to_string(c.rope.layout)},
               {"fc_mapping", positional::to_string(c.rope.mapping)},
               {"theta", c.rope.theta},
               {"rotary_dim", c.rope.rotary_dim}};
  j["granularity"] = to_string(c.granularity);
  j["k_values"] = c.k_values;
  j["steps"] = c.steps;
  j["selection"] = {{"k", c.selection.k}, {"n_tip", c.selection.n_tip}};
  const auto nk = c.k_values.size();
  const auto nl = static_cast<std::size_t>(c.num_layers);
  const auto nu = static_cast<std::size_t>(c.num_units());
  const auto nf = static_cast<std::size_t>(c.num_fcs());
  ojson ca = ojson::array();
  for (std::size_t m = 0; m < nk; ++m) {
    ojson per_k = ojson::array();
    for (std::size_t l = 0; l < nl; ++l) {
      ojson layer = ojson::array();
      for (std::size_t u = 0; u < nu; ++u) {
        const auto first =
            c.mean_ca.begin() + static_cast<std::ptrdiff_t>(((m * nl + l) * nu + u) * nf);
        layer.push_back(ojson(std::vector<double>(first, first + static_cast<std::ptrdiff_t>(nf))));
      }
      per_k.push_back(std::move(layer));
    }
    ca.push_back(std::move(per_k));
  }
  j["mean_ca"] = std::move(ca);
  j["dominant"] = c.dominant;
  detail::emit(os, j, 0);
  os << '\n';
  FASA_CHECK(os.good(), "write_calibration: writing the calibration failed (stream error)");
}

inline void write_calibration(const calibration& c, const std::filesystem::path& path) {
  std::ofstream os(path, std::ios::binary);
  FASA_CHECK(os.is_open(), "write_calibration: cannot open '", path.string(), "' for writing");
  write_calibration(c, os);
  os.close();
  FASA_CHECK(!os.fail(), "write_calibration: writing '", path.string(), "' failed");
}

// Reads and validates a calibration. `source` names the stream in error messages.
inline calibration read_calibration(std::istream& is,
                                    std::string_view source = "calibration stream") {
  FASA_CHECK(is.peek() != std::istream::traits_type::eof(), source,
             ": not valid JSON: the input is empty");
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(is);
  } catch (const nlohmann::json::parse_error& e) {
    FASA_FAIL(source, ": not valid JSON at byte offset ", e.byte, " (", e.what(),
              "); a truncated or non-JSON file?");
  } catch (const nlohmann::json::exception& e) {
    // The parser's other errors: a number too large for any JSON type (out_of_range 406).
    FASA_FAIL(source, ": not a calibration file: ", e.what());
  }
  try {
    return detail::parse_calibration(root, source);
  } catch (const nlohmann::json::exception& e) {  // the checks above should make this unreachable
    FASA_FAIL(source, ": malformed calibration (", e.what(), ")");
  }
}

inline calibration read_calibration(const std::filesystem::path& path) {
  const std::string source = "calibration file '" + path.string() + "'";
  std::error_code ec;
  FASA_CHECK(std::filesystem::exists(path, ec), source, " does not exist");
  std::ifstream is(path, std::ios::binary);
  FASA_CHECK(is.is_open(), source, " cannot be opened for reading");
  return read_calibration(is, source);
}

// ---------------------------------------------------------------------------------------------
// Builds a calibration from an accumulated run: mean CA, steps, and the dominant FCs chosen at
// window k with n_tip per unit (FASA Alg. 1). pe must be the RoPE the accumulator's FC map came
// from.
inline calibration make_calibration(const ca_accumulator& acc, const positional::rope& pe,
                                    calibration::model_info model, int k, int n_tip) {
  FASA_CHECK(acc.fcs() == fc_table(pe),
             "make_calibration: the accumulator's FC map is not the RoPE's (layout ",
             positional::to_string(pe.layout()), ", fc_mapping ",
             positional::to_string(pe.mapping()), ", head_dim ", pe.head_dim(), ")");
  const ca_config& cfg = acc.config();
  calibration c;
  c.model = std::move(model);
  c.num_layers = cfg.num_layers;
  c.num_q_heads = cfg.num_q_heads;
  c.num_kv_heads = cfg.num_kv_heads;
  c.head_dim = pe.head_dim();
  c.rope = {pe.layout(), pe.mapping(), pe.theta(), pe.rotary_dim()};
  c.granularity = cfg.granularity;
  c.k_values = cfg.k_values;
  c.steps = acc.uniform_steps();
  const ca_table mean = acc.mean();
  c.selection = {k, n_tip};
  c.dominant = choose_dominant_fcs(mean, k, n_tip);
  c.mean_ca = mean.values;
  c.validate();
  return c;
}

// Throws unless the calibration fits this positional encoding and attention shape: same
// head_dim and head counts, and the same FC -> dims map (for fasa's rope also the same layout,
// mapping, rotary_dim and theta, named in the message). A calibration measured on other dims
// would silently pick the wrong FCs, so nothing here is lenient.
template <PositionalEncoding PE>
void check_compatible(const calibration& c, const PE& pe, const attention_shape& shape) {
  FASA_CHECK(pe.head_dim() == c.head_dim, "calibration: head_dim ", c.head_dim,
             " differs from the positional encoding's ", pe.head_dim());
  FASA_CHECK(shape.head_dim == c.head_dim, "calibration: head_dim ", c.head_dim,
             " differs from the attention shape's ", shape.head_dim);
  FASA_CHECK(shape.num_q_heads == c.num_q_heads && shape.num_kv_heads == c.num_kv_heads,
             "calibration: num_q_heads/num_kv_heads ", c.num_q_heads, "/", c.num_kv_heads,
             " differ from the attention shape's ", shape.num_q_heads, "/", shape.num_kv_heads);
  if constexpr (requires {
                  { pe.layout() } -> std::same_as<positional::rope_layout>;
                  { pe.mapping() } -> std::same_as<positional::fc_mapping>;
                  { pe.rotary_dim() } -> std::same_as<int>;
                  { pe.theta() } -> std::same_as<double>;
                }) {
    FASA_CHECK(pe.layout() == c.rope.layout, "calibration: RoPE layout ",
               positional::to_string(c.rope.layout), " differs from the positional encoding's ",
               positional::to_string(pe.layout()));
    FASA_CHECK(pe.mapping() == c.rope.mapping, "calibration: fc_mapping ",
               positional::to_string(c.rope.mapping), " differs from the positional encoding's ",
               positional::to_string(pe.mapping()));
    FASA_CHECK(pe.rotary_dim() == c.rope.rotary_dim, "calibration: rotary_dim ", c.rope.rotary_dim,
               " differs from the positional encoding's ", pe.rotary_dim());
    FASA_CHECK(std::abs(pe.theta() - c.rope.theta) <= 1e-9 * c.rope.theta,
               "calibration: RoPE theta ", c.rope.theta, " differs from the positional encoding's ",
               pe.theta());
  }
  const fc_table mine = c.fcs();
  for (int i = 0; i < mine.num_fcs(); ++i) {
    const dim_pair want = mine[i];
    const dim_pair got = pe.fc_dims(i);
    FASA_CHECK(want == got, "calibration: FC ", i, " is dims (", want.first, ", ", want.second,
               ") in the calibration (layout ", positional::to_string(c.rope.layout),
               ", fc_mapping ", positional::to_string(c.rope.mapping), ") but (", got.first, ", ",
               got.second, ") in the positional encoding");
  }
}

// The dominant_plan of one layer: the calibration's dominant FCs at its granularity, mapped to
// dims by pe (checked compatible first).
template <PositionalEncoding PE>
dominant_plan make_dominant_plan(const calibration& c, const PE& pe, const attention_shape& shape,
                                 int layer) {
  check_compatible(c, pe, shape);
  FASA_CHECK(layer >= 0 && layer < c.num_layers, "make_dominant_plan: layer ", layer,
             " outside [0, num_layers=", c.num_layers, ")");
  return dominant_plan(pe, shape, c.granularity, c.dominant[static_cast<std::size_t>(layer)]);
}

#undef FASA_CALIB_FIELD_FAIL

}  // namespace fasa::calib
