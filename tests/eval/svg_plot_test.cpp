// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
// The SVG writer: every document is well-formed XML (a small checker here, and Python's XML
// parser where it runs), the colour scale's lightness rises monotonically, text is escaped,
// the drawn content follows the input, and bad input throws fasa::error instead of drawing.

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "fasa/eval/svg_plot.hpp"
#include "support.hpp"

namespace svg = fasa::eval::svg;
namespace fs = std::filesystem;

namespace {

// A small XML well-formedness checker: one root element, every start tag closed in order,
// attributes quoted and unique, no raw '<' in text or attributes, '&' only as a known entity
// or a character reference. Returns "" when well-formed, else what is wrong and where.
std::string xml_problem(const std::string& s) {
  std::vector<std::string> open;
  int roots = 0;
  auto entity_ok = [&](std::size_t at) {
    const std::size_t semi = s.find(';', at);
    if (semi == std::string::npos || semi - at > 10) return false;
    const std::string e = s.substr(at + 1, semi - at - 1);
    if (e == "amp" || e == "lt" || e == "gt" || e == "quot" || e == "apos") return true;
    return e.size() > 1 && e[0] == '#';
  };
  auto where = [&](std::size_t at) { return std::string(" at byte ").append(std::to_string(at)); };
  std::size_t i = 0;
  if (s.rfind("<?xml", 0) == 0) i = s.find("?>") + 2;
  while (i < s.size()) {
    if (s[i] == '&') {
      if (!entity_ok(i)) return "bad entity" + where(i);
      ++i;
      continue;
    }
    if (s[i] != '<') {
      if (open.empty() && !std::isspace(static_cast<unsigned char>(s[i])))
        return "text outside the root" + where(i);
      ++i;
      continue;
    }
    if (s.compare(i, 4, "<!--") == 0) {
      const std::size_t end = s.find("-->", i);
      if (end == std::string::npos) return "unclosed comment" + where(i);
      i = end + 3;
      continue;
    }
    const bool closing = i + 1 < s.size() && s[i + 1] == '/';
    std::size_t j = i + (closing ? 2 : 1);
    const std::size_t name_start = j;
    while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '-' ||
                            s[j] == ':' || s[j] == '_'))
      ++j;
    const std::string name = s.substr(name_start, j - name_start);
    if (name.empty()) return "a tag without a name" + where(i);
    if (closing) {
      if (j >= s.size() || s[j] != '>') return "bad end tag </" + name + where(i);
      if (open.empty() || open.back() != name)
        return "</" + name + "> closes <" + (open.empty() ? "" : open.back()) + ">" + where(i);
      open.pop_back();
      i = j + 1;
      continue;
    }
    std::vector<std::string> attrs;
    bool self_closing = false;
    for (;;) {
      while (j < s.size() && std::isspace(static_cast<unsigned char>(s[j]))) ++j;
      if (j >= s.size()) return "unterminated tag <" + name + where(i);
      if (s[j] == '>') break;
      if (s.compare(j, 2, "/>") == 0) {
        self_closing = true;
        ++j;
        break;
      }
      const std::size_t a = j;
      while (j < s.size() && s[j] != '=' && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
      const std::string attr = s.substr(a, j - a);
      for (const auto& seen : attrs)
        if (seen == attr) return "attribute " + attr + " twice in <" + name + ">" + where(a);
      attrs.push_back(attr);
      if (j >= s.size() || s[j] != '=' || j + 1 >= s.size() || s[j + 1] != '"')
        return "attribute " + attr + " of <" + name + "> is not name=\"value\"" + where(a);
      const std::size_t end = s.find('"', j + 2);
      if (end == std::string::npos) return "unterminated attribute" + where(a);
      for (std::size_t k = j + 2; k < end; ++k) {
        if (s[k] == '<') return "'<' in an attribute value" + where(k);
        if (s[k] == '&' && !entity_ok(k)) return "bad entity in an attribute" + where(k);
      }
      j = end + 1;
    }
    if (open.empty() && ++roots > 1) return "a second root element <" + name + ">" + where(i);
    if (!self_closing) open.push_back(name);
    i = j + 1;
  }
  if (!open.empty()) return "<" + open.back() + "> is never closed";
  if (roots != 1) return "no root element";
  return "";
}

