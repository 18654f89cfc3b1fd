// Tests of safetensors header validation: the reference files, one case per rule, and a seeded fuzz run
// that must never crash nor accept an inconsistent header.
#include "common/safetensors_header.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/status_matchers.h"
#include "tests/support/testdata.h"

namespace tuneforge {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::tuneforge::testing::IsOk;
using ::tuneforge::testing::ScratchDir;
using ::tuneforge::testing::GeneratedReference;
using ::tuneforge::testing::StatusIs;
using Json = nlohmann::json;

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string LittleEndian64(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

// A whole file: the 8-byte length, the header and `data_size` zero bytes.
std::string FileBytes(const std::string& header, uint64_t data_size) {
  return LittleEndian64(header.size()) + header + std::string(data_size, '\0');
}

// A checkpoint generated at test time by transformers' save_pretrained (tests/reference/make_hf_reference.py).
std::string ReferenceModel(const std::string& name) { return GeneratedReference() + "/" + name + "/model.safetensors"; }

TEST(SafetensorsDtypeSizeTest, KnowsEveryDtypeOfTheFormat) {
  EXPECT_EQ(SafetensorsDtypeSize("BOOL"), 1);
  EXPECT_EQ(SafetensorsDtypeSize("U8"), 1);
  EXPECT_EQ(SafetensorsDtypeSize("I8"), 1);
  EXPECT_EQ(SafetensorsDtypeSize("F8_E4M3"), 1);
  EXPECT_EQ(SafetensorsDtypeSize("F8_E5M2"), 1);
  EXPECT_EQ(SafetensorsDtypeSize("I16"), 2);
  EXPECT_EQ(SafetensorsDtypeSize("U16"), 2);
  EXPECT_EQ(SafetensorsDtypeSize("F16"), 2);
  EXPECT_EQ(SafetensorsDtypeSize("BF16"), 2);
  EXPECT_EQ(SafetensorsDtypeSize("I32"), 4);
  EXPECT_EQ(SafetensorsDtypeSize("U32"), 4);
  EXPECT_EQ(SafetensorsDtypeSize("F32"), 4);
  EXPECT_EQ(SafetensorsDtypeSize("I64"), 8);
  EXPECT_EQ(SafetensorsDtypeSize("U64"), 8);
  EXPECT_EQ(SafetensorsDtypeSize("F64"), 8);
  EXPECT_EQ(SafetensorsDtypeSize("f32"), -1);
  EXPECT_EQ(SafetensorsDtypeSize("Q4_0"), -1);
  EXPECT_EQ(SafetensorsDtypeSize(""), -1);
}

TEST(ReadSafetensorsHeaderTest, ReadsTheReferenceLlamaCheckpoint) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string path = ReferenceModel("llama");
  auto header = ReadSafetensorsHeader(path, "model.safetensors");
  ASSERT_THAT(header, IsOk());
  // 3 layers x 9 tensors + embed_tokens, norm and the untied lm_head.
  EXPECT_EQ(header->tensors.size(), 30u);
  EXPECT_EQ(header->header_length, 3056u);
  EXPECT_EQ(header->data_size, std::filesystem::file_size(path) - 8 - 3056);
  EXPECT_EQ(header->metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
  EXPECT_EQ(header->tensors.front().begin, 0u);
  EXPECT_EQ(header->tensors.back().end, header->data_size);
  for (size_t i = 1; i < header->tensors.size(); ++i) {
    EXPECT_EQ(header->tensors[i].begin, header->tensors[i - 1].end) << header->tensors[i].name;
  }
  const TensorInfo* embed = header->Find("model.embed_tokens.weight");
  ASSERT_NE(embed, nullptr);
  EXPECT_EQ(embed->dtype, "F32");
  EXPECT_THAT(embed->shape, ElementsAre(320, 48));
  EXPECT_EQ(embed->end - embed->begin, 320u * 48u * 4u);
  EXPECT_EQ(header->Find("model.embed_tokens"), nullptr);
}

TEST(ReadSafetensorsHeaderTest, ReadsASmallFileWrittenHere) {
  ScratchDir dir;
  const std::string path =
      dir.WriteFile("w.safetensors", FileBytes(R"({"b": {"dtype": "F32", "shape": [2, 2], "data_offsets": [4, 20]}, )"
                                               R"("a": {"dtype": "I16", "shape": [2], "data_offsets": [0, 4]}})",
                                               20));
  auto header = ReadSafetensorsHeader(path, "w.safetensors");
  ASSERT_THAT(header, IsOk());
  ASSERT_EQ(header->tensors.size(), 2u);
  EXPECT_EQ(header->tensors[0].name, "a");  // sorted by begin, not by name or file order
  EXPECT_EQ(header->tensors[1].name, "b");
  EXPECT_THAT(header->tensors[1].shape, ElementsAre(2, 2));
  EXPECT_TRUE(header->metadata.empty());
  EXPECT_EQ(header->data_size, 20u);
}

TEST(ReadSafetensorsHeaderTest, MissingFileIsNotFound) {
  ScratchDir dir;
  EXPECT_THAT(ReadSafetensorsHeader(dir.path() + "/model.safetensors", "model.safetensors"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("model.safetensors")));
}

TEST(ReadSafetensorsHeaderTest, TruncatedFileNamesTheMissingBytes) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  const std::string bytes = ReadBytes(ReferenceModel("llama"));
  const std::string path = dir.WriteFile("model.safetensors", bytes.substr(0, bytes.size() - 100));
  EXPECT_THAT(ReadSafetensorsHeader(path, "model.safetensors"),
              StatusIs(kInvalid, HasSubstr("model.safetensors: tensor '")));
  EXPECT_THAT(ReadSafetensorsHeader(path, "model.safetensors"),
              StatusIs(kInvalid, HasSubstr("reach past the data section of 372956 bytes")));
  // Cut inside the header: the length no longer fits the file.
  dir.WriteFile("model.safetensors", bytes.substr(0, 1000));
  EXPECT_THAT(
      ReadSafetensorsHeader(path, "model.safetensors"),
      StatusIs(kInvalid, HasSubstr("model.safetensors: header length 3056 does not fit in a file of 1000 bytes")));
  dir.WriteFile("model.safetensors", bytes.substr(0, 5));
  EXPECT_THAT(ReadSafetensorsHeader(path, "model.safetensors"),
              StatusIs(kInvalid, HasSubstr("model.safetensors: file is 5 bytes, too short")));
}

TEST(ReadSafetensorsHeaderTest, TrailingBytesAreRejected) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  const std::string path = dir.WriteFile("model.safetensors", ReadBytes(ReferenceModel("llama")) + "x");
  EXPECT_THAT(ReadSafetensorsHeader(path, "model.safetensors"),
              StatusIs(kInvalid, HasSubstr("the tensors end at byte 373056 but the data section holds 373057 bytes")));
}

