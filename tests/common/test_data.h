// Paths to the shared test data (../shared/data) and to this source tree.
#pragma once
#include <string>

namespace mlar::test {

// Absolute path of `rel` under the data directory ($MLAR_DATA, else ../shared/data
// beside the source tree). Fails the test with a clear message if it does not exist.
std::string data_path(const std::string& rel);

// Path of `rel` under the source tree (fixtures in tests/fixtures, for example).
std::string source_path(const std::string& rel);

// A fresh empty temporary directory, removed at exit of the process.
std::string temp_dir(const std::string& tag);

}  // namespace mlar::test
