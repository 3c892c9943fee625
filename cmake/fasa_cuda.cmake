# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# Helpers for the CUDA targets (used only when FASA_HAS_CUDA is ON).

# fasa_target_cuda_std_20(<target> <PRIVATE|PUBLIC|INTERFACE>)
# Compiles the target's CUDA sources as C++20. CMake 3.26 and later know nvcc's C++20 flag
# (cuda_std_20). CMake 3.25 (Debian 12, the CI machine) stops at C++17 for nvcc and would reject
# cuda_std_20, so there the flag is passed by hand; nvcc has accepted -std=c++20 since CUDA 12.
function(fasa_target_cuda_std_20 target scope)
  if("cuda_std_20" IN_LIST CMAKE_CUDA_COMPILE_FEATURES)
    target_compile_features(${target} ${scope} cuda_std_20)
  elseif(CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.0)
    target_compile_options(${target} ${scope} $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20>)
  else()
    message(FATAL_ERROR "fasa: the CUDA targets need C++20, i.e. nvcc 12.0 or newer; found "
                        "${CMAKE_CUDA_COMPILER_VERSION}")
  endif()
  set_target_properties(${target} PROPERTIES CUDA_EXTENSIONS OFF)
endfunction()
