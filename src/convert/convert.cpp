#include "convert/convert.h"

#include "convert/absorb.h"
#include "convert/repeat.h"
#include "util/error.h"

namespace mlar {

RopeMode parse_rope_mode(const std::string& name) {
  if (name == "repeat") return RopeMode::Repeat;
  if (name == "extend") return RopeMode::Extend;
  fail("--rope-mode '{}' is unknown (available: repeat, extend)", name);
}

Model convert_model(Model&& gqa, const ConvertOptions& opts) {
  if (parse_rope_mode(opts.rope_mode) == RopeMode::Extend)
    fail("--rope-mode extend needs calibration text: use convert_extend (convert/extend.h), or the CLI's --calib");
  if (opts.absorb && gqa.config.qk_norm) fail("{}: {}", gqa.source, qk_norm_absorb_refusal());  // before any work
  RepeatOptions ro;
  ro.num_kv_heads = opts.num_kv_heads;
  ro.head_dim = opts.head_dim;
  ro.progress = opts.progress;
  Model m = convert_repeat(std::move(gqa), ro);
  if (opts.absorb) absorb(m);
  return m;
}

}  // namespace mlar
