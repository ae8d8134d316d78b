// libFuzzer target: a .gguf file through GgufFile (header, metadata of every type,
// tensor infos, data layout), every float tensor through read_tensor, the
// SentencePiece vocabulary of tokenizer.ggml.*, then read_gguf_model (llama
// metadata, tensor shapes, RoPE scaling, tokenizer) and the layout conversion
// load_model applies; a "deepseek2" file through read_gguf_deepseek2_model.
#include "fuzz_util.h"
#include "io/gguf.h"
#include "io/deepseek_read.h"
#include "io/gguf_model.h"
#include "model/weights.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mlar;
  fuzz::MemFile file(data, size);
  try {
    GgufFile f(file.path());
    MLAR_FUZZ_CHECK(f.data_offset() % f.alignment() == 0);
    for (const auto& [key, value] : f.metadata().entries()) {
      (void)value.to_string();
      (void)value.type_name();
      (void)value.to_int();
      (void)value.to_double();
      MLAR_FUZZ_CHECK(f.metadata().find(key) != nullptr);
    }
    for (const GgufTensorInfo& t : f.tensors()) {
      MLAR_FUZZ_CHECK(f.find_tensor(t.name) == &t);
      const auto bytes = f.tensor_bytes(t);
      MLAR_FUZZ_CHECK(bytes.size() == t.nbytes);
      MLAR_FUZZ_CHECK(t.nbytes == 0 || f.data_offset() + t.offset + t.nbytes <= size);
      if (ggml_type_is_float(t.type)) {
        const Tensor x = f.read_tensor(t);
        MLAR_FUZZ_CHECK(x.numel() == t.numel());
      }
    }
    if (auto vocab = read_gguf_spm_vocab(f))
      fuzz::exercise_tokenizer(*make_spm_vocab_tokenizer(std::move(*vocab), f.path()), fuzz::tail_text(data, size));
  } catch (const Error& e) {
    fuzz::expected(e);
  }
  try {
    Model m = read_gguf_model(file.path());
    fuzz::check_config(m.config);
    if (m.tokenizer) fuzz::exercise_tokenizer(*m.tokenizer, fuzz::tail_text(data, size));
    convert_rope_layout(m.config, m.weights, RopeLayout::Half);
  } catch (const Error& e) {
    fuzz::expected(e);
  }
  // general.architecture "deepseek2" goes to the MLA reader instead (load_model).
  try {
    if (is_gguf_deepseek2(file.path())) {
      Model m = read_gguf_deepseek2_model(file.path());
      fuzz::check_config(m.config);
      if (m.tokenizer) fuzz::exercise_tokenizer(*m.tokenizer, fuzz::tail_text(data, size));
    }
  } catch (const Error& e) {
    fuzz::expected(e);
  }
  return 0;
}
