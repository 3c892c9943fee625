// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the tests of fasa/eval/ share to run their Python references (tests/eval/*.py): the
// scripts' directory, a shell-quoted command runner, scratch directories, and the shared
// LongBench data file. The interpreter and the skip-or-fail rule come from tests/support.hpp.

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "support.hpp"

namespace fasa::test::eval {

namespace fs = std::filesystem;

// tests/eval/, where the reference scripts live.
inline fs::path scripts_dir() {
#ifdef FASA_SOURCE_DIR
  return fs::path(FASA_SOURCE_DIR) / "tests" / "eval";
#else
  return fs::absolute(fs::path(__FILE__)).parent_path();
#endif
}

inline std::string quote(const std::string& s) {
  std::string q = "'";
  for (const char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Exit status of a shell command (-1 when it did not exit normally).
inline int run_shell(const std::string& cmd) {
  const int st = std::system(cmd.c_str());
  return (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_file(const fs::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

// A fresh directory for one test's files, removed at scope exit.
struct temp_dir {
  fs::path path;
  explicit temp_dir(const std::string& tag) {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("fasa_" + tag + "_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
};

// Why `script --check` cannot run under the test Python, or empty when it can.
inline std::string python_script_missing(const std::string& script, const std::string& needs) {
  const fs::path path = scripts_dir() / script;
  if (!fs::is_regular_file(path)) return script + " not found at " + path.string();
  const std::string python = python_executable();
  if (run_shell(quote(python) + " " + quote(path.string()) + " --check >/dev/null 2>&1") != 0)
    return python + " cannot import " + needs +
           " (scripts/install-deps.sh installs them into build/pyenv; point FASA_PYTHON at it)";
  return {};
}

// Runs `script args...` (arguments already quoted), its stderr into `log`; empty on success,
// else what the script wrote there.
inline std::string run_python_script(const std::string& script, const std::string& quoted_args,
                                     const fs::path& log) {
  const std::string cmd = quote(python_executable()) + " " +
                          quote((scripts_dir() / script).string()) + " " + quoted_args + " 2>" +
                          quote(log.string());
  if (run_shell(cmd) == 0) return {};
  const std::string err = read_file(log);
  return script + " failed: " + (err.empty() ? std::string("(no message)") : err);
}

// ../shared/data/longbench/multi_news.jsonl, or empty when the shared data is missing.
inline fs::path multi_news_path() {
  const std::string dir = shared_data_dir();
  if (dir.empty()) return {};
  const fs::path p = fs::path(dir) / "longbench" / "multi_news.jsonl";
  return fs::is_regular_file(p) ? p : fs::path{};
}

}  // namespace fasa::test::eval