TEST(ReadSafetensorsHeaderTest, DirectoryIsNotAFile) {
  ScratchDir dir;
  EXPECT_THAT(ReadSafetensorsHeader(dir.path(), "weights"), StatusIs(kInvalid, HasSubstr("weights")));
}

TEST(SafetensorsHeaderLengthTest, ChecksTheLengthPrefix) {
  auto length = SafetensorsHeaderLength(LittleEndian64(100) + "{", 108, "a.safetensors");
  ASSERT_THAT(length, IsOk());
  EXPECT_EQ(*length, 100u);
  EXPECT_THAT(SafetensorsHeaderLength(LittleEndian64(100), 107, "a.safetensors"),
              StatusIs(kInvalid, HasSubstr("a.safetensors: header length 100 does not fit in a file of 107 bytes")));
  EXPECT_THAT(SafetensorsHeaderLength(LittleEndian64(1), 100, "a.safetensors"),
              StatusIs(kInvalid, HasSubstr("header length 1 is outside [2, 100000000]")));
  EXPECT_THAT(SafetensorsHeaderLength(LittleEndian64(100'000'001), 200'000'000, "a.safetensors"),
              StatusIs(kInvalid, HasSubstr("header length 100000001 is outside")));
  EXPECT_THAT(SafetensorsHeaderLength(LittleEndian64(~uint64_t{0}), ~uint64_t{0}, "a.safetensors"),
              StatusIs(kInvalid, HasSubstr("is outside")));
  EXPECT_THAT(SafetensorsHeaderLength("\x10\0\0", 100, "a.safetensors"), StatusIs(kInvalid, HasSubstr("too short")));
  EXPECT_THAT(SafetensorsHeaderLength(LittleEndian64(2), 4, "a.safetensors"), StatusIs(kInvalid, HasSubstr("4 bytes")));
}