// Python's XML parser on the document, when a Python runs here: "" when it parses, its error
// otherwise, or "skipped" without Python.
std::string python_problem(const std::string& doc, const std::string& tag) {
  const std::string py = fasa::test::python_executable();
  if (std::system((py + " -c pass > /dev/null 2>&1").c_str()) != 0) return "skipped";
  const fs::path file = fs::temp_directory_path() / ("fasa_svg_test_" + tag + ".svg");
  const fs::path err = fs::temp_directory_path() / ("fasa_svg_test_" + tag + ".err");
  std::ofstream(file, std::ios::binary) << doc;
  const std::string cmd = py +
                          " -c \"import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])\" " +
                          file.string() + " > " + err.string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  std::stringstream msg;
  msg << std::ifstream(err).rdbuf();
  fs::remove(file);
  fs::remove(err);
  return rc == 0 ? "" : "python: " + msg.str();
}

void check_well_formed(const std::string& doc, const std::string& tag) {
  INFO("document ", tag, " (", doc.size(), " bytes)");
  CHECK(xml_problem(doc) == "");
  const std::string py = python_problem(doc, tag);
  if (py == "skipped")
    MESSAGE("Python's XML parser not run: no Python at ", fasa::test::python_executable());
  else
    CHECK(py == "");
}

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

// CIE L* (0..100) of an sRGB colour.
double lightness(svg::rgb c) {
  const double y = svg::relative_luminance(c);
  return y > 216.0 / 24389.0 ? 116.0 * std::cbrt(y) - 16.0 : y * 24389.0 / 27.0;
}

svg::heat_map small_map() {
  svg::heat_map m;
  m.title = "CA at K=256";
  m.rows = 2;
  m.cols = 4;
  m.values = {0.0, 0.1, 0.5, 1.0, 0.25, 0.25, 0.75, 0.9};
  m.row_labels = {"layer 0", "layer 1"};
  m.col_labels = {"0", "1", "0", "1"};
  m.col_group = 2;
  m.col_group_labels = {"head 0", "head 1"};
  m.marked = {0, 0, 1, 1, 0, 0, 1, 0};
  m.marker_legend = "dominant FC";
  m.colorbar_title = "mean CA";
  m.row_title = "layer";
  m.col_title = "FC";
  return m;
}

svg::line_chart small_chart() {
  svg::line_chart c;
  c.title = "decode time";
  c.x_title = "context";
  c.y_title = "ms";
  c.log2_x = true;
  c.lines = {{"dense", {1024, 2048, 4096, 65536}, {1.0, 2.0, 4.0, 64.0}},
             {"fasa_c", {1024, 2048, 4096, 65536}, {0.5, 0.7, 1.1, 9.0}}};
  return c;
}

}  // namespace

TEST_CASE("svg: the well-formedness checker catches what it should") {
  CHECK(xml_problem("<svg><g/></svg>") == "");
  CHECK(xml_problem("<svg a=\"1\" b=\"&amp;\">x &lt; y</svg>") == "");
  CHECK(xml_problem("<svg><g></svg>") != "");
  CHECK(xml_problem("<svg>a < b</svg>") != "");
  CHECK(xml_problem("<svg>a & b</svg>") != "");
  CHECK(xml_problem("<svg a=1></svg>") != "");
  CHECK(xml_problem("<svg a=\"1\" a=\"2\"></svg>") != "");
  CHECK(xml_problem("<svg/><svg/>") != "");
  CHECK(xml_problem("<svg>") != "");
}

