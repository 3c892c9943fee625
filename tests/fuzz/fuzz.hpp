// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// What every fuzz target shares. A reader of untrusted bytes may end in two ways only: success,
// or fasa::error naming the problem. Anything else (another exception, a sanitizer report, a
// hang, an allocation out of proportion to the input) is a defect in the reader: the exception
// leaves the target, std::terminate aborts, and libFuzzer records the input that did it.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "fasa/core/error.hpp"

namespace fasa::fuzz {

// Runs one stage of a target; fasa::error is an accepted outcome and ends only that stage.
template <class Stage>
bool stage(Stage&& run) {
  try {
    run();
    return true;
  } catch (const fasa::error&) {
    return false;
  }
}

// A property the library documents that an input broke: print it and abort, so that libFuzzer
// keeps the input (a silent wrong answer is a defect too).
[[noreturn]] inline void property_failed(std::string_view what) {
  std::fprintf(stderr, "fasa fuzz: property failed: %.*s\n", static_cast<int>(what.size()),
               what.data());
  std::abort();
}

// Bounds on what a target goes on to do with an input the reader accepted (dequantising, a
// forward pass): the fuzzer's time goes to the readers, not to big valid models.
inline constexpr std::uint64_t max_floats_read = std::uint64_t{1} << 20;

}  // namespace fasa::fuzz