// One rule per case; each message names the file and says what is wrong.
struct BadHeaderCase {
  std::string name;
  std::string header;
  uint64_t data_size;
  std::string message;
};

void PrintTo(const BadHeaderCase& c, std::ostream* os) { *os << c.name; }

class BadHeaderTest : public ::testing::TestWithParam<BadHeaderCase> {};

TEST_P(BadHeaderTest, IsRejectedWithItsReason) {
  const BadHeaderCase& c = GetParam();
  EXPECT_THAT(ParseSafetensorsHeader(c.header, c.data_size, "model.safetensors"),
              StatusIs(kInvalid, HasSubstr("model.safetensors: " + c.message)));
}

INSTANTIATE_TEST_SUITE_P(
    Rules, BadHeaderTest,
    ::testing::Values(
        BadHeaderCase{"NotJson", "{\"x\": ", 0, "header is not valid JSON"},
        BadHeaderCase{"NotAnObject", "[1, 2]", 0, "header must be a JSON object, got array"},
        BadHeaderCase{"TooShort", "{", 0, "header length 1 is outside [2, 100000000]"},
        BadHeaderCase{"DuplicateTensor",
                      R"({"x": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
                          "x": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}})",
                      2, "header names 'x' more than once"},
        BadHeaderCase{"DuplicateFieldInEntry",
                      R"({"x": {"dtype": "U8", "dtype": "F32", "shape": [1], "data_offsets": [0, 1]}})", 1,
                      "header names 'dtype' more than once"},
        BadHeaderCase{"MetadataNotObject", R"({"__metadata__": "pt"})", 0, "__metadata__ must be an object of strings"},
        BadHeaderCase{"MetadataValueNotString", R"({"__metadata__": {"format": 1}})", 0,
                      "__metadata__ entry 'format' must be a string, got number"},
        BadHeaderCase{"EntryNotObject", R"({"x": [0, 1]})", 0, "tensor 'x' must be an object"},
        BadHeaderCase{"UnknownDtype", R"({"x": {"dtype": "F12", "shape": [1], "data_offsets": [0, 1]}})", 1,
                      "tensor 'x' has unknown dtype 'F12'"},
        BadHeaderCase{"MissingDtype", R"({"x": {"shape": [1], "data_offsets": [0, 1]}})", 1,
                      "tensor 'x' has no string 'dtype'"},
        BadHeaderCase{"NegativeDim", R"({"x": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 0]}})", 0,
                      "tensor 'x' shape entry must be a non-negative integer, got -1"},
        BadHeaderCase{"FloatDim", R"({"x": {"dtype": "U8", "shape": [1.0], "data_offsets": [0, 1]}})", 1,
                      "tensor 'x' shape entry must be a non-negative integer, got 1.0"},
        BadHeaderCase{"ShapeNotList", R"({"x": {"dtype": "U8", "shape": 4, "data_offsets": [0, 4]}})", 4,
                      "tensor 'x' has no 'shape' list"},
        BadHeaderCase{"MissingOffsets", R"({"x": {"dtype": "U8", "shape": [1]}})", 1,
                      "tensor 'x' has no 'data_offsets' [begin, end] pair"},
        BadHeaderCase{"ThreeOffsets", R"({"x": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1, 2]}})", 1,
                      "tensor 'x' has no 'data_offsets' [begin, end] pair"},
        BadHeaderCase{"NegativeOffset", R"({"x": {"dtype": "U8", "shape": [0], "data_offsets": [-1, 0]}})", 0,
                      "tensor 'x' data_offsets begin must be a non-negative integer, got -1"},
        BadHeaderCase{"EndBeforeBegin", R"({"x": {"dtype": "U8", "shape": [1], "data_offsets": [2, 1]}})", 2,
                      "tensor 'x' data_offsets [2, 1] end before they begin"},
        BadHeaderCase{"SpanMismatch", R"({"x": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}})", 12,
                      "tensor 'x' data_offsets [0, 12] span 12 bytes but F32 [2, 2] needs 16"},
        BadHeaderCase{"ElementCountOverflows",
                      R"({"x": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})", 0,
                      "tensor 'x' F32 [4294967296, 4294967296] is too large to address"},
        BadHeaderCase{"ByteCountOverflows",
                      R"({"x": {"dtype": "F64", "shape": [4611686018427387904], "data_offsets": [0, 0]}})", 0,
                      "tensor 'x' F64 [4611686018427387904] is too large to address"},
        BadHeaderCase{"ZeroDimHidesOverflowButSpanMustBeZero",
                      R"({"x": {"dtype": "F64", "shape": [0, 4611686018427387904], "data_offsets": [0, 8]}})", 8,
                      "tensor 'x' data_offsets [0, 8] span 8 bytes but F64 [0, 4611686018427387904] needs 0"},
        BadHeaderCase{"PastDataSection", R"({"x": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}})", 3,
                      "tensor 'x' data_offsets [0, 4] reach past the data section of 3 bytes"},
        BadHeaderCase{"FirstNotAtZero", R"({"x": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}})", 6,
                      "the first tensor 'x' starts at byte 2"},
        BadHeaderCase{"Gap",
                      R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                          "b": {"dtype": "U8", "shape": [4], "data_offsets": [5, 9]}})",
                      9, "there is a gap of 1 bytes between tensor 'a' (ends at 4) and tensor 'b' (starts at 5)"},
        BadHeaderCase{"Overlap",
                      R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                          "b": {"dtype": "U8", "shape": [4], "data_offsets": [3, 7]}})",
                      7, "tensor 'b' data_offsets [3, 7] overlap tensor 'a' which ends at 4"},
        BadHeaderCase{"SameSpanTwice",
                      R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                          "b": {"dtype": "I32", "shape": [1], "data_offsets": [0, 4]}})",
                      4, "tensor 'b' data_offsets [0, 4] overlap tensor 'a' which ends at 4"},
        BadHeaderCase{"ShortOfDataSize", R"({"x": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}})", 5,
                      "the tensors end at byte 4 but the data section holds 5 bytes"},
        BadHeaderCase{"EmptyHeaderWithData", "{}", 1, "the tensors end at byte 0 but the data section holds 1 bytes"},
        BadHeaderCase{"InvalidUtf8", "{\"\xff\": 1}", 0, "header is not valid JSON"}),
    [](const ::testing::TestParamInfo<BadHeaderCase>& info) { return info.param.name; });

