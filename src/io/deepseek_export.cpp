// export: DeepSeek layout, then the format's writer, atomically.
#include "io/deepseek_export.h"

#include "util/atomic_output.h"

namespace mlar {

std::vector<std::string> export_deepseek(Model m, DeepseekFormat f, const std::string& out,
                                         const DeepseekExportOptions& opts, bool force) {
  check_output_free(out, force);
  // One layer at a time: each is rewritten into the layout when the writer asks for
  // it, written, and dropped (unchanged tensors stay views of the source file).
  const DeepseekLayoutPlan plan = plan_deepseek_layout(m, f);
  std::vector<std::string> notes = plan.notes;
  Model shell;
  shell.config = plan.after;
  shell.source = m.source;
  shell.format = m.format;
  shell.tokenizer = m.tokenizer;
  shell.weights.embed = std::move(m.weights.embed);
  shell.weights.final_norm = std::move(m.weights.final_norm);
  shell.weights.lm_head = std::move(m.weights.lm_head);
  deepseek_layout_globals(plan, shell.weights, /*scale_embed=*/false);
  DeepseekExportOptions o = opts;
  o.embed_scale = plan.residual_scale;  // rescaled in chunks while it is written
  auto layer = [&](int64_t l) {
    LayerWeights L = std::move(m.weights.layers.at(static_cast<size_t>(l)));
    return deepseek_layout_layer(plan, std::move(L));
  };
  if (f == DeepseekFormat::HfDeepseekV3) {
    AtomicDir dir(out, force);
    write_deepseek_v3_layers(shell, layer, dir.tmp_path(), o);
    dir.commit();
  } else {
    write_gguf_deepseek2_layers(shell, layer, out, o, force, &notes);
  }
  return notes;
}

}  // namespace mlar
