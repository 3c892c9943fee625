// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Plots as SVG text, with nothing beyond the standard library: the figures the tools write next
// to their CSV/JSON (STYLE Sec. 6: "plots where a person would rather look than read").
//
//   heat_map     a matrix of values in [lo, hi] on a perceptually ordered colour scale, with
//                row and column labels, separators between groups of rows or columns (the
//                heads of a layer), outlined cells (the dominant FCs), optional values printed
//                in the cells, and a colour bar with ticks. The CA map of a calibration is
//                layers x (heads x FCs); a retrieval result is depth x context length.
//   line_chart   named series of (x, y) points on a linear or log2 x axis, with ticks, axis
//                titles and a legend.
//
// render(...) returns the document as a string; write_svg(path, svg) writes it. Every input is
// checked first and a bad one throws fasa::error naming the field and the value: an empty
// matrix, a NaN (never drawn as some colour, STYLE Sec. 4), a value outside [lo, hi], a label
// list of the wrong length, a non-positive x on a log2 axis. All text goes through escape(),
// so labels may hold any UTF-8, including markup characters.
//
// Size: a heat map's cells are binned to 256 colours (the resolution of an 8-bit colour map)
// and each colour's cells form one <path>, with runs of equal cells merged, so a 30 x 288 CA
// map is about 150 KB rather than the 500 KB of one <rect> per cell.

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fasa/core/error.hpp"

namespace fasa::eval::svg {

// ---------------------------------------------------------------------------------------------
// Colours.

struct rgb {
  std::uint8_t r = 0, g = 0, b = 0;
  friend bool operator==(const rgb&, const rgb&) = default;
};

// "#rrggbb".
inline std::string to_hex(rgb c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", c.r, c.g, c.b);
  return buf;
}

// Relative luminance of an sRGB colour (WCAG 2 / ITU-R BT.709 on linearised channels), in
// [0, 1]: what decides whether a value printed on the colour should be black or white.
inline double relative_luminance(rgb c) {
  auto lin = [](std::uint8_t v) {
    const double s = v / 255.0;
    return s <= 0.04045 ? s / 12.92 : std::pow((s + 0.055) / 1.055, 2.4);
  };
  return 0.2126 * lin(c.r) + 0.7152 * lin(c.g) + 0.0722 * lin(c.b);
}

// A colour scale: anchor colours at evenly spaced positions, linearly interpolated in sRGB
// between neighbours (which is also how an SVG gradient between the same stops is drawn, so the
// colour bar shows exactly the scale of the cells).
class color_scale {
 public:
  explicit color_scale(std::vector<rgb> anchors) : anchors_(std::move(anchors)) {
    FASA_CHECK(anchors_.size() >= 2, "color_scale needs at least two anchor colours, got ",
               anchors_.size());
  }

  // The colour at t in [0, 1].
  rgb at(double t) const {
    FASA_CHECK(t >= 0.0 && t <= 1.0, "color_scale::at: t must be in [0, 1], got ", t);
    const double x = t * static_cast<double>(anchors_.size() - 1);
    const std::size_t i = std::min(static_cast<std::size_t>(x), anchors_.size() - 2);
    const double f = x - static_cast<double>(i);
    const rgb a = anchors_[i], b = anchors_[i + 1];
    auto mix = [f](std::uint8_t u, std::uint8_t v) {
      return static_cast<std::uint8_t>(std::lround(u + f * (static_cast<double>(v) - u)));
    };
    return {mix(a.r, b.r), mix(a.g, b.g), mix(a.b, b.b)};
  }

  const std::vector<rgb>& anchors() const { return anchors_; }

