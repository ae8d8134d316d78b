#include "util/json_depth.h"

#include "util/error.h"

namespace mlar {

size_t json_nesting_depth(std::string_view text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest) deepest = depth;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

void check_json_depth(std::string_view text, const std::string& source) {
  if (json_nesting_depth(text) > kMaxJsonDepth)
    fail("{}: JSON nested deeper than {} levels (not a valid file of this kind)", source, kMaxJsonDepth);
}

}  // namespace mlar
