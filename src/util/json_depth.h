// A guard for JSON read from files: nlohmann::json copies, compares and dumps
// values recursively, one stack frame per nesting level, so a file of a few
// megabytes of '[' would overflow the stack. Readers check the text first.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace mlar {

// Far deeper than any config.json, tokenizer.json or safetensors header.
inline constexpr size_t kMaxJsonDepth = 512;

// The deepest nesting of arrays and objects in `text` ('[' and '{' outside
// strings); text that is not JSON gives some number, for the parser to reject.
size_t json_nesting_depth(std::string_view text);

// Throws mlar::Error "<source>: JSON nested deeper than 512 levels" for such text.
void check_json_depth(std::string_view text, const std::string& source);

}  // namespace mlar
