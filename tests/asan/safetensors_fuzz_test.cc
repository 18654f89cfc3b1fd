// Seeded fuzzing of SafetensorsFile::Open under AddressSanitizer: reference files and files written here are
// truncated, extended and byte-mutated; every file that opens has every tensor read in full and checked against
// an independent reading of the layout, and files broken in ways that are certainly invalid must be refused.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/safetensors_file.h"
#include "tests/support/testdata.h"

namespace tuneforge {
namespace {

namespace fs = std::filesystem;
using ::tuneforge::testing::GeneratedReference;

class TempDir {
 public:
  TempDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/safetensors-fuzz-XXXXXX";
    path_ = ::mkdtemp(pattern.data()) != nullptr ? pattern : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

uint64_t LittleEndian64(const std::string& raw) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(raw[i]);
  return n;
}

// Reads every tensor of an opened file in full and checks the layout against the raw bytes, independently of
// the parser: the tensors tile the data section, each spans shape x dtype bytes, and the bytes seen through the
// mapping add up to the bytes of the data section.
void CheckOpenedFile(const SafetensorsFile& file, const std::string& raw) {
  const SafetensorsHeader& header = file.header();
  ASSERT_GE(raw.size(), 8u);
  const uint64_t n = LittleEndian64(raw);
  ASSERT_EQ(header.header_length, n);
  ASSERT_EQ(8 + n + header.data_size, raw.size());
  uint64_t next = 0;
  uint64_t mapped_sum = 0;
  for (const TensorInfo& t : header.tensors) {
    ASSERT_EQ(t.begin, next) << t.name;
    const int64_t element_size = SafetensorsDtypeSize(t.dtype);
    ASSERT_GT(element_size, 0) << t.name;
    uint64_t bytes = static_cast<uint64_t>(element_size);
    for (int64_t d : t.shape) bytes *= static_cast<uint64_t>(d);
    ASSERT_EQ(t.end - t.begin, bytes) << t.name;
    absl::StatusOr<absl::Span<const uint8_t>> span = file.TensorBytes(t.name);
    ASSERT_TRUE(span.ok()) << span.status();
    ASSERT_EQ(span->size(), bytes);
    for (uint8_t b : *span) mapped_sum += b;  // touches every byte: ASan reports any read outside the mapping
    next = t.end;
  }
  ASSERT_EQ(next, header.data_size);
  uint64_t raw_sum = 0;
  for (size_t i = 8 + n; i < raw.size(); ++i) raw_sum += static_cast<unsigned char>(raw[i]);
  ASSERT_EQ(mapped_sum, raw_sum);
}

// The verdict of SafetensorsHeaderLength + ParseSafetensorsHeader on heap buffers exactly as large as the bytes
// they may read.
absl::Status ParseFromHeapCopies(const std::string& raw, const std::string& label) {
  const size_t prefix_size = std::min<size_t>(raw.size(), 8);
  std::unique_ptr<char[]> prefix(new char[prefix_size]);
  std::memcpy(prefix.get(), raw.data(), prefix_size);
  absl::StatusOr<uint64_t> n = SafetensorsHeaderLength(std::string_view(prefix.get(), prefix_size), raw.size(), label);
  if (!n.ok()) return n.status();
  std::unique_ptr<char[]> header(new char[*n]);
  std::memcpy(header.get(), raw.data() + 8, *n);
  return ParseSafetensorsHeader(std::string_view(header.get(), *n), raw.size() - 8 - *n, label).status();
}

const char* const kDtypes[] = {"BOOL", "U8",  "I8",  "F8_E4M3", "F8_E5M2", "I16", "U16", "F16",
                               "BF16", "I32", "U32", "F32",     "I64",     "U64", "F64"};

// A random valid file written by WriteSafetensors: odd names (quotes, backslashes, control and non-ASCII
// characters), scalars, empty tensors, every dtype.
std::string RandomWrittenFile(std::mt19937_64& rng, const std::string& path) {
  static const char* const kPieces[] = {"a", "weight", ".", "0", "\"", "\\", "\n", "\xc3\xa9",
                                        "\xe5\x90\x8d", "_", "/"};
  const int count = static_cast<int>(rng() % 7);
  std::vector<std::string> storage;
  std::vector<TensorToWrite> tensors;
  for (int i = 0; i < count; ++i) {
    std::string name = "t" + std::to_string(i);  // unique whatever follows
    for (int j = static_cast<int>(rng() % 4); j > 0; --j) name += kPieces[rng() % std::size(kPieces)];
    const char* dtype = kDtypes[rng() % std::size(kDtypes)];
    std::vector<int64_t> shape;
    uint64_t elements = 1;
    for (int d = static_cast<int>(rng() % 4); d > 0; --d) {
      shape.push_back(static_cast<int64_t>(rng() % 5));
      elements *= static_cast<uint64_t>(shape.back());
    }
    std::string data(elements * SafetensorsDtypeSize(dtype), '\0');
    for (char& c : data) c = static_cast<char>(rng());
    storage.push_back(std::move(data));
    tensors.push_back(TensorToWrite{name, dtype, shape, {}});
  }
  for (size_t i = 0; i < tensors.size(); ++i) tensors[i].data = storage[i];
  std::map<std::string, std::string> metadata;
  if (rng() % 2 == 0) metadata["format"] = "pt";
  absl::Status written = WriteSafetensors(path, tensors, metadata);
  EXPECT_TRUE(written.ok()) << written;
  std::string raw = testing::ReadFileBytes(path);
  auto file = SafetensorsFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status();
  if (file.ok()) {
    EXPECT_EQ((*file)->header().tensors.size(), tensors.size());
    for (const TensorToWrite& t : tensors) {
      auto bytes = (*file)->TensorBytes(t.name);
      EXPECT_TRUE(bytes.ok()) << bytes.status();
      if (bytes.ok()) {
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(bytes->data()), bytes->size()), std::string(t.data));
      }
    }
  }
  return raw;
}

