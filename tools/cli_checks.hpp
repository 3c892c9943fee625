// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// CLI11 checks the tools share. A check sees each value of a list flag as typed, before CLI11
// converts it, so it parses the text itself and names a value that is no number.

#include <CLI/CLI.hpp>

#include <charconv>
#include <string>

namespace fasa::tools {

// A whole number of at least `min`: else `rule` + ", got VALUE". `name`: the placeholder --help
// shows.
inline CLI::Validator whole_at_least(long long min, const std::string& rule,
                                     const std::string& name) {
  return CLI::Validator(
      [min, rule](std::string& v) {
        long long n = 0;
        const char* end = v.data() + v.size();
        const auto [at, ec] = std::from_chars(v.data(), end, n);
        if (ec != std::errc() || at != end) return "'" + v + "' is not a whole number";
        return n >= min ? std::string() : rule + ", got " + v;
      },
      name);
}

}  // namespace fasa::tools
