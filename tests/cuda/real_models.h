// The real models of ../shared/data the GPU tests share, loaded once: stories260K
// (llama2.c, F32 weights) and llama3ish (HF directory, BF16 weights, head size 64).
#pragma once
#include "common/test_data.h"
#include "io/load_model.h"

namespace mlar::cudatest {

inline const Model& stories() {
  static const Model m = load_model(test::data_path("models/stories260K/stories260K.bin"),
                                    LoadOptions{.tokenizer = test::data_path("models/stories260K/tok512.bin")});
  return m;
}
inline const Model& llama3ish() {
  static const Model m = load_model(test::data_path("models/llama3ish"));
  return m;
}

}  // namespace mlar::cudatest
