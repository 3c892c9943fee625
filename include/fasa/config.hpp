// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// The only file that looks at __CUDACC__: everything else spells host/device code through these.

#define FASA_VERSION_MAJOR 0
#define FASA_VERSION_MINOR 1
#define FASA_VERSION_PATCH 0

#if defined(__CUDACC__)
#define FASA_HOST_DEVICE __host__ __device__
#define FASA_DEVICE __device__
#define FASA_COMPILING_WITH_NVCC 1
#else
#define FASA_HOST_DEVICE
#define FASA_DEVICE
#define FASA_COMPILING_WITH_NVCC 0
#endif

#if defined(__CUDA_ARCH__)
#define FASA_DEVICE_PASS 1
#else
#define FASA_DEVICE_PASS 0
#endif
