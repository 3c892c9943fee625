// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// Umbrella header: everything that compiles with a plain C++ compiler and needs no dependency
// beyond the standard library. The Eigen backend (fasa/backends/cpu/eigen.hpp) and calibration
// file I/O (fasa/calib/calibration_file.hpp, nlohmann/json) are included separately.

#include "fasa/backends/cpu/offload.hpp"
#include "fasa/backends/cpu/reference.hpp"
#include "fasa/calib/contextual_agreement.hpp"
#include "fasa/calib/dominant_sets.hpp"
#include "fasa/compose/dominant_plan.hpp"
#include "fasa/compose/selection.hpp"
#include "fasa/compose/sparse_attention.hpp"
#include "fasa/compose/variants.hpp"
#include "fasa/config.hpp"
#include "fasa/core/budget.hpp"
#include "fasa/core/error.hpp"
#include "fasa/core/shape.hpp"
#include "fasa/core/topk.hpp"
#include "fasa/policies/backend/tags.hpp"
#include "fasa/policies/concepts.hpp"
#include "fasa/policies/positional/rope.hpp"
#include "fasa/policies/selector/dense.hpp"
#include "fasa/policies/selector/fasa_tip.hpp"
#include "fasa/policies/selector/oracle_topk.hpp"
#include "fasa/policies/storage/contiguous.hpp"
#include "fasa/policies/storage/split_dominant.hpp"
#include "fasa/policies/storage/split_offload.hpp"
