// libFuzzer target: a config.json through parse_hf_config (as read_hf_config reads
// it) and, when it has an "mla" section, mla_config_from_json, validate_mla_config
// and the tensor shapes the MLA reader derives from them. A config the reader
// accepts must also survive the writer: hf_config_json / mla_config_to_json read
// back to the same config.
#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "io/hf_model.h"
#include "io/mla_model.h"
#include "model/config.h"
#include "model/mla.h"
#include "util/json_depth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mlar;
  using nlohmann::json;
  const std::string src = "config.json";
  json j;
  try {
    // As read_hf_config reads the file.
    check_json_depth(std::string_view(reinterpret_cast<const char*>(data), size), src);
    j = json::parse(data, data + size);
  } catch (const Error& e) {
    fuzz::expected(e);
    return 0;
  } catch (const json::exception&) {
    return 0;  // read_hf_config reports this as "malformed JSON"
  }
  try {
    ModelConfig c = parse_hf_config(j, src);
    fuzz::check_config(c);
    const ModelConfig back = parse_hf_config(hf_config_json(c), "written config.json");
    MLAR_FUZZ_CHECK(config_to_json(back) == config_to_json(c));
    (void)c.q_dim(), (void)c.kv_dim(), (void)c.group_size(), (void)c.kv_values_per_token_layer();
    if (j.is_object() && j.contains("mla")) {
      c.mla = mla_config_from_json(j.at("mla"), src);
      fuzz::check_mla_config(c, src);
      const MlaConfig again = mla_config_from_json(mla_config_to_json(*c.mla), "written mla");
      MLAR_FUZZ_CHECK(mla_config_to_json(again) == mla_config_to_json(*c.mla));
    }
  } catch (const Error& e) {
    fuzz::expected(e);
  }
  return 0;
}