 private:
  std::vector<rgb> anchors_;
};

// Viridis-like: dark blue-violet through teal and green to yellow. Its lightness rises
// monotonically from end to end, so a larger value always reads as brighter, and it stays
// ordered for readers with red-green colour blindness and in greyscale print. Nine anchors
// sampled from the published viridis map (van der Walt and Smith, 2015).
inline const color_scale& viridis() {
  static const color_scale scale({{0x44, 0x01, 0x54},
                                  {0x47, 0x2c, 0x7a},
                                  {0x3b, 0x51, 0x8b},
                                  {0x2c, 0x71, 0x8e},
                                  {0x21, 0x90, 0x8d},
                                  {0x27, 0xad, 0x81},
                                  {0x5c, 0xc8, 0x63},
                                  {0xaa, 0xdc, 0x32},
                                  {0xfd, 0xe7, 0x25}});
  return scale;
}

// Line colours: the Okabe-Ito palette, distinguishable under the common colour-vision
// deficiencies; series past the eighth reuse it with a dashed line.
inline rgb series_color(std::size_t i) {
  static constexpr std::array<rgb, 8> palette{{{0x00, 0x72, 0xb2},
                                               {0xd5, 0x5e, 0x00},
                                               {0x00, 0x9e, 0x73},
                                               {0xcc, 0x79, 0xa7},
                                               {0xe6, 0x9f, 0x00},
                                               {0x56, 0xb4, 0xe9},
                                               {0x00, 0x00, 0x00},
                                               {0xf0, 0xe4, 0x42}}};
  return palette[i % palette.size()];
}

// ---------------------------------------------------------------------------------------------
// Text.

// `text` made safe for XML character data and attribute values: & < > " ' become entities.
// Control characters that XML 1.0 forbids (everything below 0x20 except tab, newline and carriage
// return) become U+FFFD. Throws on invalid UTF-8, which no XML parser would accept; `what` names
// the string in the message.
inline std::string escape(std::string_view text, std::string_view what = "text") {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      switch (c) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&quot;";
          break;
        case '\'':
          out += "&apos;";
          break;
        default:
          if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            out += "\xEF\xBF\xBD";  // U+FFFD
          else
            out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    // A multi-byte UTF-8 sequence: lead byte, continuation bytes, no overlong forms, no
    // surrogates, nothing past U+10FFFF.
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 2;
      cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 3;
      cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 4;
      cp = c & 0x07u;
    }
    bool ok = n != 0 && i + n <= text.size();
    for (std::size_t k = 1; ok && k < n; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      ok = (cc & 0xC0u) == 0x80u;
      cp = cp << 6 | (cc & 0x3Fu);
    }
    ok = ok && !(n == 3 && cp < 0x800) && !(n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) &&
         !(cp >= 0xD800 && cp <= 0xDFFF);
    if (!ok) {
      char byte[8];
      std::snprintf(byte, sizeof byte, "0x%02x", c);
      FASA_FAIL("svg: ", what, " is not valid UTF-8 (byte ", i, " is ", byte, ")");
    }
    out.append(text.substr(i, n));
    i += n;
  }
  return out;
}

namespace detail {

// Appends every part to s: the one way this file builds its strings (no temporaries, and it
// sidesteps GCC 12's false -Wrestrict on `"literal" + std::string&&` under -O3, GCC bug 105329).
template <class... Parts>
void append(std::string& s, const Parts&... parts) {
  (s.append(std::string_view(parts)), ...);
}

// A coordinate or size: at most two decimals, no trailing zeros, never "-0".
inline std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  std::string s = buf;
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  if (s == "-0") s = "0";
  return s;
}

// A value with a fixed number of decimals (tick and cell labels).
inline std::string fixed(double v, int decimals) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", std::clamp(decimals, 0, 12), v);
  std::string s = buf;
  if (s.find_first_not_of("-0.") == std::string::npos && s.front() == '-') s.erase(0, 1);
  return s;
}

// Estimated width of a label in a sans-serif face: about 0.6 em per character (UTF-8
// continuation bytes do not count). Layout only needs to leave room, not to be exact.
inline double text_width(std::string_view s, double font_size) {
  std::size_t chars = 0;
  for (char c : s) chars += (static_cast<unsigned char>(c) & 0xC0u) != 0x80u;
  return 0.6 * font_size * static_cast<double>(chars);
}

