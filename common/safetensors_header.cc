// Validation of safetensors headers: every rule is checked before any tensor data is read.
#include "common/safetensors_header.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace tuneforge {
namespace {

using Json = nlohmann::json;

// Our abseil's string_view is its own type, not std::string_view; StrCat needs it.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr char kCorruptHint[] = "; the file is corrupt or truncated: download or save it again";

absl::Status Invalid(absl::string_view label, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(label, ": ", what));
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Parses `text` into `out`, failing on the first object that repeats a key at any depth (nlohmann
// would silently keep one of them).
absl::Status ParseJsonRejectingDuplicates(absl::string_view text, absl::string_view label, Json* out) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto callback = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) -> bool {
    switch (event) {
      case Json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!open_objects.empty() && parsed.is_string()) {
          const std::string& key = parsed.get_ref<const std::string&>();
          if (!open_objects.back().insert(key).second && duplicate.empty()) duplicate = key;
        }
        break;
      default:
        break;
    }
    return true;
  };
  try {
    *out = Json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true);
  } catch (const Json::exception& e) {
    return Invalid(label, absl::StrCat("header is not valid JSON (", e.what(), ")", kCorruptHint));
  }
  if (!duplicate.empty()) {
    return Invalid(label, absl::StrCat("header names '", duplicate, "' more than once", kCorruptHint));
  }
  return absl::OkStatus();
}

// A JSON unsigned integer that fits `limit`, or an error naming `what`.
absl::StatusOr<uint64_t> NonNegativeInt(const Json& v, uint64_t limit, absl::string_view label,
                                        absl::string_view what) {
  if (!v.is_number_unsigned()) {
    return Invalid(label, absl::StrCat(what, " must be a non-negative integer, got ", v.dump(), kCorruptHint));
  }
  uint64_t x = v.get<uint64_t>();
  if (x > limit) return Invalid(label, absl::StrCat(what, " ", x, " is too large", kCorruptHint));
  return x;
}

absl::Status ParseMetadata(const Json& meta, absl::string_view label, std::map<std::string, std::string>* out) {
  if (meta.is_null()) return absl::OkStatus();
  if (!meta.is_object()) {
    return Invalid(label,
                   absl::StrCat("__metadata__ must be an object of strings, got ", meta.type_name(), kCorruptHint));
  }
  for (const auto& [key, value] : meta.items()) {
    if (!value.is_string()) {
      return Invalid(label, absl::StrCat("__metadata__ entry '", key, "' must be a string, got ", value.type_name(),
                                         kCorruptHint));
    }
    (*out)[key] = value.get<std::string>();
  }
  return absl::OkStatus();
}

