#include "io/json_file.h"

#include "util/atomic_output.h"

namespace mlar {

void write_json_file(const std::filesystem::path& path, const nlohmann::json& j, bool force) {
  AtomicFile f(path, force);
  write_text_file(f.tmp_path(), j.dump(2) + "\n");
  f.commit();
}

const char* torch_dtype_name(DType d) {
  switch (d) {
    case DType::F16: return "float16";
    case DType::BF16: return "bfloat16";
    default: return "float32";
  }
}

}  // namespace mlar