TEST_CASE("svg: the viridis scale rises in lightness from end to end and hits its anchors") {
  const auto& v = svg::viridis();
  CHECK(v.at(0.0) == v.anchors().front());
  CHECK(v.at(1.0) == v.anchors().back());
  CHECK(v.at(0.5) == v.anchors()[4]);
  // Over 1 % of the scale L* always rises. Between neighbouring samples 8-bit rounding may move
  // one channel against the others and darken by up to about a tenth of L* (one 8-bit step of
  // green is 0.3 here; a just noticeable difference is about 1), never by more.
  for (int i = 0; i <= 1000; ++i) {
    const double t = i / 1000.0;
    const double l = lightness(v.at(t));
    if (i >= 10) {
      INFO("t = ", t, ": L* ", l, " vs ", lightness(v.at(t - 0.01)), " at t - 0.01");
      CHECK(l > lightness(v.at(t - 0.01)));
    }
    if (i >= 1) {
      INFO("t = ", t, ": L* ", l, " vs ", lightness(v.at(t - 0.001)), " at t - 0.001");
      CHECK(l > lightness(v.at(t - 0.001)) - 0.3);
    }
  }
  // strictly brighter from one anchor to the next, and dark to light overall
  for (std::size_t i = 1; i < v.anchors().size(); ++i)
    CHECK(lightness(v.anchors()[i]) > lightness(v.anchors()[i - 1]));
  CHECK(lightness(v.at(1.0)) - lightness(v.at(0.0)) > 60);
  CHECK_THROWS_AS(v.at(-0.01), fasa::error);
  CHECK_THROWS_AS(v.at(std::numeric_limits<double>::quiet_NaN()), fasa::error);
  CHECK(svg::to_hex({0x44, 0x01, 0x54}) == "#440154");
}

TEST_CASE("svg: text is escaped; invalid UTF-8 is refused") {
  CHECK(svg::escape("a<b & \"c\" 'd' >") == "a&lt;b &amp; &quot;c&quot; &apos;d&apos; &gt;");
  CHECK(svg::escape("θ — K=2^10") == "θ — K=2^10");               // UTF-8 passes through
  CHECK(svg::escape(std::string("a\x01z")) == "a\xEF\xBF\xBDz");  // XML-forbidden control
  CHECK_THROWS_WITH_AS(svg::escape("ab\xff", "title"),
                       doctest::Contains("title is not valid UTF-8"), fasa::error);
  CHECK_THROWS_AS(svg::escape("\xC3"), fasa::error);          // truncated sequence
  CHECK_THROWS_AS(svg::escape("\xC0\xAF"), fasa::error);      // overlong '/'
  CHECK_THROWS_AS(svg::escape("\xED\xA0\x80"), fasa::error);  // a surrogate

  svg::heat_map m = small_map();
  m.title = "<script>alert('x')</script> & \"more\"";
  m.row_labels = {"a<b", "c&d"};
  const std::string doc = svg::render(m);
  CHECK(doc.find("<script>") == std::string::npos);
  CHECK(doc.find("&lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt; &amp; &quot;more&quot;") !=
        std::string::npos);
  CHECK(doc.find(">a&lt;b</text>") != std::string::npos);
  check_well_formed(doc, "escaped_heat_map");

  svg::line_chart c = small_chart();
  c.lines[0].name = "dense <baseline> & co";
  const std::string chart = svg::render(c);
  CHECK(chart.find("dense &lt;baseline&gt; &amp; co") != std::string::npos);
  check_well_formed(chart, "escaped_chart");
}

TEST_CASE("svg: a heat map draws every cell in its colour, the outlines, labels and colour bar") {
  const svg::heat_map m = small_map();
  const std::string doc = svg::render(m);
  check_well_formed(doc, "heat_map");
  const auto& v = svg::viridis();
  // each value's colour is drawn (0.25 twice in a row: one merged run)
  for (double x : {0.0, 0.1, 0.5, 1.0, 0.25, 0.75, 0.9}) {
    const std::string fill = "fill=\"" + svg::to_hex(v.at(std::round(x * 255) / 255)) + "\"";
    INFO("value ", x, " ", fill);
    CHECK(count(doc, fill) == 1);
  }
  CHECK(count(doc, "<path fill=\"#") == 7);
  // the extreme colours are the scale's ends
  CHECK(doc.find(svg::to_hex(v.anchors().front())) != std::string::npos);
  CHECK(doc.find(svg::to_hex(v.anchors().back())) != std::string::npos);
  // three outlined cells in one stroked path, one separator between the two heads
  const std::size_t outline = doc.find("stroke=\"#ff2a2a\"");
  REQUIRE(outline != std::string::npos);
  const std::size_t d = doc.find(" d=\"", outline);
  CHECK(count(doc.substr(d, doc.find('"', d + 4) - d), "M") == 3);
  CHECK(count(doc, "stroke=\"#ffffff\"") == 1);
  for (const char* label : {">layer 0<", ">layer 1<", ">head 0<", ">head 1<", ">mean CA<",
                            ">dominant FC<", ">CA at K=256<", ">FC<", ">layer<"})
    CHECK(doc.find(label) != std::string::npos);
  // colour bar ticks 0.0, 0.2, ..., 1.0
  for (const char* tick : {">0.0<", ">0.2<", ">0.4<", ">0.6<", ">0.8<", ">1.0<"})
    CHECK(doc.find(tick) != std::string::npos);
  CHECK(doc.find(">0.75<") == std::string::npos);  // values are printed only when asked

  // another scale range: ticks follow it and the darkest colour is lo
  svg::heat_map w = m;
  w.lo = -1;
  w.hi = 3;
  w.values = {-1, 0, 1, 3, 2, 2, 2.5, -0.5};
  const std::string wd = svg::render(w);
  check_well_formed(wd, "heat_map_range");
  CHECK(wd.find(">-1<") != std::string::npos);
  CHECK(wd.find(">3<") != std::string::npos);
}

