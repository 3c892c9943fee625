// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0

// libFuzzer target: calibration files (the JSON fasa-calibrate writes). An accepted file must
// also pass validate(), write back, and read back equal: the reader and the writer agree.

#include <sstream>
#include <string>

#include "fasa/calib/calibration_file.hpp"
#include "fuzz/fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  fasa::calib::calibration c;
  if (!fasa::fuzz::stage([&] { c = fasa::calib::read_calibration(in, "fuzz.json"); })) return 0;
  if (!fasa::fuzz::stage([&] { c.validate(); }))
    fasa::fuzz::property_failed("read_calibration accepted a calibration that validate() refuses");
  std::stringstream round_trip;
  fasa::calib::write_calibration(c, round_trip);
  fasa::calib::calibration again;
  if (!fasa::fuzz::stage([&] { again = fasa::calib::read_calibration(round_trip, "round trip"); }))
    fasa::fuzz::property_failed("a calibration written by write_calibration does not read back");
  if (!(again == c))
    fasa::fuzz::property_failed("a calibration read back differs from the one written");
  return 0;
}