absl::StatusOr<TensorInfo> ParseTensorEntry(const std::string& name, const Json& entry, uint64_t data_size,
                                            absl::string_view label) {
  const std::string tensor = absl::StrCat("tensor '", name, "'");
  if (!entry.is_object()) {
    return Invalid(label, absl::StrCat(tensor, " must be an object with dtype, shape and data_offsets, got ",
                                       entry.type_name(), kCorruptHint));
  }
  TensorInfo info;
  info.name = name;

  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end() || !dtype_it->is_string()) {
    return Invalid(label, absl::StrCat(tensor, " has no string 'dtype'", kCorruptHint));
  }
  info.dtype = dtype_it->get<std::string>();
  const int64_t element_size = SafetensorsDtypeSize(info.dtype);
  if (element_size < 0) {
    return Invalid(label, absl::StrCat(tensor, " has unknown dtype '", info.dtype,
                                       "'; expected one of BOOL U8 I8 F8_E4M3 F8_E5M2 I16 U16 F16 BF16 I32 U32 F32 "
                                       "I64 U64 F64"));
  }

  auto shape_it = entry.find("shape");
  if (shape_it == entry.end() || !shape_it->is_array()) {
    return Invalid(label, absl::StrCat(tensor, " has no 'shape' list", kCorruptHint));
  }
  uint64_t elements = 1;
  bool overflow = false;
  for (const Json& dim : *shape_it) {
    absl::StatusOr<uint64_t> d =
        NonNegativeInt(dim, static_cast<uint64_t>(INT64_MAX), label, absl::StrCat(tensor, " shape entry"));
    if (!d.ok()) return d.status();
    info.shape.push_back(static_cast<int64_t>(*d));
    if (__builtin_mul_overflow(elements, *d, &elements)) overflow = true;
  }

  auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
    return Invalid(label, absl::StrCat(tensor, " has no 'data_offsets' [begin, end] pair", kCorruptHint));
  }
  absl::StatusOr<uint64_t> begin =
      NonNegativeInt((*offsets_it)[0], UINT64_MAX, label, absl::StrCat(tensor, " data_offsets begin"));
  if (!begin.ok()) return begin.status();
  absl::StatusOr<uint64_t> end =
      NonNegativeInt((*offsets_it)[1], UINT64_MAX, label, absl::StrCat(tensor, " data_offsets end"));
  if (!end.ok()) return end.status();
  info.begin = *begin;
  info.end = *end;
  const std::string offsets = absl::StrCat("data_offsets [", info.begin, ", ", info.end, "]");
  if (info.end < info.begin) {
    return Invalid(label, absl::StrCat(tensor, " ", offsets, " end before they begin", kCorruptHint));
  }
  if (info.end > data_size) {
    return Invalid(label, absl::StrCat(tensor, " ", offsets, " reach past the data section of ", data_size, " bytes",
                                       kCorruptHint));
  }
  uint64_t needed = 0;
  if (overflow || __builtin_mul_overflow(elements, static_cast<uint64_t>(element_size), &needed)) {
    return Invalid(label, absl::StrCat(tensor, " ", info.dtype, " ", ShapeString(info.shape),
                                       " is too large to address", kCorruptHint));
  }
  const uint64_t span = info.end - info.begin;
  if (span != needed) {
    return Invalid(label, absl::StrCat(tensor, " ", offsets, " span ", span, " bytes but ", info.dtype, " ",
                                       ShapeString(info.shape), " needs ", needed, kCorruptHint));
  }
  return info;
}

// Spans sorted by begin must tile [0, data_size) exactly.
absl::Status CheckContiguous(const std::vector<TensorInfo>& tensors, uint64_t data_size, absl::string_view label) {
  uint64_t next = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& t : tensors) {
    if (t.begin < next) {
      return Invalid(label, absl::StrCat("tensor '", t.name, "' data_offsets [", t.begin, ", ", t.end,
                                         "] overlap tensor '", previous->name, "' which ends at ", next, kCorruptHint));
    }
    if (t.begin > next) {
      if (previous == nullptr) {
        return Invalid(label, absl::StrCat("the first tensor '", t.name, "' starts at byte ", t.begin,
                                           " but the data section must start with a tensor at 0", kCorruptHint));
      }
      return Invalid(label, absl::StrCat("there is a gap of ", t.begin - next, " bytes between tensor '",
                                         previous->name, "' (ends at ", next, ") and tensor '", t.name, "' (starts at ",
                                         t.begin, ")", kCorruptHint));
    }
    next = t.end;
    previous = &t;
  }
  if (next != data_size) {
    return Invalid(label, absl::StrCat("the tensors end at byte ", next, " but the data section holds ", data_size,
                                       " bytes", kCorruptHint));
  }
  return absl::OkStatus();
}

std::string ErrnoText(int err) { return std::strerror(err); }

}  // namespace

const TensorInfo* SafetensorsHeader::Find(std::string_view name) const {
  for (const TensorInfo& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

int64_t SafetensorsDtypeSize(std::string_view dtype) {
  static const std::pair<std::string_view, int64_t> kSizes[] = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"I64", 8},     {"U64", 8}, {"F64", 8},
  };
  for (const auto& [name, size] : kSizes) {
    if (name == dtype) return size;
  }
  return -1;
}

absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(std::string_view header_json, uint64_t data_size,
                                                         std::string_view label_in) {
  const absl::string_view label = Av(label_in);
  if (header_json.size() < 2 || header_json.size() > kMaxSafetensorsHeaderLength) {
    return Invalid(label, absl::StrCat("header length ", header_json.size(), " is outside [2, ",
                                       kMaxSafetensorsHeaderLength, "]", kCorruptHint));
  }
  Json root;
  RETURN_IF_ERROR(ParseJsonRejectingDuplicates(Av(header_json), label, &root));
  if (!root.is_object()) {
    return Invalid(label, absl::StrCat("header must be a JSON object, got ", root.type_name(), kCorruptHint));
  }
  SafetensorsHeader header;
  header.header_length = header_json.size();
  header.data_size = data_size;
  for (const auto& [name, entry] : root.items()) {
    if (name == "__metadata__") {
      RETURN_IF_ERROR(ParseMetadata(entry, label, &header.metadata));
      continue;
    }
    ASSIGN_OR_RETURN(TensorInfo info, ParseTensorEntry(name, entry, data_size, label));
    header.tensors.push_back(std::move(info));
  }
  std::sort(header.tensors.begin(), header.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end != b.end ? a.end < b.end : a.name < b.name;
  });
  RETURN_IF_ERROR(CheckContiguous(header.tensors, data_size, label));
  return header;
}

absl::StatusOr<uint64_t> SafetensorsHeaderLength(std::string_view first8, uint64_t file_size,
                                                 std::string_view label_in) {
  const absl::string_view label = Av(label_in);
  if (file_size < 8 || first8.size() < 8) {
    return Invalid(label, absl::StrCat("file is ", file_size,
                                       " bytes, too short for a safetensors header; it is not a safetensors file or "
                                       "it is truncated"));
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(first8[i]);
  if (n < 2 || n > kMaxSafetensorsHeaderLength) {
    return Invalid(label, absl::StrCat("header length ", n, " is outside [2, ", kMaxSafetensorsHeaderLength,
                                       "]; it is not a safetensors file or it is corrupt"));
  }
  if (n > file_size - 8) {
    return Invalid(label,
                   absl::StrCat("header length ", n, " does not fit in a file of ", file_size, " bytes", kCorruptHint));
  }
  return n;
}

absl::StatusOr<SafetensorsHeader> ReadSafetensorsHeader(const std::string& path, std::string_view label_in) {
  const absl::string_view label = Av(label_in);
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (file == nullptr) {
    const int err = errno;
    std::string msg = absl::StrCat(label, ": cannot open: ", ErrnoText(err));
    if (err == ENOENT) return absl::NotFoundError(msg);
    if (err == EACCES) return absl::PermissionDeniedError(msg);
    return absl::InvalidArgumentError(msg);
  }
  struct stat st;
  if (fstat(fileno(file.get()), &st) != 0) {
    return absl::InternalError(absl::StrCat(label, ": cannot stat: ", ErrnoText(errno)));
  }
  if (!S_ISREG(st.st_mode)) return Invalid(label, "is not a regular file");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);

  char prefix[8] = {};
  const size_t got = std::fread(prefix, 1, sizeof(prefix), file.get());
  ASSIGN_OR_RETURN(uint64_t n, SafetensorsHeaderLength(std::string_view(prefix, got), file_size, label_in));
  std::string header_json(n, '\0');
  if (std::fread(header_json.data(), 1, n, file.get()) != n) {
    return absl::DataLossError(
        absl::StrCat(label, ": could not read the ", n, "-byte header; the file changed or ", "the disk failed"));
  }
  return ParseSafetensorsHeader(header_json, file_size - 8 - n, label_in);
}

}  // namespace tuneforge
