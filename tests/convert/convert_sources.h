// The GQA models every conversion test runs on: stories260K from its llama2.c .bin
// (with tok512.model), from its .gguf, and from an HF directory written by
// write_hf_llama (load_model keeps every GQA model in the half RoPE layout); the
// same .bin read by read_llama2c as stored (interleaved rows); and the llama /
// qwen2 / mistral family fixtures. Each is loaded once per test program, with a
// short token sequence to run.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/hf_fixtures.h"
#include "common/test_data.h"
#include "io/hf_model.h"
#include "io/llama2c.h"
#include "io/load_model.h"
#include "tokenizer/load.h"
#include "util/utf8.h"

namespace mlar::test {

// Sources that are files on disk (the CLI tests run on these).
inline const std::vector<std::string>& convert_file_source_names() {
  static const std::vector<std::string> names = {"stories-bin", "stories-gguf", "stories-hf",
                                                 "llama",       "qwen2",        "mistral"};
  return names;
}

// A parameterised conversion case: a source, converted with or without --absorb.
struct ConvertCase {
  std::string source;
  bool absorb;
};

// Every source, each without and with absorption.
inline std::vector<ConvertCase> all_cases();

// gtest parameter names: "stories_bin_naive", "qwen2_absorbed", ...
inline std::string case_name(const testing::TestParamInfo<ConvertCase>& i) {
  std::string s = i.param.source + (i.param.absorb ? "_absorbed" : "_naive");
  for (char& ch : s)
    if (ch == '-') ch = '_';
  return s;
}

// Every source, with "stories-interleaved" (the .bin's own row order) too.
inline const std::vector<std::string>& convert_source_names() {
  static const std::vector<std::string> names = [] {
    auto n = convert_file_source_names();
    n.insert(n.begin() + 1, "stories-interleaved");
    return n;
  }();
  return names;
}

inline std::vector<ConvertCase> all_cases() {
  std::vector<ConvertCase> out;
  for (const auto& s : convert_source_names())
    for (bool a : {false, true}) out.push_back({s, a});
  return out;
}

inline std::string stories_bin() { return data_path("models/stories260K/stories260K.bin"); }
inline std::string stories_gguf() { return data_path("models/stories260K/stories260K.gguf"); }
inline std::string stories_tok() { return data_path("models/stories260K/tok512.model"); }
inline std::string dev_text_path() { return data_path("text/tinystories-dev.txt"); }

// Where the source lives on disk and what --tokenizer it needs (empty: none).
struct SourceFile {
  std::string path, tokenizer;
};

inline SourceFile convert_source_file(const std::string& name) {
  static std::map<std::string, SourceFile> files;
  auto it = files.find(name);
  if (it != files.end()) return it->second;
  SourceFile f;
  if (name == "stories-bin") {
    f = {stories_bin(), stories_tok()};
  } else if (name == "stories-gguf") {
    f = {stories_gguf(), ""};
  } else if (name == "stories-hf") {
    const Model m = load_model(stories_bin(), LoadOptions{stories_tok()});
    const std::string dir = temp_dir("stories-hf") + "/hf";
    std::filesystem::create_directory(dir);
    write_hf_llama(m, dir);
    f = {dir, ""};
  } else {
    f = {write_family_fixture(name, 7), ""};
  }
  return files[name] = f;
}

inline const Model& convert_source(const std::string& name) {
  static std::map<std::string, Model> models;
  auto it = models.find(name);
  if (it != models.end()) return it->second;
  if (name == "stories-interleaved") {
    Model m = read_llama2c(stories_bin());
    m.tokenizer = load_tokenizer(stories_tok());
    EXPECT_EQ(m.config.rope_layout, RopeLayout::Interleaved);
    return models[name] = std::move(m);
  }
  const SourceFile f = convert_source_file(name);
  return models[name] = load_model(f.path, LoadOptions{f.tokenizer});
}

// BOS + a few dozen ids: tinystories text for stories260K, seeded ids for fixtures.
inline std::vector<int32_t> convert_tokens(const Model& m, size_t n = 40) {
  std::vector<int32_t> ids{m.config.bos_token_id};
  if (m.tokenizer) {
    const auto body = m.tokenizer->encode(read_utf8_file(dev_text_path()).substr(0, 400));
    ids.insert(ids.end(), body.begin(), body.begin() + std::min(body.size(), n - 1));
  } else {
    std::mt19937 rng(5);
    std::uniform_int_distribution<int32_t> pick(3, int32_t(m.config.vocab_size - 1));
    while (ids.size() < n) ids.push_back(pick(rng));
  }
  return ids;
}

}  // namespace mlar::test
