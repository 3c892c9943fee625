# SPDX-FileCopyrightText: 2026 The fasa authors
# SPDX-License-Identifier: Apache-2.0
#
# Install rules and the find_package(fasa) config. Everything goes in the install component
# `fasa_development`, so `cmake --install <build> --component fasa_development` installs the
# library alone, whatever the tools and examples install.
#
#   find_package(fasa 0.1 REQUIRED)                    fasa::fasa
#   find_package(fasa 0.1 REQUIRED COMPONENTS eigen)   fasa::fasa and fasa::eigen
#
# Each component's targets live in their own export file (fasa-<component>-targets.cmake) so
# that a consumer who does not ask for a component never needs its dependencies.

include(CMakePackageConfigHelpers)

set(FASA_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/fasa
    CACHE STRING "Where fasaConfig.cmake is installed, relative to the prefix")
mark_as_advanced(FASA_INSTALL_CMAKEDIR)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/fasa
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        COMPONENT fasa_development
        FILES_MATCHING PATTERN "*.hpp" PATTERN "*.h" PATTERN "*.cuh")
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE
        DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/fasa
        COMPONENT fasa_development)

install(TARGETS fasa EXPORT fasa-targets COMPONENT fasa_development)
install(EXPORT fasa-targets NAMESPACE fasa:: DESTINATION ${FASA_INSTALL_CMAKEDIR}
        COMPONENT fasa_development)

set(FASA_INSTALLED_COMPONENTS)
if(TARGET fasa_eigen)
  install(TARGETS fasa_eigen EXPORT fasa-eigen-targets COMPONENT fasa_development)
  install(EXPORT fasa-eigen-targets NAMESPACE fasa:: DESTINATION ${FASA_INSTALL_CMAKEDIR}
          COMPONENT fasa_development)
  list(APPEND FASA_INSTALLED_COMPONENTS eigen)
endif()
# fasa::cuda joins here as fasa-cuda-targets.cmake once the CUDA backend has a target; its
# dependencies go in the `cuda` branch of fasaConfig.cmake.in.

configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/fasaConfig.cmake.in
  ${PROJECT_BINARY_DIR}/fasaConfig.cmake
  INSTALL_DESTINATION ${FASA_INSTALL_CMAKEDIR}
  NO_SET_AND_CHECK_MACRO)
# 0.x: a minor version may break the API, so only the same minor version is compatible.
# ARCH_INDEPENDENT while every installed target is header-only; drop it when a component ships
# compiled code (a CUDA bridge library, say).
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/fasaConfigVersion.cmake
  COMPATIBILITY SameMinorVersion
  ARCH_INDEPENDENT)
install(FILES ${PROJECT_BINARY_DIR}/fasaConfig.cmake ${PROJECT_BINARY_DIR}/fasaConfigVersion.cmake
        DESTINATION ${FASA_INSTALL_CMAKEDIR}
        COMPONENT fasa_development)