// The checkpoints and adapters generated at test time by transformers and PEFT (tests/reference/make_hf_reference.py).
std::vector<std::string> ReferenceFiles() {
  std::vector<std::string> files;
  for (const char* c : {"llama", "llama_mha", "llama3_rope", "mistral", "qwen2", "phi3", "phi3_longrope", "gemma"}) {
    const std::string dir = GeneratedReference() + "/" + c;
    files.push_back(testing::ReadFileBytes(dir + "/model.safetensors"));
    files.push_back(testing::ReadFileBytes(dir + "/lora/adapter_model.safetensors"));
  }
  return files;
}

// Changes one digit of the end offset of a random tensor in the header, keeping the header length: the span then
// disagrees with the tensor's shape and dtype, so the file is certainly invalid. False when there is none.
bool BreakAnEndOffset(std::mt19937_64& rng, std::string& raw) {
  const uint64_t n = LittleEndian64(raw);
  std::vector<size_t> ends;  // positions of the last digit of each "data_offsets":[a,b]
  const std::string key = "\"data_offsets\":[";
  for (size_t at = raw.find(key, 8); at != std::string::npos && at < 8 + n; at = raw.find(key, at + 1)) {
    size_t close = raw.find(']', at);
    if (close != std::string::npos && close < 8 + n) ends.push_back(close - 1);
  }
  if (ends.empty()) return false;
  char& digit = raw[ends[rng() % ends.size()]];
  digit = static_cast<char>('0' + (digit - '0' + 1 + rng() % 9) % 10);
  return true;
}

// Replaces a dtype with an unknown one of the same length.
bool BreakADtype(std::mt19937_64& rng, std::string& raw) {
  const uint64_t n = LittleEndian64(raw);
  std::vector<size_t> at;
  const std::string key = "\"dtype\":\"";
  for (size_t p = raw.find(key, 8); p != std::string::npos && p < 8 + n; p = raw.find(key, p + 1)) {
    at.push_back(p + key.size());
  }
  if (at.empty()) return false;
  raw[at[rng() % at.size()]] = 'X';  // no dtype name starts with X
  return true;
}

TEST(SafetensorsFuzzTest, ReferenceFilesOpenAndReadFully) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  for (const std::string& raw : ReferenceFiles()) {
    ASSERT_GT(raw.size(), 1000u);
    const std::string path = dir.path() + "/ref.safetensors";
    testing::WriteFileBytes(path, raw);
    auto file = SafetensorsFile::Open(path);
    ASSERT_TRUE(file.ok()) << file.status();
    CheckOpenedFile(**file, raw);
  }
}

