// libFuzzer target: the config.json of a DeepSeek-V3 directory through
// parse_deepseek_v3_config (as read_deepseek_v3_model reads it), then the checks the
// reader's config must pass (validate_mla_config, the layer tensor shapes). A config
// the reader accepts and the exporter can write (deepseek_v3_config_json) must read
// back to the same model configuration.
#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "io/deepseek_export.h"
#include "io/deepseek_read.h"
#include "io/mla_model.h"
#include "model/config.h"
#include "model/mla.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mlar;
  const std::string src = "config.json";
  const std::string text(reinterpret_cast<const char*>(data), size);
  ModelConfig c;
  try {
    c = parse_deepseek_v3_config(text, src);
    fuzz::check_config(c);
    MLAR_FUZZ_CHECK(c.mla.has_value());
    fuzz::check_mla_config(c, src);
  } catch (const Error& e) {
    fuzz::expected(e);
    return 0;
  }
  nlohmann::json written;
  try {
    written = deepseek_v3_config_json(c, "float32", src);
  } catch (const Error& e) {
    fuzz::expected(e);  // not every readable config is exportable (e.g. interleaving the exporter refuses)
    return 0;
  }
  const ModelConfig back = parse_deepseek_v3_config(written.dump(), "written config.json");
  MLAR_FUZZ_CHECK(config_to_json(back) == config_to_json(c));
  MLAR_FUZZ_CHECK(mla_config_to_json(*back.mla) == mla_config_to_json(*c.mla));
  return 0;
}
