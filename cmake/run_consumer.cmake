# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# cmake -P script behind the ctest cases consumer_find_package and consumer_add_subdirectory:
# configures, builds and runs a tiny consumer project (tests/consumer/<MODE>/) against fasa.
#   MODE                find_package: first installs fasa (component fasa_development) from
#                       FASA_BINARY_DIR into WORK_DIR/prefix, then finds it there;
#                       add_subdirectory: the consumer adds FASA_SOURCE_DIR as a subdirectory
#   FASA_SOURCE_DIR     fasa's source tree
#   FASA_BINARY_DIR     fasa's configured build tree (find_package mode)
#   CONSUMER_SOURCE_DIR tests/consumer/<MODE>
#   WORK_DIR            scratch directory, emptied first
#   GENERATOR, MAKE_PROGRAM, CXX_COMPILER, CXX_FLAGS, BUILD_TYPE: passed on to the consumer
cmake_minimum_required(VERSION 3.24)

foreach(var MODE FASA_SOURCE_DIR CONSUMER_SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT BUILD_TYPE)
  set(BUILD_TYPE Release)
endif()

function(run)
  string(REPLACE ";" " " shown "${ARGN}")
  message(STATUS "run_consumer: ${shown}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "run_consumer: command failed (${rc}): ${shown}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(build_dir ${WORK_DIR}/build)
set(configure_args
  -S ${CONSUMER_SOURCE_DIR} -B ${build_dir} -G ${GENERATOR}
  -DCMAKE_BUILD_TYPE=${BUILD_TYPE}
  -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
  "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
  # Only the prefix below may provide fasa: no user or system package registry.
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
if(MAKE_PROGRAM)
  list(APPEND configure_args -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()

if(MODE STREQUAL "find_package")
  if(NOT FASA_BINARY_DIR)
    message(FATAL_ERROR "run_consumer.cmake: find_package mode needs -DFASA_BINARY_DIR=...")
  endif()
  set(prefix ${WORK_DIR}/prefix)
  run(${CMAKE_COMMAND} --install ${FASA_BINARY_DIR} --prefix ${prefix}
      --component fasa_development)
  list(APPEND configure_args -DCMAKE_PREFIX_PATH=${prefix})
elseif(MODE STREQUAL "add_subdirectory")
  list(APPEND configure_args -DFASA_SOURCE_DIR=${FASA_SOURCE_DIR})
else()
  message(FATAL_ERROR "run_consumer.cmake: unknown MODE '${MODE}'")
endif()

run(${CMAKE_COMMAND} ${configure_args})

if(MODE STREQUAL "find_package")
  # The fasa found must be the one just installed, not a copy elsewhere on the machine.
  file(STRINGS ${build_dir}/CMakeCache.txt fasa_dir_line REGEX "^fasa_DIR:")
  string(REGEX REPLACE "^fasa_DIR:[A-Z]+=" "" fasa_dir "${fasa_dir_line}")
  cmake_path(IS_PREFIX prefix "${fasa_dir}" NORMALIZE from_prefix)
  if(NOT from_prefix)
    message(FATAL_ERROR "run_consumer: find_package(fasa) used ${fasa_dir}, not ${prefix}")
  endif()
endif()

cmake_host_system_information(RESULT jobs QUERY NUMBER_OF_LOGICAL_CORES)
run(${CMAKE_COMMAND} --build ${build_dir} --parallel ${jobs})
run(${build_dir}/decode_one_token)
run(${build_dir}/eigen_component)
