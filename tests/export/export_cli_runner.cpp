// The CLI runner of tests/cli (run_cli, sh_quote), compiled into test_export too.
#include "cli/cli_runner.cpp"  // NOLINT(bugprone-suspicious-include)