TEST_CASE("svg: a CA-sized heat map (30 layers x 9 heads x 32 FCs) stays small") {
  svg::heat_map m;
  m.rows = 30;
  m.cols = 9 * 32;
  m.col_group = 32;
  m.cell_width = 5;
  for (int r = 0; r < m.rows; ++r)
    for (int c = 0; c < m.cols; ++c) {
      // mostly low CA, a few high ones: the shape of a real map
      const double x = std::fmod(std::sin(r * 12.9898 + c * 78.233) * 43758.5453, 1.0);
      m.values.push_back(std::abs(x) > 0.97 ? 0.4 + 0.5 * std::abs(x) : 0.15 * std::abs(x));
      m.marked.push_back(c % 32 < 8);
    }
  const std::string doc = svg::render(m);
  check_well_formed(doc, "large_heat_map");
  CHECK(doc.size() < 300 * 1024);
}

TEST_CASE("svg: a retrieval grid prints each value in its cell, dark text on light cells") {
  const svg::heat_map g = svg::retrieval_grid("passkey, dense", {1.0, 0.0, 0.5, 0.25, 1.0, 0.75},
                                              {"0%", "50%"}, {"1K", "2K", "4K"});
  CHECK(g.print_values);
  const std::string doc = svg::render(g);
  check_well_formed(doc, "retrieval_grid");
  CHECK(count(doc, ">1.00</text>") == 2);
  CHECK(doc.find("fill=\"#000000\">1.00<") != std::string::npos);  // yellow cell: black text
  CHECK(doc.find("fill=\"#ffffff\">0.00<") != std::string::npos);  // violet cell: white text
  for (const char* label : {">0%<", ">50%<", ">1K<", ">4K<", ">needle depth<"})
    CHECK(doc.find(label) != std::string::npos);
  CHECK_THROWS_WITH_AS(svg::retrieval_grid("x", {1.0, 0.0}, {"0%", "50%"}, {"1K", "2K"}),
                       doctest::Contains("values must hold rows * cols = 2 * 2 = 4"), fasa::error);
}

TEST_CASE("svg: a line chart draws each series, log2 ticks and a legend") {
  const std::string doc = svg::render(small_chart());
  check_well_formed(doc, "line_chart");
  CHECK(count(doc, "<polyline") == 2);
  CHECK(count(doc, "<circle") == 2 * 4 + 2);  // the points and the legend's markers
  for (const char* label : {">1K<", ">2K<", ">4K<", ">64K<", ">dense<", ">fasa_c<", ">decode time<",
                            ">context<", ">ms<"})
    CHECK(doc.find(label) != std::string::npos);
  CHECK(doc.find(">3K<") == std::string::npos);  // only powers of two on a log2 axis

  svg::line_chart lin;
  lin.lines = {{"y = x", {0, 1, 2, 3}, {0, 1, 2, 3}}};
  lin.y_min = 0;
  lin.y_max = 3;
  const std::string l = svg::render(lin);
  check_well_formed(l, "line_chart_linear");
  CHECK(l.find(">0.0<") != std::string::npos);
  CHECK(l.find(">3.0<") != std::string::npos);

  // many series: all drawn, the ninth dashed
  svg::line_chart many;
  for (int i = 0; i < 9; ++i)
    many.lines.push_back({std::string("s").append(std::to_string(i)),  // not "s" + ...: GCC 12
                          {1, 2},                                      // -Wrestrict bug 105329
                          {static_cast<double>(i), 1.0}});
  const std::string md = svg::render(many);
  check_well_formed(md, "line_chart_many");
  CHECK(count(md, "<polyline") == 9);
  CHECK(count(md, "stroke-dasharray") == 2);  // the ninth line and its legend entry
}

