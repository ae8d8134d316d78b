// Asserting on the message of an mlar::Error.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "util/error.h"

// EXPECT that the string `msg` contains `sub`.
#define EXPECT_HAS(msg, sub)                                                                                       \
  do {                                                                                                             \
    const std::string msg_ = (msg);                                                                                \
    EXPECT_NE(msg_.find(sub), std::string::npos) << "message: " << msg_ << "\nexpected it to contain: " << (sub); \
  } while (0)

namespace mlar::test {

// The message of the mlar::Error `f` throws ("" and a test failure if none).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not an mlar::Error: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error was thrown";
  return "";
}

}  // namespace mlar::test
