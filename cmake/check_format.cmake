# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# cmake -P script behind the ctest case clang_format: every C++/CUDA source under include/,
# tests/, examples/, tools/ and benchmarks/ must be formatted by the repository's .clang-format
# (STYLE.md Sec. 5). Files are globbed when the test runs, so new files are always checked.
#   CLANG_FORMAT  the clang-format executable
#   SOURCE_DIR    the repository root
cmake_minimum_required(VERSION 3.24)

foreach(var CLANG_FORMAT SOURCE_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "check_format.cmake: -D${var}=... is required")
  endif()
endforeach()

set(patterns)
foreach(dir include tests examples tools benchmarks)
  foreach(ext hpp cpp h cc cuh cu)
    list(APPEND patterns ${SOURCE_DIR}/${dir}/*.${ext})
  endforeach()
endforeach()
file(GLOB_RECURSE files RELATIVE ${SOURCE_DIR} ${patterns})
list(SORT files)

execute_process(COMMAND ${CLANG_FORMAT} --version OUTPUT_VARIABLE version
                OUTPUT_STRIP_TRAILING_WHITESPACE)
list(LENGTH files count)
message(STATUS "${version}: checking ${count} files")

set(failing)
foreach(file IN LISTS files)
  execute_process(COMMAND ${CLANG_FORMAT} --dry-run -Werror --style=file ${file}
                  WORKING_DIRECTORY ${SOURCE_DIR}
                  RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE diagnostics)
  if(NOT rc EQUAL 0)
    list(APPEND failing ${file})
    string(REGEX MATCH "^[^\n]*\n[^\n]*\n[^\n]*" first "${diagnostics}")  # the first violation
    message("needs clang-format: ${file}\n${first}\n")
  endif()
endforeach()

if(failing)
  list(LENGTH failing n)
  list(JOIN failing " " failing_args)
  message(FATAL_ERROR "${n} of ${count} files are not clang-formatted. Fix with:\n"
                      "  (cd ${SOURCE_DIR} && ${CLANG_FORMAT} -i ${failing_args})")
endif()
message(STATUS "all ${count} files are clang-formatted")