// Ticks of a linear axis: about `target` values at a step of 1, 2 or 5 times a power of ten,
// inside [lo, hi], and the decimals their labels need.
struct ticks {
  std::vector<double> values;
  int decimals = 0;
};
inline ticks linear_ticks(double lo, double hi, int target = 5) {
  ticks t;
  const double span = hi - lo;
  FASA_CHECK(std::isfinite(span) && span > 0, "svg: an axis needs finite lo < hi, got [", lo, ", ",
             hi, "]");
  const double raw = span / std::max(target, 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  t.decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  const double eps = step * 1e-9;
  const auto first = static_cast<std::int64_t>(std::ceil((lo - eps) / step));
  for (std::int64_t k = first; static_cast<double>(k) * step <= hi + eps; ++k)
    t.values.push_back(k == 0 ? 0.0 : static_cast<double>(k) * step);
  return t;
}

// A power of two as a label: 1024 -> "1K", 65536 -> "64K", 1048576 -> "1M", 8 -> "8",
// 0.5 -> "0.5".
inline std::string pow2_label(double v) {
  char buf[32];
  if (v >= 1048576.0 && std::fmod(v, 1048576.0) == 0.0)
    std::snprintf(buf, sizeof buf, "%.0fM", v / 1048576.0);
  else if (v >= 1024.0 && std::fmod(v, 1024.0) == 0.0)
    std::snprintf(buf, sizeof buf, "%.0fK", v / 1024.0);
  else
    std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

inline void open_document(std::string& s, double width, double height) {
  s += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  detail::append(s, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", num(width),
                 "\" height=\"", num(height), "\" viewBox=\"0 0 ", num(width), " ", num(height),
                 "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n");
  s += "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
}

// <text> at (x, y); anchor: start | middle | end; rotate: degrees about (x, y).
inline void text(std::string& s, double x, double y, std::string_view content, double size,
                 std::string_view anchor = "start", double rotate = 0.0,
                 std::string_view extra = "") {
  detail::append(s, "<text x=\"", num(x), "\" y=\"", num(y), "\" font-size=\"", num(size), "\"");
  if (anchor != "start") detail::append(s, " text-anchor=\"", anchor, "\"");
  if (rotate != 0.0)
    detail::append(s, " transform=\"rotate(", num(rotate), " ", num(x), " ", num(y), ")\"");
  if (!extra.empty()) detail::append(s, " ", extra);
  detail::append(s, ">", escape(content, "a label"), "</text>\n");
}

inline void check_labels(const std::vector<std::string>& labels, std::size_t want,
                         std::string_view field, std::string_view what) {
  FASA_CHECK(labels.empty() || labels.size() == want, "svg: ", field, " has ", labels.size(),
             " labels for ", want, " ", what, "; give one per ", what, " or none");
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Heat map.

struct heat_map {
  std::string title;
  int rows = 0;
  int cols = 0;
  std::vector<double> values;  // [rows, cols] row-major, each in [lo, hi], no NaN
  double lo = 0.0;             // the colour scale's ends: lo is the darkest colour
  double hi = 1.0;

  std::vector<std::string> row_labels;  // none, or one per row
  std::vector<std::string> col_labels;  // none, or one per column; "" leaves a column unlabelled
  std::string row_title;                // axis titles, may be empty
  std::string col_title;

  // Separators: a white line after every `col_group` columns (and `row_group` rows), e.g. between
  // the heads of a layer; 0 draws none. Group labels (none, or one per group) sit above the
  // column groups and left of the row labels.
  int col_group = 0;
  int row_group = 0;
  std::vector<std::string> col_group_labels;
  std::vector<std::string> row_group_labels;

  // Cells to outline: none, or [rows, cols] flags (non-zero = outlined), e.g. the dominant FCs.
  std::vector<std::uint8_t> marked;
  rgb marker_color{0xff, 0x2a, 0x2a};
  std::string marker_legend;  // what an outline means, shown under the colour bar; may be empty

  bool print_values = false;  // print each value in its cell (small grids)
  int value_decimals = 2;

  std::string colorbar_title;
  double cell_width = 12.0;
  double cell_height = 12.0;
  double font_size = 10.0;
};

// Throws fasa::error unless `m` can be drawn (see heat_map's field comments).
inline void validate(const heat_map& m) {
  FASA_CHECK(m.rows >= 1 && m.cols >= 1, "svg heat map '", m.title, "': needs at least one row ",
             "and one column, got ", m.rows, " x ", m.cols);
  const std::size_t n = static_cast<std::size_t>(m.rows) * static_cast<std::size_t>(m.cols);
  FASA_CHECK(m.values.size() == n, "svg heat map '", m.title,
             "': values must hold rows * cols = ", m.rows, " * ", m.cols, " = ", n,
             " numbers, got ", m.values.size());
  FASA_CHECK(std::isfinite(m.lo) && std::isfinite(m.hi) && m.lo < m.hi, "svg heat map '", m.title,
             "': the scale needs finite lo < hi, got [", m.lo, ", ", m.hi, "]");
  for (std::size_t i = 0; i < n; ++i) {
    const double v = m.values[i];
    FASA_CHECK(!std::isnan(v), "svg heat map '", m.title, "': the value at row ",
               i / static_cast<std::size_t>(m.cols), " column ",
               i % static_cast<std::size_t>(m.cols), " is NaN");
    FASA_CHECK(v >= m.lo && v <= m.hi, "svg heat map '", m.title, "': the value at row ",
               i / static_cast<std::size_t>(m.cols), " column ",
               i % static_cast<std::size_t>(m.cols), " is ", v, ", outside the scale [", m.lo, ", ",
               m.hi, "]");
  }
  detail::check_labels(m.row_labels, static_cast<std::size_t>(m.rows), "row_labels", "row");
  detail::check_labels(m.col_labels, static_cast<std::size_t>(m.cols), "col_labels", "column");
  FASA_CHECK(m.col_group >= 0 && m.row_group >= 0, "svg heat map '", m.title,
             "': col_group and row_group must be >= 0 (0: no separators), got ", m.col_group,
             " and ", m.row_group);
  FASA_CHECK(m.col_group_labels.empty() || m.col_group > 0, "svg heat map '", m.title,
             "': col_group_labels need col_group > 0");
  FASA_CHECK(m.row_group_labels.empty() || m.row_group > 0, "svg heat map '", m.title,
             "': row_group_labels need row_group > 0");
  if (m.col_group > 0)
    detail::check_labels(m.col_group_labels,
                         static_cast<std::size_t>((m.cols + m.col_group - 1) / m.col_group),
                         "col_group_labels", "column group");
  if (m.row_group > 0)
    detail::check_labels(m.row_group_labels,
                         static_cast<std::size_t>((m.rows + m.row_group - 1) / m.row_group),
                         "row_group_labels", "row group");
  FASA_CHECK(m.marked.empty() || m.marked.size() == n, "svg heat map '", m.title,
             "': marked must be empty or hold rows * cols = ", n, " flags, got ", m.marked.size());
  FASA_CHECK(m.cell_width > 0 && m.cell_height > 0 && m.font_size > 0 &&
                 std::isfinite(m.cell_width + m.cell_height + m.font_size),
             "svg heat map '", m.title, "': cell sizes and font size must be positive, got ",
             m.cell_width, " x ", m.cell_height, ", font ", m.font_size);
  FASA_CHECK(m.value_decimals >= 0 && m.value_decimals <= 12, "svg heat map '", m.title,
             "': value_decimals must be in [0, 12], got ", m.value_decimals);
}

inline std::string render(const heat_map& m) {
  validate(m);
  using detail::num;
  const double fs = m.font_size, cw = m.cell_width, ch = m.cell_height;
  const auto rows = static_cast<std::size_t>(m.rows), cols = static_cast<std::size_t>(m.cols);
  auto max_width = [fs](const std::vector<std::string>& labels) {
    double w = 0;
    for (const auto& l : labels) w = std::max(w, detail::text_width(l, fs));
    return w;
  };

  // Layout, left to right: row title | row group labels | row labels | grid | colour bar.
  // Top to bottom: title | column group labels | grid | column labels | column title.
  const double pad = 10;
  const double title_h = m.title.empty() ? 0 : 1.6 * fs + 8;
  const double col_group_h = m.col_group_labels.empty() ? 0 : fs + 6;
  const double row_title_w = m.row_title.empty() ? 0 : fs + 8;
  const double row_group_w = m.row_group_labels.empty() ? 0 : max_width(m.row_group_labels) + 8;
  const double row_label_w = m.row_labels.empty() ? 0 : max_width(m.row_labels) + 6;
  const double col_label_w = max_width(m.col_labels);
  // Column labels run horizontally when every one fits its column, else vertically.
  const bool vertical_cols = col_label_w > cw;
  const double col_label_h = col_label_w == 0 ? 0 : (vertical_cols ? col_label_w + 6 : fs + 6);
  const double col_title_h = m.col_title.empty() ? 0 : fs + 10;

  const double gx = pad + row_title_w + row_group_w + row_label_w;
  const double gy = pad + title_h + col_group_h;
  const double gw = cw * static_cast<double>(cols), gh = ch * static_cast<double>(rows);

  const double bar_x = gx + gw + 18, bar_w = 14;
  const double bar_h = std::max(gh, 6 * fs);
  const detail::ticks bar_ticks = detail::linear_ticks(m.lo, m.hi, 5);
  double tick_w = 0;
  for (double v : bar_ticks.values)
    tick_w = std::max(tick_w, detail::text_width(detail::fixed(v, bar_ticks.decimals), fs));
  const double bar_title_w = m.colorbar_title.empty() ? 0 : fs + 10;
  double width = bar_x + bar_w + 6 + tick_w + bar_title_w + pad;
  const double legend_h = m.marker_legend.empty() ? 0 : fs + 14;
  double height = std::max(gy + gh + col_label_h + col_title_h, gy + bar_h + legend_h) + pad;
  if (!m.marker_legend.empty())
    width = std::max(width, bar_x + 16 + detail::text_width(m.marker_legend, fs) + pad);
  width = std::max(width, pad + 1.15 * detail::text_width(m.title, 1.4 * fs) + pad);  // bold

  std::string s;
  s.reserve(rows * cols * 12 + 4096);
  detail::open_document(s, width, height);
  if (!m.title.empty())
    detail::text(s, pad, pad + 1.4 * fs, m.title, 1.4 * fs, "start", 0, "font-weight=\"bold\"");

  // Cells: values binned to 256 levels of the scale; one path per level, runs merged.
  const color_scale& scale = viridis();
  auto level_of = [&](double v) {
    return static_cast<int>(std::lround((v - m.lo) / (m.hi - m.lo) * 255.0));
  };
  std::map<int, std::string> paths;
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t c = 0; c < cols;) {
      const int level = level_of(m.values[r * cols + c]);
      std::size_t end = c + 1;
      while (end < cols && level_of(m.values[r * cols + end]) == level) ++end;
      detail::append(paths[level], "M", num(gx + cw * static_cast<double>(c)), " ",
                     num(gy + ch * static_cast<double>(r)), "h",
                     num(cw * static_cast<double>(end - c)), "v", num(ch), "h-",
                     num(cw * static_cast<double>(end - c)), "z");
      c = end;
    }
  }
  s += "<g shape-rendering=\"crispEdges\">\n";
  for (const auto& [level, d] : paths)
    detail::append(s, "<path fill=\"", to_hex(scale.at(level / 255.0)), "\" d=\"", d, "\"/>\n");
  s += "</g>\n";

  // Separators between groups.
  std::string sep;
  if (m.col_group > 0)
    for (int c = m.col_group; c < m.cols; c += m.col_group)
      detail::append(sep, "M", num(gx + cw * c), " ", num(gy), "v", num(gh));
  if (m.row_group > 0)
    for (int r = m.row_group; r < m.rows; r += m.row_group)
      detail::append(sep, "M", num(gx), " ", num(gy + ch * r), "h", num(gw));
  if (!sep.empty())
    detail::append(s, "<path fill=\"none\" stroke=\"#ffffff\" stroke-width=\"1.5\" d=\"", sep,
                   "\"/>\n");

  // Outlined cells, the stroke inside the cell so that neighbours do not merge.
  if (!m.marked.empty()) {
    std::string d;
    const double inset = std::min({0.6, cw / 4, ch / 4});
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t c = 0; c < cols; ++c)
        if (m.marked[r * cols + c] != 0)
          detail::append(d, "M", num(gx + cw * static_cast<double>(c) + inset), " ",
                         num(gy + ch * static_cast<double>(r) + inset), "h", num(cw - 2 * inset),
                         "v", num(ch - 2 * inset), "h-", num(cw - 2 * inset), "z");
    if (!d.empty())
      detail::append(s, "<path fill=\"none\" stroke=\"", to_hex(m.marker_color),
                     "\" stroke-width=\"", num(2 * inset), "\" d=\"", d, "\"/>\n");
  }

  // Values in the cells, black on light colours and white on dark ones.
  if (m.print_values)
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t c = 0; c < cols; ++c) {
        const double v = m.values[r * cols + c];
        const bool light = relative_luminance(scale.at(level_of(v) / 255.0)) > 0.35;
        detail::text(s, gx + cw * (static_cast<double>(c) + 0.5),
                     gy + ch * (static_cast<double>(r) + 0.5) + 0.35 * fs,
                     detail::fixed(v, m.value_decimals), fs, "middle", 0,
                     light ? "fill=\"#000000\"" : "fill=\"#ffffff\"");
      }

  // Labels.
  for (std::size_t r = 0; r < m.row_labels.size(); ++r)
    detail::text(s, gx - 4, gy + ch * (static_cast<double>(r) + 0.5) + 0.35 * fs, m.row_labels[r],
                 fs, "end");
  for (std::size_t g = 0; g < m.row_group_labels.size(); ++g) {
    const double r0 = static_cast<double>(g) * m.row_group;
    const double r1 = std::min<double>(r0 + m.row_group, m.rows);
    detail::text(s, gx - row_label_w - 6, gy + ch * (r0 + r1) / 2 + 0.35 * fs,
                 m.row_group_labels[g], fs, "end");
  }
  for (std::size_t c = 0; c < m.col_labels.size(); ++c) {
    if (m.col_labels[c].empty()) continue;
    const double x = gx + cw * (static_cast<double>(c) + 0.5);
    if (vertical_cols)
      detail::text(s, x + 0.35 * fs, gy + gh + 4, m.col_labels[c], fs, "end", -90);
    else
      detail::text(s, x, gy + gh + fs + 2, m.col_labels[c], fs, "middle");
  }
  for (std::size_t g = 0; g < m.col_group_labels.size(); ++g) {
    const double c0 = static_cast<double>(g) * m.col_group;
    const double c1 = std::min<double>(c0 + m.col_group, m.cols);
    detail::text(s, gx + cw * (c0 + c1) / 2, gy - 4, m.col_group_labels[g], fs, "middle");
  }
  if (!m.row_title.empty())
    detail::text(s, pad + fs, gy + gh / 2, m.row_title, fs, "middle", -90, "font-weight=\"bold\"");
  if (!m.col_title.empty())
    detail::text(s, gx + gw / 2, gy + gh + col_label_h + fs + 4, m.col_title, fs, "middle", 0,
                 "font-weight=\"bold\"");

  // Colour bar: a gradient through the scale's anchors (SVG interpolates stops linearly in sRGB,
  // as color_scale does), ticks on its right.
  s += "<defs><linearGradient id=\"fasa-colorbar\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">";
  const auto& anchors = scale.anchors();
  for (std::size_t i = 0; i < anchors.size(); ++i)
    detail::append(s, "<stop offset=\"",
                   num(static_cast<double>(i) / static_cast<double>(anchors.size() - 1)),
                   "\" stop-color=\"", to_hex(anchors[i]), "\"/>");
  s += "</linearGradient></defs>\n";
  detail::append(s, "<rect x=\"", num(bar_x), "\" y=\"", num(gy), "\" width=\"", num(bar_w),
                 "\" height=\"", num(bar_h), "\" fill=\"url(#fasa-colorbar)\" stroke=\"#444444\" ",
                 "stroke-width=\"0.5\"/>\n");
  std::string tick_path;
  for (double v : bar_ticks.values) {
    const double y = gy + bar_h * (1.0 - (v - m.lo) / (m.hi - m.lo));
    detail::append(tick_path, "M", num(bar_x + bar_w), " ", num(y), "h4");
    detail::text(s, bar_x + bar_w + 6, y + 0.35 * fs, detail::fixed(v, bar_ticks.decimals), fs);
  }
  detail::append(s, "<path stroke=\"#444444\" stroke-width=\"1\" d=\"", tick_path, "\"/>\n");
  if (!m.colorbar_title.empty())
    detail::text(s, bar_x + bar_w + 12 + tick_w, gy + bar_h / 2, m.colorbar_title, fs, "middle",
                 90);
  if (!m.marker_legend.empty()) {
    const double y = gy + bar_h + 8;
    detail::append(s, "<rect x=\"", num(bar_x + 0.5), "\" y=\"", num(y + 0.5), "\" width=\"",
                   num(fs - 1), "\" height=\"", num(fs - 1), "\" fill=\"none\" stroke=\"",
                   to_hex(m.marker_color), "\" stroke-width=\"1.2\"/>\n");
    detail::text(s, bar_x + fs + 4, y + 0.85 * fs, m.marker_legend, fs);
  }
  s += "</svg>\n";
  return s;
}