TEST(ParseSafetensorsHeaderTest, AcceptsScalarsEmptyTensorsAndPadding) {
  const std::string header =
      R"({"__metadata__": {"format": "pt", "note": ""},
          "scalar": {"dtype": "F64", "shape": [], "data_offsets": [0, 8]},
          "empty": {"dtype": "F32", "shape": [0, 3], "data_offsets": [8, 8]},
          "v": {"dtype": "BF16", "shape": [3], "data_offsets": [8, 14], "extra": "ignored"}}     )";
  auto parsed = ParseSafetensorsHeader(header, 14, "t.safetensors");
  ASSERT_THAT(parsed, IsOk());
  ASSERT_EQ(parsed->tensors.size(), 3u);
  EXPECT_EQ(parsed->tensors[0].name, "scalar");
  EXPECT_TRUE(parsed->tensors[0].shape.empty());
  EXPECT_EQ(parsed->tensors[1].name, "empty");
  EXPECT_EQ(parsed->tensors[2].name, "v");
  EXPECT_EQ(parsed->tensors[2].begin, 8u);
  EXPECT_EQ(parsed->tensors[2].end, 14u);
  EXPECT_EQ(parsed->metadata.at("note"), "");
  EXPECT_EQ(parsed->header_length, header.size());
  EXPECT_EQ(parsed->data_size, 14u);
  EXPECT_THAT(ParseSafetensorsHeader("{}", 0, "t.safetensors"), IsOk());
}

