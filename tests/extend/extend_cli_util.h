// Runs the built `mla-retrofit` binary (MLAR_CLI) for the extend CLI tests.
#pragma once
#include <string>

namespace mlar::test {

struct ExtendCliResult {
  int status = -1;
  std::string out, err;
};

std::string quote(const std::string& s);  // single-quoted for /bin/sh

// args: shell-quoted arguments after the binary.
ExtendCliResult run_extend_cli(const std::string& args);

}  // namespace mlar::test