// A retrieval result as a grid (depth x context length, values 0..1, each printed in its cell):
// values: [depths, lengths] row-major; one label per depth and per length.
inline heat_map retrieval_grid(std::string title, std::vector<double> values,
                               std::vector<std::string> depth_labels,
                               std::vector<std::string> length_labels) {
  heat_map m;
  m.title = std::move(title);
  m.rows = static_cast<int>(depth_labels.size());
  m.cols = static_cast<int>(length_labels.size());
  m.values = std::move(values);
  m.row_labels = std::move(depth_labels);
  m.col_labels = std::move(length_labels);
  m.row_title = "needle depth";
  m.col_title = "context length (tokens)";
  m.colorbar_title = "accuracy";
  m.print_values = true;
  m.cell_width = 46;
  m.cell_height = 24;
  m.font_size = 11;
  validate(m);
  return m;
}

// ---------------------------------------------------------------------------------------------
// Line chart.

struct series {
  std::string name;
  std::vector<double> x;  // [n]; positive on a log2 axis
  std::vector<double> y;  // [n], no NaN
};

struct line_chart {
  std::string title;
  std::string x_title;
  std::string y_title;
  std::vector<series> lines;
  bool log2_x = false;          // x ticks at powers of two (context lengths, budgets)
  std::optional<double> y_min;  // the y range; by default the data's, padded by 5 %
  std::optional<double> y_max;
  double width = 720;  // the plot area is what the title, ticks and legend leave
  double height = 440;
  double font_size = 11;
  bool markers = true;  // a dot at each point
};