// ---- Randomized checks --------------------------------------------------------------------------

// Independent oracle: if the parser says OK, the header must really be consistent with the JSON text.
void ExpectConsistent(const std::string& text, uint64_t data_size, const SafetensorsHeader& h) {
  const Json dom = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(dom.is_object()) << text;
  size_t tensor_keys = 0;
  for (const auto& [key, value] : dom.items()) tensor_keys += key != "__metadata__";
  ASSERT_EQ(tensor_keys, h.tensors.size()) << text;
  std::set<std::string> names;
  uint64_t next = 0;
  for (const TensorInfo& t : h.tensors) {
    ASSERT_TRUE(names.insert(t.name).second) << text;
    const Json& e = dom.at(t.name);
    ASSERT_EQ(e.at("dtype").get<std::string>(), t.dtype) << text;
    ASSERT_EQ(e.at("shape").get<std::vector<int64_t>>(), t.shape) << text;
    ASSERT_EQ(e.at("data_offsets").at(0).get<uint64_t>(), t.begin) << text;
    ASSERT_EQ(e.at("data_offsets").at(1).get<uint64_t>(), t.end) << text;
    unsigned __int128 bytes = static_cast<unsigned __int128>(SafetensorsDtypeSize(t.dtype));
    ASSERT_GT(SafetensorsDtypeSize(t.dtype), 0) << text;
    for (int64_t d : t.shape) {
      ASSERT_GE(d, 0) << text;
      bytes *= static_cast<uint64_t>(d);
      if (bytes > (static_cast<unsigned __int128>(1) << 64)) bytes = static_cast<unsigned __int128>(1) << 64;
    }
    ASSERT_TRUE(bytes == t.end - t.begin) << text;
    ASSERT_EQ(t.begin, next) << text;
    next = t.end;
  }
  ASSERT_EQ(next, data_size) << text;
}

const char* const kDtypes[] = {"BOOL", "U8",  "I8",  "F8_E4M3", "F8_E5M2", "I16", "U16", "F16",
                               "BF16", "I32", "U32", "F32",     "I64",     "U64", "F64"};

