// Runs the built `mla-retrofit` binary as a user would and captures what it prints.
#pragma once
#include <string>

namespace mlar::test {

struct CliResult {
  int status = -1;  // exit status
  std::string out;  // stdout
  std::string err;  // stderr
};

// args is a shell-quoted argument string appended to the binary's path.
CliResult run_cli(const std::string& args);

// Single-quotes s for /bin/sh.
std::string sh_quote(const std::string& s);

}  // namespace mlar::test