inline void validate(const line_chart& c) {
  FASA_CHECK(!c.lines.empty(), "svg line chart '", c.title, "': has no series");
  for (std::size_t i = 0; i < c.lines.size(); ++i) {
    const series& s = c.lines[i];
    FASA_CHECK(!s.x.empty() && s.x.size() == s.y.size(), "svg line chart '", c.title, "': series '",
               s.name, "' has ", s.x.size(), " x and ", s.y.size(),
               " y values; both must have the same positive number");
    for (std::size_t j = 0; j < s.x.size(); ++j) {
      FASA_CHECK(std::isfinite(s.x[j]) && std::isfinite(s.y[j]), "svg line chart '", c.title,
                 "': series '", s.name, "' point ", j, " is (", s.x[j], ", ", s.y[j],
                 "); NaN and infinite values cannot be drawn");
      FASA_CHECK(!c.log2_x || s.x[j] > 0, "svg line chart '", c.title, "': series '", s.name,
                 "' point ", j, " has x = ", s.x[j], ", which a log2 axis cannot show");
    }
  }
  FASA_CHECK(!c.y_min || !c.y_max || *c.y_min < *c.y_max, "svg line chart '", c.title, "': y_min (",
             c.y_min.value_or(0), ") must be below y_max (", c.y_max.value_or(0), ")");
  FASA_CHECK(c.width >= 200 && c.height >= 150 && c.font_size > 0, "svg line chart '", c.title,
             "': needs width >= 200, height >= 150 and a positive font size, got ", c.width, " x ",
             c.height, ", font ", c.font_size);
}