struct GeneratedTensor {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

std::string EntryJson(const GeneratedTensor& t) {
  std::string shape;
  for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(t.shape[i]);
  return Json(t.name).dump() + ": {\"dtype\": " + Json(t.dtype).dump() + ", \"shape\": [" + shape +
         "], \"data_offsets\": [" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "]}";
}

std::string HeaderJson(const std::vector<GeneratedTensor>& tensors, bool with_metadata) {
  std::string out = "{";
  if (with_metadata) out += "\"__metadata__\": {\"format\": \"pt\"}";
  for (const GeneratedTensor& t : tensors) out += (out.size() > 1 ? ", " : "") + EntryJson(t);
  return out + "}";
}

// Valid tensors laid out contiguously in a random order; returns the data size.
uint64_t GenerateTensors(std::mt19937_64& rng, std::vector<GeneratedTensor>* out) {
  const int count = std::uniform_int_distribution<int>(1, 6)(rng);
  std::vector<GeneratedTensor> tensors(count);
  for (int i = 0; i < count; ++i) {
    GeneratedTensor& t = tensors[i];
    t.name = "layer." + std::to_string(i) + (rng() % 4 == 0 ? ".w\"\\\xc3\xa9" : ".weight");
    t.dtype = kDtypes[rng() % std::size(kDtypes)];
    const int rank = std::uniform_int_distribution<int>(0, 3)(rng);
    for (int d = 0; d < rank; ++d) t.shape.push_back(std::uniform_int_distribution<int>(0, 5)(rng));
  }
  std::vector<int> order(count);
  for (int i = 0; i < count; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  uint64_t offset = 0;
  for (int i : order) {
    GeneratedTensor& t = tensors[i];
    uint64_t bytes = SafetensorsDtypeSize(t.dtype);
    for (int64_t d : t.shape) bytes *= d;
    t.begin = offset;
    t.end = offset + bytes;
    offset = t.end;
  }
  *out = std::move(tensors);
  return offset;
}

TEST(ParseSafetensorsHeaderFuzzTest, GeneratedHeadersAreAcceptedExactlyWhenConsistent) {
  std::mt19937_64 rng(20240611);
  int accepted = 0, rejected = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    std::vector<GeneratedTensor> tensors;
    uint64_t data_size = GenerateTensors(rng, &tensors);
    bool with_metadata = rng() % 2 == 0;
    GeneratedTensor& victim = tensors[rng() % tensors.size()];
    std::string extra_entry;
    const int fault = static_cast<int>(rng() % 12);
    switch (fault) {
      case 0:  // untouched
        break;
      case 1:  // a span one element too long
        victim.end += 1;
        data_size += 1;
        for (GeneratedTensor& t : tensors) {
          if (&t != &victim && t.begin >= victim.end - 1 && t.begin > victim.begin) {
            t.begin += 1;
            t.end += 1;
          }
        }
        break;
      case 2:  // trailing bytes
        data_size += 1 + rng() % 7;
        break;
      case 3:  // truncated data
        if (data_size == 0) {
          victim.end += 1;  // becomes inconsistent another way
        } else {
          data_size -= 1;
        }
        break;
      case 4:  // unknown dtype
        victim.dtype = "F" + std::to_string(5 + rng() % 3);
        break;
      case 5:  // negative dimension
        victim.shape.push_back(-1 - static_cast<int64_t>(rng() % 3));
        break;
      case 6:  // duplicate name
        extra_entry = EntryJson(victim);
        break;
      case 7:  // a gap before the victim (shift it and everything after it)
        for (GeneratedTensor& t : tensors) {
          if (t.begin >= victim.begin && &t != &victim && t.begin > victim.begin) {
            t.begin += 2;
            t.end += 2;
          }
        }
        victim.begin += 2;
        victim.end += 2;
        data_size += 2;
        break;
      case 8:  // swapped offsets
        if (victim.begin == victim.end) {
          victim.begin += 1;
        } else {
          std::swap(victim.begin, victim.end);
        }
        break;
      case 9:  // an extra zero-size tensor somewhere past the end
        extra_entry = EntryJson(GeneratedTensor{"zz.extra", "F32", {0}, data_size + 4, data_size + 4});
        break;
      case 10:  // metadata that is not string -> string
        extra_entry = "\"__metadata__\": {\"k\": [1]}";
        with_metadata = false;
        break;
      case 11:  // an entry that overlaps the victim
        extra_entry = EntryJson(GeneratedTensor{"zz.overlap", "U8", {1}, victim.begin, victim.begin + 1});
        break;
    }
    std::string header = HeaderJson(tensors, with_metadata);
    if (!extra_entry.empty()) header.insert(header.size() - 1, (header.size() > 2 ? ", " : "") + extra_entry);
    auto parsed = ParseSafetensorsHeader(header, data_size, "fuzz.safetensors");
    if (fault == 0) {
      ASSERT_THAT(parsed, IsOk()) << header;
      ASSERT_NO_FATAL_FAILURE(ExpectConsistent(header, data_size, *parsed));
      ++accepted;
    } else {
      ASSERT_THAT(parsed, StatusIs(kInvalid, HasSubstr("fuzz.safetensors: "))) << "fault " << fault << ": " << header;
      ++rejected;
    }
  }
  EXPECT_GT(accepted, 200);
  EXPECT_GT(rejected, 3000);
}

TEST(ParseSafetensorsHeaderFuzzTest, MutatedAndTruncatedHeadersNeverCrashNorPassInconsistent) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  const std::string reference = ReadBytes(ReferenceModel("qwen2"));
  uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | static_cast<unsigned char>(reference[i]);
  const std::string base_header = reference.substr(8, header_length);
  const uint64_t base_data_size = reference.size() - 8 - header_length;
  ASSERT_THAT(ParseSafetensorsHeader(base_header, base_data_size, "m"), IsOk());

