#include "train/checkpoint.h"

#include <deque>
#include <cstring>
#include <fstream>

#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "util/atomic_output.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace mlar::train {
namespace {

constexpr const char* kState = "state.json";
constexpr const char* kTensors = "tensors.safetensors";

// Exact float32 copy of a view that must be F32 with `shape`.
template <class T>  // Tensor or TypedTensor
void read_exact(const SafetensorsFile& f, const std::string& name, T& dst) {
  const TensorView& v = f.get(name);
  if (v.dtype != DType::F32 || v.shape != dst.shape)
    fail("{}: tensor {} is {} {}, expected F32 {}", f.path(), name, dtype_name(v.dtype), shape_str(v.shape),
         shape_str(dst.shape));
  std::memcpy(dst.ptr(), v.data, v.nbytes());
}

}  // namespace

void write_checkpoint(const fs::path& dir, nlohmann::json state, AdamW& opt) {
  state["format"] = kCheckpointFormat;
  state["version"] = kCheckpointVersion;
  nlohmann::json names = nlohmann::json::array();
  std::vector<NamedTensor> tensors;
  std::deque<TypedTensor> moments;  // copies of the optimizer state as writable tensors
  const auto& params = opt.params();
  for (size_t i = 0; i < params.size(); ++i) {
    names.push_back(params[i].name);
    tensors.push_back({"param/" + params[i].name, params[i].value});
    tensors.push_back({"adam_m/" + params[i].name, &moments.emplace_back(opt.first_moments()[i])});
    tensors.push_back({"adam_v/" + params[i].name, &moments.emplace_back(opt.second_moments()[i])});
  }
  state["params"] = names;
  state["adam_steps"] = opt.steps();
  AtomicDir out(dir, /*force=*/true);
  write_safetensors(out.tmp_path() / kTensors, tensors, DType::F32);
  write_text_file(out.tmp_path() / kState, state.dump(2) + "\n");
  out.commit();
}

bool checkpoint_exists(const fs::path& dir) { return fs::is_regular_file(dir / kState); }

nlohmann::json read_checkpoint_state(const fs::path& dir) {
  const fs::path p = dir / kState;
  if (!fs::is_regular_file(p)) fail("{}: no checkpoint (state.json missing)", dir.string());
  nlohmann::json j;
  try {
    std::ifstream f(p);
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: unreadable checkpoint state: {}", p.string(), e.what());
  }
  if (j.value("format", "") != kCheckpointFormat || j.value("version", 0) != kCheckpointVersion)
    fail("{}: not a version {} {} file", p.string(), kCheckpointVersion, kCheckpointFormat);
  return j;
}

int64_t read_checkpoint_step(const fs::path& dir) { return read_checkpoint_state(dir).at("step").get<int64_t>(); }

void load_checkpoint_tensors(const fs::path& dir, const nlohmann::json& state, AdamW& opt) {
  const auto& params = opt.params();
  const auto& names = state.at("params");
  if (names.size() != params.size())
    fail("{}: checkpoint trains {} tensors, this run {} (different --train or model?)", dir.string(), names.size(),
         params.size());
  SafetensorsFile f((dir / kTensors).string());
  for (size_t i = 0; i < params.size(); ++i) {
    if (names[i].get<std::string>() != params[i].name)
      fail("{}: checkpoint tensor {} is {}, this run's is {}", dir.string(), i, names[i].get<std::string>(),
           params[i].name);
    read_exact(f, "param/" + params[i].name, *params[i].value);
    read_exact(f, "adam_m/" + params[i].name, opt.first_moments()[i]);
    read_exact(f, "adam_v/" + params[i].name, opt.second_moments()[i]);
  }
  opt.set_steps(state.at("adam_steps").get<int64_t>());
}

}  // namespace mlar::train