inline std::string render(const line_chart& c) {
  validate(c);
  using detail::num;
  const double fs = c.font_size;
  auto fx = [&](double x) { return c.log2_x ? std::log2(x) : x; };

  // Data ranges (x in axis units: log2 of x on a log2 axis).
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& s : c.lines)
    for (std::size_t j = 0; j < s.x.size(); ++j) {
      x0 = std::min(x0, fx(s.x[j]));
      x1 = std::max(x1, fx(s.x[j]));
      y0 = std::min(y0, s.y[j]);
      y1 = std::max(y1, s.y[j]);
    }
  if (x0 == x1) {
    x0 -= 1;
    x1 += 1;
  }
  if (y0 == y1) {
    const double d = y0 == 0 ? 1.0 : 0.1 * std::abs(y0);
    y0 -= d;
    y1 += d;
  }
  const double xpad = 0.03 * (x1 - x0);  // points at the ends stay whole inside the clip
  x0 -= xpad;
  x1 += xpad;
  const double ypad = 0.05 * (y1 - y0);
  y0 = c.y_min.value_or(y0 - ypad);
  y1 = c.y_max.value_or(y1 + ypad);
  if (!(y0 < y1)) y1 = y0 + 1;  // an explicit bound past the data

  // Ticks.
  std::vector<std::pair<double, std::string>> xt;  // (axis units, label)
  if (c.log2_x) {
    const int e0 = static_cast<int>(std::ceil(x0 - 1e-9));
    const int e1 = static_cast<int>(std::floor(x1 + 1e-9));
    const int stride = std::max(1, (e1 - e0 + 9) / 10);
    for (int e = e0; e <= e1; e += stride)
      xt.emplace_back(e, detail::pow2_label(std::ldexp(1.0, e)));
  } else {
    const detail::ticks t = detail::linear_ticks(x0, x1, 6);
    for (double v : t.values) xt.emplace_back(v, detail::fixed(v, t.decimals));
  }
  const detail::ticks yt = detail::linear_ticks(y0, y1, 6);

  // Layout: title on top, y ticks left, x ticks below, the legend right of the plot area.
  double ytick_w = 0;
  for (double v : yt.values)
    ytick_w = std::max(ytick_w, detail::text_width(detail::fixed(v, yt.decimals), fs));
  double legend_w = 0;
  for (const auto& s : c.lines) legend_w = std::max(legend_w, detail::text_width(s.name, fs));
  legend_w += 34;
  const double pad = 10;
  const double left = pad + (c.y_title.empty() ? 0 : fs + 8) + ytick_w + 8;
  const double top = pad + (c.title.empty() ? 0 : 1.4 * fs + 12);
  const double bottom = fs + 10 + (c.x_title.empty() ? 0 : fs + 10) + pad;
  const double width = std::max(c.width, left + 120 + legend_w + 2 * pad);
  const double right = legend_w + 2 * pad;
  const double pw = width - left - right;
  const double legend_h = static_cast<double>(c.lines.size()) * (fs + 6) + 8;
  const double height = std::max(c.height, top + legend_h + bottom);
  const double ph = height - top - bottom;
  auto px = [&](double ax) { return left + pw * (ax - x0) / (x1 - x0); };
  auto py = [&](double y) { return top + ph * (1.0 - (y - y0) / (y1 - y0)); };

  std::string s;
  detail::open_document(s, width, height);
  if (!c.title.empty())
    detail::text(s, pad, pad + 1.4 * fs, c.title, 1.4 * fs, "start", 0, "font-weight=\"bold\"");

  // Grid lines, frame and ticks.
  std::string grid, tick;
  for (const auto& [v, label] : xt) {
    const double x = px(v);
    detail::append(grid, "M", num(x), " ", num(top), "v", num(ph));
    detail::append(tick, "M", num(x), " ", num(top + ph), "v4");
    detail::text(s, x, top + ph + fs + 6, label, fs, "middle");
  }
  for (double v : yt.values) {
    const double y = py(v);
    detail::append(grid, "M", num(left), " ", num(y), "h", num(pw));
    detail::append(tick, "M", num(left - 4), " ", num(y), "h4");
    detail::text(s, left - 6, y + 0.35 * fs, detail::fixed(v, yt.decimals), fs, "end");
  }
  detail::append(s, "<path fill=\"none\" stroke=\"#e4e4e4\" stroke-width=\"1\" d=\"", grid,
                 "\"/>\n");
  detail::append(s, "<path fill=\"none\" stroke=\"#444444\" stroke-width=\"1\" d=\"", tick,
                 "\"/>\n");
  detail::append(s, "<rect x=\"", num(left), "\" y=\"", num(top), "\" width=\"", num(pw),
                 "\" height=\"", num(ph),
                 "\" fill=\"none\" stroke=\"#444444\" stroke-width=\"1\"/>\n");
  if (!c.x_title.empty())
    detail::text(s, left + pw / 2, top + ph + 2 * fs + 12, c.x_title, fs, "middle", 0,
                 "font-weight=\"bold\"");
  if (!c.y_title.empty())
    detail::text(s, pad + fs, top + ph / 2, c.y_title, fs, "middle", -90, "font-weight=\"bold\"");

  // Series, clipped to the plot area (an explicit y range may cut them).
  detail::append(s, "<defs><clipPath id=\"fasa-plot-area\"><rect x=\"", num(left), "\" y=\"",
                 num(top), "\" width=\"", num(pw), "\" height=\"", num(ph),
                 "\"/></clipPath></defs>\n");
  s += "<g clip-path=\"url(#fasa-plot-area)\">\n";
  for (std::size_t i = 0; i < c.lines.size(); ++i) {
    const series& l = c.lines[i];
    const std::string color = to_hex(series_color(i));
    const std::string dash = i >= 8 ? " stroke-dasharray=\"6 3\"" : "";
    std::string pts;
    for (std::size_t j = 0; j < l.x.size(); ++j)
      detail::append(pts, (j ? " " : ""), num(px(fx(l.x[j]))), ",", num(py(l.y[j])));
    detail::append(s, "<polyline fill=\"none\" stroke=\"", color, "\" stroke-width=\"2\"", dash,
                   " points=\"", pts, "\"/>\n");
    if (c.markers) {
      detail::append(s, "<g fill=\"", color, "\">");
      for (std::size_t j = 0; j < l.x.size(); ++j)
        detail::append(s, "<circle cx=\"", num(px(fx(l.x[j]))), "\" cy=\"", num(py(l.y[j])),
                       "\" r=\"3\"/>");
      s += "</g>\n";
    }
  }
  s += "</g>\n";

  // Legend.
  const double lx = left + pw + pad + 6;
  for (std::size_t i = 0; i < c.lines.size(); ++i) {
    const double y = top + 4 + (static_cast<double>(i) + 0.5) * (fs + 6);
    const std::string color = to_hex(series_color(i));
    detail::append(s, "<path stroke=\"", color, "\" stroke-width=\"2\"",
                   (i >= 8 ? " stroke-dasharray=\"6 3\"" : ""), " d=\"M", num(lx), " ", num(y),
                   "h22\"/>");
    if (c.markers)
      detail::append(s, "<circle cx=\"", num(lx + 11), "\" cy=\"", num(y), "\" r=\"3\" fill=\"",
                     color, "\"/>");
    s += "\n";
    detail::text(s, lx + 28, y + 0.35 * fs, c.lines[i].name, fs);
  }
  s += "</svg>\n";
  return s;
}

// ---------------------------------------------------------------------------------------------
// Writes `svg` to `path` (replacing the file); throws fasa::error naming the path and the
// system's reason when it cannot.
inline void write_svg(const std::filesystem::path& path, std::string_view svg) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  FASA_CHECK(out.is_open(), "cannot open '", path.string(),
             "' to write an SVG: ", std::strerror(errno));
  out.write(svg.data(), static_cast<std::streamsize>(svg.size()));
  out.close();
  FASA_CHECK(!out.fail(), "writing the SVG '", path.string(), "' failed: ", std::strerror(errno));
}

}  // namespace fasa::eval::svg
