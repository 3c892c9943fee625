// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// fasa::error is the one exception the library throws at its host API boundary. Its message
// names the problem and the offending values first, then where it was detected.

#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace fasa {

class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

// Keeps only the part of a source path from "fasa/" (or the file name) so messages do not
// carry the build machine's directories.
constexpr std::string_view short_source_path(std::string_view path) {
  const auto at = path.rfind("fasa/");
  if (at != std::string_view::npos) return path.substr(at);
  const auto slash = path.find_last_of("/\\");
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

[[noreturn]] inline void throw_error(const char* function, const char* file, int line,
                                     const std::string& message) {
  std::ostringstream os;
  os << message << " (in " << function << ", " << short_source_path(file) << ':' << line << ')';
  throw error(os.str());
}

}  // namespace detail
}  // namespace fasa

// FASA_FAIL("budget must be at least 1 token, got ", n) throws fasa::error.
#define FASA_FAIL(...) \
  ::fasa::detail::throw_error(__func__, __FILE__, __LINE__, ::fasa::detail::concat(__VA_ARGS__))

// FASA_CHECK(cond, message parts...) throws fasa::error with the message when cond is false.
#define FASA_CHECK(cond, ...)            \
  do {                                   \
    if (!(cond)) FASA_FAIL(__VA_ARGS__); \
  } while (0)