TEST_CASE("svg: bad input throws fasa::error naming the problem") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto throws = [](svg::heat_map m, const char* what) {
    CHECK_THROWS_WITH_AS(svg::render(m), doctest::Contains(what), fasa::error);
  };
  svg::heat_map m = small_map();
  m.rows = 0;
  m.values.clear();
  throws(m, "needs at least one row and one column, got 0 x 4");
  m = small_map();
  m.values.pop_back();
  throws(m, "values must hold rows * cols = 2 * 4 = 8 numbers, got 7");
  m = small_map();
  m.values[5] = nan;
  throws(m, "the value at row 1 column 1 is NaN");
  m = small_map();
  m.values[2] = 1.5;
  throws(m, "the value at row 0 column 2 is 1.5, outside the scale [0, 1]");
  m = small_map();
  m.lo = 1;
  m.hi = 1;
  throws(m, "the scale needs finite lo < hi");
  m = small_map();
  m.row_labels = {"only one"};
  throws(m, "row_labels has 1 labels for 2 row");
  m = small_map();
  m.col_labels.push_back("extra");
  throws(m, "col_labels has 5 labels for 4 column");
  m = small_map();
  m.col_group_labels = {"one"};
  throws(m, "col_group_labels has 1 labels for 2 column group");
  m = small_map();
  m.marked.resize(3);
  throws(m, "marked must be empty or hold rows * cols = 8 flags, got 3");
  m = small_map();
  m.row_group_labels = {"a"};
  throws(m, "row_group_labels need row_group > 0");
  m = small_map();
  m.cell_width = 0;
  throws(m, "cell sizes and font size must be positive");
  m = small_map();
  m.title = "bad \xff title";
  CHECK_THROWS_WITH_AS(svg::render(m), doctest::Contains("not valid UTF-8"), fasa::error);

  auto chart_throws = [](svg::line_chart c, const char* what) {
    CHECK_THROWS_WITH_AS(svg::render(c), doctest::Contains(what), fasa::error);
  };
  svg::line_chart c = small_chart();
  c.lines.clear();
  chart_throws(c, "has no series");
  c = small_chart();
  c.lines[1].y.pop_back();
  chart_throws(c, "series 'fasa_c' has 4 x and 3 y values");
  c = small_chart();
  c.lines[0].x.clear();
  c.lines[0].y.clear();
  chart_throws(c, "series 'dense' has 0 x and 0 y values");
  c = small_chart();
  c.lines[0].y[2] = nan;
  chart_throws(c, "series 'dense' point 2 is (4096, nan)");
  c = small_chart();
  c.lines[1].x[0] = 0;
  chart_throws(c, "has x = 0, which a log2 axis cannot show");
  c = small_chart();
  c.y_min = 5;
  c.y_max = 1;
  chart_throws(c, "y_min (5) must be below y_max (1)");
}

TEST_CASE("svg: write_svg writes the document and names the path when it cannot") {
  const fs::path dir = fs::temp_directory_path() / "fasa_svg_write_test";
  fs::create_directories(dir);
  const std::string doc = svg::render(small_map());
  svg::write_svg(dir / "map.svg", doc);
  std::stringstream back;
  back << std::ifstream(dir / "map.svg", std::ios::binary).rdbuf();
  CHECK(back.str() == doc);
  fs::remove_all(dir);
  CHECK_THROWS_WITH_AS(svg::write_svg(dir / "missing" / "map.svg", doc),
                       doctest::Contains("fasa_svg_write_test/missing/map.svg"), fasa::error);
}
