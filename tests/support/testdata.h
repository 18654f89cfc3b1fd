// Paths of the reference data the tests read, and scratch directories. Two sets of Hugging Face reference data:
// - generated: what tests/reference/make_hf_reference.py writes at test time (ctest fixture hf_reference_eager) into
//   the build tree; every clone has it, so tests that need "a valid model / adapter" use it;
// - shared: ../shared/testdata beside the clone (fixed transformers 4.44 / PEFT 0.12 cases, real tokenizer
//   vocabularies). Tests that need it run when it is there and report themselves skipped, with the reason, when not.
#ifndef TUNEFORGE_TESTS_SUPPORT_TESTDATA_H_
#define TUNEFORGE_TESTS_SUPPORT_TESTDATA_H_

#include <string>

namespace tuneforge::testing {

// ../shared/testdata relative to the source tree; TUNEFORGE_SHARED_TESTDATA in the environment overrides it.
std::string SharedTestdata();
// Why a test that reads SharedTestdata() cannot run here ("" when the folder is there).
std::string SharedTestdataMissing();

// The eager-attention cases generated at test time: GeneratedReference()/<case> for llama, llama_mha, llama3_rope,
// mistral, qwen2, phi3, phi3_longrope and gemma, each a model directory (config.json, generation_config.json,
// model.safetensors) with inputs.json, logits.safetensors and a PEFT adapter in lora/. They differ from the shared
// 4.44 cases: config.json is transformers 5's (rope_parameters, tie_word_embeddings always written), seeds are drawn
// per run. TUNEFORGE_GENERATED_REFERENCE in the environment overrides the build-tree location.
std::string GeneratedReference();
// The Parquet files and manifest.json the parquet_files test writes (tests/reference/make_parquet_files.py);
// TUNEFORGE_PARQUET_REFERENCE in the environment overrides the path. "" when they are not there.
std::string ParquetReference();
// The dataset repo layouts and what the datasets library decided about each, which the hub_layouts test writes
// (tests/reference/make_hub_layouts.py); TUNEFORGE_HUB_LAYOUTS in the environment overrides the path. "" when they
// are not there.
std::string HubLayoutsReference();
// Why a test that reads GeneratedReference() cannot run here ("" when the cases are there).
std::string GeneratedReferenceMissing();

// The whole content of a file ("" when it cannot be read), and a write that replaces a file's content.
std::string ReadFileBytes(const std::string& path);
void WriteFileBytes(const std::string& path, const std::string& bytes);

// A fresh directory under $TMPDIR (default /tmp), removed by the destructor.
// Writes `content` to dir/relative, creating parent directories; returns the path.
std::string WriteFileUnder(const std::string& dir, const std::string& relative, const std::string& content);

class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix = "tuneforge-test");
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  // Writes `content` to path()/relative, creating parent directories.
  std::string WriteFile(const std::string& relative, const std::string& content) const;

 private:
  std::string path_;
};

}  // namespace tuneforge::testing

// First statement of a test (or of its fixture's SetUp) that reads the data: ends the test as skipped, with the
// reason, when the data is not here. A macro because only a return from the test body itself ends the test.
#define TUNEFORGE_SKIP_WITHOUT_SHARED_TESTDATA()                                                        \
  if (const std::string tuneforge_why_ = ::tuneforge::testing::SharedTestdataMissing(); !tuneforge_why_.empty()) \
  GTEST_SKIP() << tuneforge_why_
#define TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE()                                                       \
  if (const std::string tuneforge_why_ = ::tuneforge::testing::GeneratedReferenceMissing();                \
      !tuneforge_why_.empty())                                                                             \
  GTEST_SKIP() << tuneforge_why_

#endif  // TUNEFORGE_TESTS_SUPPORT_TESTDATA_H_