  std::mt19937_64 rng(777);
  const std::string alphabet = "{}[]\",:0123456789-.eE \\tnulrfasF32BI8_";
  int accepted = 0;
  for (int iter = 0; iter < 6000; ++iter) {
    std::string header = base_header;
    uint64_t data_size = base_data_size;
    const int mutations = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < mutations; ++m) {
      const size_t pos = header.empty() ? 0 : rng() % header.size();
      switch (rng() % 7) {
        case 0:
          if (!header.empty()) header[pos] = static_cast<char>(rng() & 0xff);
          break;
        case 1:
          if (!header.empty()) header[pos] = alphabet[rng() % alphabet.size()];
          break;
        case 2:
          header.insert(pos, 1, alphabet[rng() % alphabet.size()]);
          break;
        case 3:
          if (!header.empty()) header.erase(pos, 1 + rng() % 8);
          break;
        case 4:
          header.resize(pos);  // truncation
          break;
        case 5:
          data_size = rng() % 2 ? data_size + (rng() % 9) - 4 : rng();
          break;
        case 6:  // nudge a digit
          if (!header.empty() && header[pos] >= '0' && header[pos] <= '8') ++header[pos];
          break;
      }
    }
    absl::StatusOr<SafetensorsHeader> parsed = ParseSafetensorsHeader(header, data_size, "m.safetensors");
    if (parsed.ok()) {
      ++accepted;
      ASSERT_NO_FATAL_FAILURE(ExpectConsistent(header, data_size, *parsed));
    } else {
      ASSERT_EQ(parsed.status().code(), kInvalid) << parsed.status();
      ASSERT_THAT(std::string(parsed.status().message()), HasSubstr("m.safetensors: "));
    }
  }
  // Some mutations (inside names, whitespace) keep the header valid; most do not.
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, 3000);

  // Random byte strings and random token soups.
  for (int iter = 0; iter < 3000; ++iter) {
    std::string header;
    const size_t len = rng() % 64;
    for (size_t i = 0; i < len; ++i) {
      header += iter % 2 ? static_cast<char>(rng() & 0xff) : alphabet[rng() % alphabet.size()];
    }
    auto parsed = ParseSafetensorsHeader(header, rng() % 16, "r.safetensors");
    if (parsed.ok()) {
      ASSERT_NO_FATAL_FAILURE(ExpectConsistent(header, parsed->data_size, *parsed));
    }
  }
}

TEST(ReadSafetensorsHeaderFuzzTest, TruncatedFilesAreRejected) {
  TUNEFORGE_SKIP_WITHOUT_GENERATED_REFERENCE();
  ScratchDir dir;
  const std::string bytes = ReadBytes(ReferenceModel("gemma"));
  std::mt19937_64 rng(99);
  for (int iter = 0; iter < 200; ++iter) {
    const size_t keep = rng() % bytes.size();
    const std::string path = dir.WriteFile("cut.safetensors", bytes.substr(0, keep));
    EXPECT_THAT(ReadSafetensorsHeader(path, "cut.safetensors"), StatusIs(kInvalid, HasSubstr("cut.safetensors: ")))
        << "kept " << keep << " bytes";
  }
  const std::string path = dir.WriteFile("whole.safetensors", bytes);
  EXPECT_THAT(ReadSafetensorsHeader(path, "whole.safetensors"), IsOk());
}

}  // namespace
}  // namespace tuneforge
