// Reference data location and scratch directories for tests.
#include "tests/support/testdata.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace tuneforge::testing {

namespace {

// The environment variable `name` when it is set and not empty, else the configured path.
std::string EnvOr(const char* name, const char* configured) {
  if (const char* env = std::getenv(name); env != nullptr && *env != '\0') return env;
  return std::filesystem::weakly_canonical(configured).string();
}

}  // namespace

std::string SharedTestdata() { return EnvOr("TUNEFORGE_SHARED_TESTDATA", TUNEFORGE_SHARED_TESTDATA); }

std::string SharedTestdataMissing() {
  const std::string dir = SharedTestdata();
  if (std::filesystem::is_directory(dir)) return "";
  return "../shared/testdata is not beside the clone: " + dir +
         " does not exist (the fixed transformers 4.44 / PEFT 0.12 reference cases and the real tokenizer "
         "vocabularies; TUNEFORGE_SHARED_TESTDATA names another place)";
}

std::string GeneratedReference() { return EnvOr("TUNEFORGE_GENERATED_REFERENCE", TUNEFORGE_GENERATED_REFERENCE); }

std::string ParquetReference() {
  const std::string dir = EnvOr("TUNEFORGE_PARQUET_REFERENCE", TUNEFORGE_PARQUET_REFERENCE);
  return std::filesystem::exists(dir + "/manifest.json") ? dir : "";
}

std::string HubLayoutsReference() {
  const std::string dir = EnvOr("TUNEFORGE_HUB_LAYOUTS", TUNEFORGE_HUB_LAYOUTS);
  return std::filesystem::exists(dir + "/manifest.json") ? dir : "";
}

std::string GeneratedReferenceMissing() {
  const std::string dir = GeneratedReference();
  if (std::filesystem::is_regular_file(dir + "/llama/model.safetensors")) return "";
  return "the reference cases generated at test time are not in " + dir +
         ": the ctest test hf_reference_eager writes them with transformers and PEFT (it reports itself skipped "
         "when no Python has them); run it first, e.g. ctest -R '^hf_reference_eager$'";
}

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void WriteFileBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

ScratchDir::ScratchDir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + templ);
  path_ = templ;
  std::filesystem::permissions(path_, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                                          std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                                          std::filesystem::perms::others_exec);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string ScratchDir::WriteFile(const std::string& relative, const std::string& content) const {
  return WriteFileUnder(path_, relative, content);
}

std::string WriteFileUnder(const std::string& dir, const std::string& relative, const std::string& content) {
  std::filesystem::path p = std::filesystem::path(dir) / relative;
  std::filesystem::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + p.string());
  return p.string();
}

}  // namespace tuneforge::testing
