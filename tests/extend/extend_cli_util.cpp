#include "extend/extend_cli_util.h"

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "common/test_data.h"

namespace mlar::test {

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

ExtendCliResult run_extend_cli(const std::string& args) {
  const std::string dir = temp_dir("extend-cli");
  const std::string out = dir + "/stdout", err = dir + "/stderr";
  const std::string cmd = quote(MLAR_CLI) + " " + args + " >" + quote(out) + " 2>" + quote(err);
  const int status = std::system(cmd.c_str());
  ExtendCliResult r;
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  auto slurp = [](const std::string& p) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

}  // namespace mlar::test
