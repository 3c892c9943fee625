# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# fasa_target_warnings(<target>)
#
# The warnings of the project's own targets (tests, tools, examples, header checks): -Wall
# -Wextra for C++ and for nvcc's host compiler. They are never errors in a user's build: a
# compiler or a dependency that warns where it did not before (GCC 12's AVX-512 intrinsics under
# Eigen, for one: see fasa/backends/cpu/eigen_core.hpp) must not stop anyone building fasa. Warnings become errors only where
# CMake's own switch asks for it, CMAKE_COMPILE_WARNING_AS_ERROR=ON (the `ci` presets, and
# scripts/test.sh when CI=true or FASA_WERROR=1): CMake then passes -Werror to the C++ compiler
# and `-Werror all-warnings` to nvcc, and this function adds -Xcompiler=-Werror so that the host
# compiler's warnings in .cu files count too (CMake's switch covers nvcc's own warnings only).
# (`cmake --compile-no-warning-as-error` turns off CMake's part; configuring with
# CMAKE_COMPILE_WARNING_AS_ERROR=OFF turns off all of it.)
#
# Dependencies come in through imported targets (Eigen3::Eigen, CLI11::CLI11, doctest), whose
# include directories CMake already passes as -isystem: their own warnings are not shown.
function(fasa_target_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra>
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>
    $<$<AND:$<COMPILE_LANGUAGE:CUDA>,$<BOOL:$<TARGET_PROPERTY:COMPILE_WARNING_AS_ERROR>>>:-Xcompiler=-Werror>)
endfunction()