TEST(SafetensorsFuzzTest, MutatedFilesNeverCrashAndBrokenOnesAreRefused) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const uint64_t seed = 20261123;
  std::mt19937_64 rng(seed);
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::vector<std::string> references = ReferenceFiles();
  std::vector<std::string> written;
  for (int i = 0; i < 48; ++i) {  // each write fsyncs, which is slow on some disks
    written.push_back(RandomWrittenFile(rng, dir.path() + "/written-" + std::to_string(i % 4) + ".safetensors"));
  }
  ASSERT_FALSE(::testing::Test::HasFailure());

  const std::string path = dir.path() + "/fuzz.safetensors";
  enum Kind { kTruncate, kAppend, kDataBytes, kAnyBytes, kRandomFile, kEndOffset, kDtype, kLengthPrefix, kKinds };
  std::map<int, int> tried, opened;
  constexpr int kIterations = 6000;
  for (int iteration = 0; iteration < kIterations && !::testing::Test::HasFailure(); ++iteration) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " iteration " + std::to_string(iteration));
    std::string raw = rng() % 8 == 0 ? references[rng() % references.size()] : written[rng() % written.size()];
    const uint64_t n = LittleEndian64(raw);
    const size_t data_start = 8 + n;
    const int kind = static_cast<int>(rng() % kKinds);
    bool must_fail = false;
    bool must_open = false;
    switch (kind) {
      case kTruncate:
        raw.resize(rng() % raw.size());
        must_fail = true;  // the tensors tile the original data section exactly
        break;
      case kAppend:
        for (int k = 1 + static_cast<int>(rng() % 16); k > 0; --k) raw.push_back(static_cast<char>(rng()));
        must_fail = true;
        break;
      case kDataBytes:
        if (raw.size() > data_start) {
          for (int k = 1 + static_cast<int>(rng() % 8); k > 0; --k) {
            raw[data_start + rng() % (raw.size() - data_start)] = static_cast<char>(rng());
          }
        }
        must_open = true;  // tensor bytes are opaque
        break;
      case kAnyBytes:
        for (int k = 1 + static_cast<int>(rng() % 4); k > 0; --k) raw[rng() % raw.size()] = static_cast<char>(rng());
        break;
      case kRandomFile: {
        raw.assign(rng() % 64, '\0');
        for (char& c : raw) c = static_cast<char>(rng());
        if (rng() % 2 == 0 && raw.size() >= 8) {  // a plausible length prefix in front of random bytes
          const uint64_t len = rng() % raw.size();
          for (int i = 0; i < 8; ++i) raw[i] = static_cast<char>((len >> (8 * i)) & 0xff);
        }
        must_fail = raw.size() < 10 || LittleEndian64(raw) > raw.size() - 8 || LittleEndian64(raw) < 2;
        break;
      }
      case kEndOffset:
        must_fail = BreakAnEndOffset(rng, raw);
        break;
      case kDtype:
        must_fail = BreakADtype(rng, raw);
        break;
      case kLengthPrefix: {
        const int64_t delta = static_cast<int64_t>(rng() % 33) - 16;
        const uint64_t len = delta == 0 ? n + 1 : n + delta;
        for (int i = 0; i < 8; ++i) raw[i] = static_cast<char>((len >> (8 * i)) & 0xff);
        break;
      }
    }
    testing::WriteFileBytes(path, raw);
    ++tried[kind];
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
    // ASan does not watch mmap'd memory, so run the same header through the parser from exact-size heap copies,
    // where one byte too far is reported; the verdict must be the same.
    const absl::Status heap_verdict = ParseFromHeapCopies(raw, path);
    EXPECT_EQ(heap_verdict, file.status());
    if (file.ok()) {
      ++opened[kind];
      EXPECT_FALSE(must_fail) << "kind " << kind << " opened a broken file";
      CheckOpenedFile(**file, raw);
    } else {
      EXPECT_FALSE(must_open) << "kind " << kind << ": " << file.status();
      EXPECT_TRUE(file.status().code() == absl::StatusCode::kInvalidArgument) << file.status();
      EXPECT_NE(file.status().message().find(path), std::string::npos) << file.status();
    }
  }
  std::string summary = "kind: tried/opened";
  for (int kind = 0; kind < kKinds; ++kind) {
    summary += " " + std::to_string(kind) + ":" + std::to_string(tried[kind]) + "/" + std::to_string(opened[kind]);
  }
  std::printf("%s\n", summary.c_str());
  // Every kind ran often, and the ones that keep the file valid did open.
  for (int kind = 0; kind < kKinds; ++kind) EXPECT_GT(tried[kind], kIterations / kKinds / 2) << kind;
  EXPECT_EQ(opened[kDataBytes], tried[kDataBytes]);
  EXPECT_EQ(opened[kTruncate], 0);
  EXPECT_EQ(opened[kAppend], 0);
}

}  // namespace
}  // namespace tuneforge
