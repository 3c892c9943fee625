// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
// fasa-calibrate: placeholder, being written.
int main() { return 0; }
