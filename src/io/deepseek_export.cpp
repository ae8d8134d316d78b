// export: DeepSeek layout, then the format's writer, atomically.
#include "io/deepseek_export.h"

#include "util/atomic_output.h"

namespace mlar {

std::vector<std::string> export_deepseek(Model m, DeepseekFormat f, const std::string& out,
                                         const DeepseekExportOptions& opts, bool force) {
  check_output_free(out, force);
  std::vector<std::string> notes;
  const Model d = deepseek_layout(std::move(m), f, &notes);
  if (f == DeepseekFormat::HfDeepseekV3) {
    AtomicDir dir(out, force);
    write_deepseek_v3(d, dir.tmp_path(), opts);
    dir.commit();
  } else {
    write_gguf_deepseek2(d, out, opts, force, &notes);
  }
  return notes;
}

}  // namespace mlar
