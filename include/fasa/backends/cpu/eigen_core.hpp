// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// <Eigen/Core> as every fasa header includes it. GCC 12 reports "'__Y' may be used
// uninitialized" inside its own avx512fintrin.h wherever Eigen's AVX-512 packets are inlined
// (-march=native on a CPU with AVX-512, or -march=x86-64-v4): the _mm512_undefined_* helpers
// initialise a vector with itself on purpose (GCC bug 105593, fixed in GCC 13). -isystem does
// not hide it, since the warning comes from the optimiser after inlining; 179 of them broke
// the `-Werror` build of fasa-demo alone. GCC files a warning under the #pragma state at the
// warning's location, and the intrinsics' headers are first included here, inside the region below,
// so exactly those locations are silenced and the rest of a user's code is still checked. (Had
// <immintrin.h> been included before this header, the region would not cover it; nothing
// here can help then, and the warning is GCC's, not the code's.)

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Core>
#pragma GCC diagnostic pop
#else
#include <Eigen/Core>
#endif
