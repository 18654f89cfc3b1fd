// Reading safetensors through mmap after ParseSafetensorsHeader has vetted the header, writing the reference
// layout atomically, and opening / writing sharded checkpoints with their index.
#include "common/safetensors_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_io.h"
#include "common/json_limits.h"
#include "common/status_macros.h"

namespace tuneforge {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// Our abseil's string_view is its own type, not std::string_view; StrCat needs it.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr uint64_t kMaxIndexFileSize = 64 << 20;

absl::Status OpenError(std::string_view label, int err) {
  std::string msg = absl::StrCat(Av(label), ": cannot open: ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == EACCES) return absl::PermissionDeniedError(msg);
  return absl::InvalidArgumentError(msg);
}

// A shard name from the index must stay a plain relative path inside the directory.
bool IsSafeRelativePath(absl::string_view name) {
  if (name.empty() || name.front() == '/' || absl::StrContains(name, '\\')) return false;
  for (absl::string_view part : absl::StrSplit(name, '/')) {
    if (part.empty() || part == "." || part == "..") return false;
  }
  return true;
}

// A JSON string literal; INVALID_ARGUMENT when `s` is not valid UTF-8.
absl::StatusOr<std::string> JsonString(const std::string& s, std::string_view what) {
  try {
    return Json(s).dump(-1, ' ', false, Json::error_handler_t::strict);
  } catch (const Json::exception&) {
    return absl::InvalidArgumentError(absl::StrCat(Av(what), " is not valid UTF-8; safetensors headers are JSON"));
  }
}

// Writes `path`.tmp through `write_body` (given the descriptor and the tmp path), fsyncs, renames over `path` and
// fsyncs the directory. On any error, `path`.tmp is removed and `path` is untouched.
absl::Status WriteFileAtomically(const std::string& path,
                                 const std::function<absl::Status(int fd, const std::string& tmp)>& write_body) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    std::string msg = absl::StrCat(tmp, ": cannot create: ", std::strerror(err));
    if (err == ENOENT) return absl::NotFoundError(absl::StrCat(msg, "; create the directory first"));
    if (err == EACCES) return absl::PermissionDeniedError(msg);
    return absl::InternalError(msg);
  }
  absl::Status status = write_body(fd, tmp);
  if (status.ok() && ::fsync(fd) != 0) {
    status = absl::InternalError(absl::StrCat(tmp, ": fsync failed: ", std::strerror(errno)));
  }
  if (::close(fd) != 0 && status.ok()) {
    status = absl::InternalError(absl::StrCat(tmp, ": close failed: ", std::strerror(errno)));
  }
  if (status.ok() && std::rename(tmp.c_str(), path.c_str()) != 0) {
    status = absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", path, ": ", std::strerror(errno)));
  }
  if (!status.ok()) {
    ::unlink(tmp.c_str());
    return status;
  }
  std::string dir = fs::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);  // best effort: the rename is already visible
    ::close(dir_fd);
  }
  return absl::OkStatus();
}

absl::Status WriteTextFileAtomically(const std::string& path, std::string_view text) {
  return WriteFileAtomically(
      path, [&](int fd, const std::string& tmp) { return WriteAll(fd, text.data(), text.size(), tmp); });
}

// The bytes a tensor needs, or INVALID_ARGUMENT naming it.
absl::StatusOr<uint64_t> CheckTensorToWrite(const TensorToWrite& t) {
  const std::string tensor = absl::StrCat("tensor '", t.name, "'");
  if (t.name.empty()) return absl::InvalidArgumentError("a tensor has an empty name; give every tensor a name");
  if (t.name == "__metadata__") {
    return absl::InvalidArgumentError("a tensor cannot be named '__metadata__' (safetensors reserves it); rename it");
  }
  const int64_t element_size = SafetensorsDtypeSize(t.dtype);
  if (element_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, " has unknown dtype '", t.dtype,
                     "'; use one of BOOL U8 I8 F8_E4M3 F8_E5M2 I16 U16 F16 BF16 I32 U32 F32 I64 U64 F64"));
  }
  uint64_t needed = static_cast<uint64_t>(element_size);
  for (int64_t dim : t.shape) {
    if (dim < 0) return absl::InvalidArgumentError(absl::StrCat(tensor, " has negative dimension ", dim));
    if (__builtin_mul_overflow(needed, static_cast<uint64_t>(dim), &needed)) {
      return absl::InvalidArgumentError(absl::StrCat(tensor, " is too large to address"));
    }
  }
  if (!t.fill && t.data.size() != needed) {
    return absl::InvalidArgumentError(absl::StrCat(tensor, " has ", t.data.size(), " bytes of data but ", t.dtype,
                                                   " [", absl::StrJoin(t.shape, ", "), "] needs ", needed));
  }
  return needed;
}

// The header JSON (unpadded) for `tensors` with `metadata`, after checking every tensor.
absl::StatusOr<std::string> BuildHeader(const std::vector<TensorToWrite>& tensors,
                                        const std::map<std::string, std::string>& metadata, uint64_t* data_size) {
  std::set<std::string_view> names;
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : metadata) {
      ASSIGN_OR_RETURN(std::string k, JsonString(key, absl::StrCat("metadata key '", key, "'")));
      ASSIGN_OR_RETURN(std::string v, JsonString(value, absl::StrCat("metadata value of '", key, "'")));
      absl::StrAppend(&header, first ? "" : ",", k, ":", v);
      first = false;
    }
    header += "}";
  }
  uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    ASSIGN_OR_RETURN(uint64_t size, CheckTensorToWrite(t));
    if (!names.insert(t.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", t.name, "' is given more than once; every tensor name must be unique"));
    }
    ASSIGN_OR_RETURN(std::string name, JsonString(t.name, absl::StrCat("tensor name '", t.name, "'")));
    uint64_t end = 0;
    if (__builtin_add_overflow(offset, size, &end)) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "' makes the file too large to address"));
    }
    absl::StrAppend(&header, header.size() > 1 ? "," : "", name, ":{\"dtype\":\"", t.dtype, "\",\"shape\":[",
                    absl::StrJoin(t.shape, ","), "],\"data_offsets\":[", offset, ",", end, "]}");
    offset = end;
  }
  header += "}";
  *data_size = offset;
  return header;
}

std::string ShardFileName(size_t index, size_t count) {
  char name[64];
  std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", index, count);
  return name;
}

bool IsShardFileName(const std::string& name) {
  // model-NNNNN-of-NNNNN.safetensors
  if (name.size() != 32 || !absl::StartsWith(name, "model-") || name.substr(11, 4) != "-of-" ||
      !absl::EndsWith(name, ".safetensors")) {
    return false;
  }
  for (size_t i : {6, 7, 8, 9, 10, 15, 16, 17, 18, 19}) {
    if (name[i] < '0' || name[i] > '9') return false;
  }
  return true;
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read: ", ec.message()));
  }
  if (size > kMaxIndexFileSize) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": is ", size, " bytes, larger than the ", kMaxIndexFileSize, " bytes we accept"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot open it"));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// SafetensorsFile

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path,
                                                                        std::string_view label_in) {
  const std::string label = label_in.empty() ? path : std::string(label_in);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return OpenError(label, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat(label, ": cannot stat: ", std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(label, ": is not a regular file"));
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->label_ = label;
  file->mapping_size_ = static_cast<uint64_t>(st.st_size);
  if (file->mapping_size_ > 0) {
    void* p = ::mmap(nullptr, file->mapping_size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return absl::ResourceExhaustedError(absl::StrCat(label, ": cannot map ", file->mapping_size_,
                                                       " bytes: ", std::strerror(err)));
    }
    file->mapping_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file open

  const char* bytes = reinterpret_cast<const char*>(file->mapping_);
  const uint64_t size = file->mapping_size_;
  ASSIGN_OR_RETURN(uint64_t n, SafetensorsHeaderLength(std::string_view(bytes, std::min<uint64_t>(size, 8)), size,
                                                       label));
  ASSIGN_OR_RETURN(file->header_, ParseSafetensorsHeader(std::string_view(bytes + 8, n), size - 8 - n, label));
  file->data_ = file->mapping_ + 8 + n;
  for (const TensorInfo& t : file->header_.tensors) file->by_name_.emplace(t.name, &t);
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(const_cast<uint8_t*>(mapping_), mapping_size_);
}

absl::StatusOr<absl::Span<const uint8_t>> SafetensorsFile::TensorBytes(std::string_view name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) {
    return absl::NotFoundError(absl::StrCat(label_, ": has no tensor '", Av(name), "' (it holds ",
                                            header_.tensors.size(), " tensors); check the tensor name"));
  }
  return TensorBytes(*it->second);
}

absl::Span<const uint8_t> SafetensorsFile::TensorBytes(const TensorInfo& info) const {
  return absl::Span<const uint8_t>(data_ + info.begin, info.end - info.begin);
}

// ---------------------------------------------------------------------------------------------------------------
// Writer

absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  uint64_t data_size = 0;
  absl::StatusOr<std::string> header = BuildHeader(tensors, metadata, &data_size);
  if (!header.ok()) {
    return absl::Status(header.status().code(), absl::StrCat(path, ": ", header.status().message()));
  }
  header->append((8 - header->size() % 8) % 8, ' ');
  char prefix[8];
  uint64_t n = header->size();
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return WriteFileAtomically(path, [&](int fd, const std::string& tmp) -> absl::Status {
    RETURN_IF_ERROR(WriteAll(fd, prefix, 8, tmp));
    RETURN_IF_ERROR(WriteAll(fd, header->data(), header->size(), tmp));
    std::string filled;  // one tensor at a time; its capacity is reused
    for (const TensorToWrite& t : tensors) {
      std::string_view bytes = t.data;
      if (t.fill) {
        ASSIGN_OR_RETURN(const uint64_t needed, CheckTensorToWrite(t));
        filled.clear();
        RETURN_IF_ERROR(t.fill(&filled));
        if (filled.size() != needed) {
          return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", t.name, "' was filled with ",
                                                         filled.size(), " bytes but ", t.dtype, " [",
                                                         absl::StrJoin(t.shape, ", "), "] needs ", needed));
        }
        bytes = filled;
      }
      RETURN_IF_ERROR(WriteAll(fd, bytes.data(), bytes.size(), tmp));
    }
    return absl::OkStatus();
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Index

absl::StatusOr<SafetensorsIndex> ParseSafetensorsIndex(std::string_view index_json, std::string_view label_in) {
  const absl::string_view label = Av(label_in);
  if (absl::Status depth = CheckJsonDepth(index_json, kMaxJsonDepth, std::string_view(label.data(), label.size()));
      !depth.ok()) {
    return depth;
  }
  Json index;
  try {
    index = Json::parse(index_json.begin(), index_json.end());
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, ": is not valid JSON (", e.what(), "); fix or re-download the file"));
  }
  auto map_it = index.is_object() ? index.find("weight_map") : index.end();
  if (map_it == index.end() || !map_it->is_object() || map_it->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        label, ": needs a non-empty 'weight_map' object of tensor name -> shard file; fix or re-download it"));
  }
  SafetensorsIndex out;
  for (const auto& [name, shard] : map_it->items()) {
    if (!shard.is_string() || !IsSafeRelativePath(shard.get<std::string>())) {
      return absl::InvalidArgumentError(absl::StrCat(label, ": weight_map entry '", name, "' must name a shard ",
                                                     "file inside the model directory, got ", shard.dump()));
    }
    out.weight_map[name] = shard.get<std::string>();
    out.shards[shard.get<std::string>()].insert(name);
  }
  return out;
}

absl::Status CheckShardMatchesIndex(const SafetensorsIndex& index, const std::string& shard,
                                    const SafetensorsHeader& header, std::string_view index_label_in,
                                    std::string_view shard_label_in) {
  const absl::string_view index_label = Av(index_label_in);
  const absl::string_view shard_label = Av(shard_label_in);
  static const std::set<std::string> kNone;
  auto shard_it = index.shards.find(shard);
  const std::set<std::string>& names = shard_it == index.shards.end() ? kNone : shard_it->second;
  for (const TensorInfo& t : header.tensors) {
    if (names.count(t.name) == 0) {
      auto mapped = index.weight_map.find(t.name);
      return absl::InvalidArgumentError(
          absl::StrCat(shard_label, ": holds tensor '", t.name, "' but ", index_label,
                       mapped == index.weight_map.end() ? std::string(" does not list it")
                                                        : absl::StrCat(" maps it to '", mapped->second, "'"),
                       "; the index and the shards are from different checkpoints"));
    }
  }
  for (const std::string& name : names) {
    if (header.Find(name) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(index_label, ": maps tensor '", name, "' to '", shard,
                                                     "' but that shard does not hold it; re-download the shards"));
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------------------------
// ShardedSafetensors

absl::StatusOr<std::unique_ptr<ShardedSafetensors>> ShardedSafetensors::OpenDirectory(const std::string& dir) {
  std::unique_ptr<ShardedSafetensors> out(new ShardedSafetensors());
  out->dir_ = dir;
  const fs::path root(dir);
  const std::string single = (root / kSafetensorsSingleFile).string();
  const std::string index_path = (root / kSafetensorsIndexFile).string();
  std::error_code ec;
  if (fs::exists(single, ec)) {
    ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(single));
    out->files_.push_back(std::move(file));
  } else if (fs::exists(index_path, ec)) {
    ASSIGN_OR_RETURN(std::string text, ReadSmallFile(index_path));
    ASSIGN_OR_RETURN(SafetensorsIndex index, ParseSafetensorsIndex(text, index_path));
    for (const auto& [shard, names] : index.shards) {
      const std::string shard_path = (root / shard).string();
      if (!fs::exists(shard_path, ec)) {
        return absl::NotFoundError(absl::StrCat(index_path, ": shard '", shard, "' (holding '", *names.begin(),
                                                "') is not in the directory; download the missing shard"));
      }
      ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(shard_path));
      RETURN_IF_ERROR(CheckShardMatchesIndex(index, shard, file->header(), index_path, shard_path));
      out->files_.push_back(std::move(file));
    }
  } else {
    return absl::NotFoundError(absl::StrCat("neither ", kSafetensorsSingleFile, " nor ", kSafetensorsIndexFile,
                                            " is in '", dir, "'; the directory needs safetensors weights"));
  }
  for (const std::unique_ptr<SafetensorsFile>& file : out->files_) {
    for (const TensorInfo& t : file->header().tensors) {
      // The index maps every name to one shard, and each shard holds only its names: no duplicates here.
      out->tensors_.emplace(t.name, CheckpointTensorView{&t, file->TensorBytes(t), file.get()});
    }
  }
  return out;
}

absl::StatusOr<CheckpointTensorView> ShardedSafetensors::Find(std::string_view name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat("tensor '", Av(name), "' is in no safetensors file of '", dir_, "' (",
                                            tensors_.size(), " tensors in ", files_.size(),
                                            " files); check the name and that the checkpoint is complete"));
  }
  return it->second;
}

std::vector<std::string> ShardedSafetensors::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, view] : tensors_) names.push_back(name);
  return names;
}

absl::Status WriteShardedSafetensors(const std::string& dir, const std::vector<TensorToWrite>& tensors,
                                     uint64_t max_shard_bytes, const std::map<std::string, std::string>& metadata) {
  if (max_shard_bytes == 0) {
    return absl::InvalidArgumentError("max_shard_bytes must be positive");
  }
  // Check everything (sizes, duplicates) before the first file is written.
  uint64_t total_size = 0;
  RETURN_IF_ERROR(BuildHeader(tensors, metadata, &total_size).status());

  std::vector<std::vector<TensorToWrite>> shards;
  uint64_t shard_bytes = 0;
  for (const TensorToWrite& t : tensors) {
    ASSIGN_OR_RETURN(const uint64_t size, CheckTensorToWrite(t));  // what a fill will produce
    if (shards.empty() || (!shards.back().empty() && shard_bytes + size > max_shard_bytes)) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(t);
    shard_bytes += size;
  }
  if (shards.empty()) shards.emplace_back();

  const fs::path root(dir);
  std::set<std::string> written;
  absl::Status status = [&]() -> absl::Status {
    if (shards.size() == 1) {
      RETURN_IF_ERROR(WriteSafetensors((root / kSafetensorsSingleFile).string(), shards[0], metadata));
      written.insert(kSafetensorsSingleFile);
      return absl::OkStatus();
    }
    Json weight_map = Json::object();
    for (size_t i = 0; i < shards.size(); ++i) {
      const std::string name = ShardFileName(i + 1, shards.size());
      RETURN_IF_ERROR(WriteSafetensors((root / name).string(), shards[i], metadata));
      written.insert(name);
      for (const TensorToWrite& t : shards[i]) weight_map[t.name] = name;
    }
    Json index = {{"metadata", {{"total_size", total_size}}}, {"weight_map", weight_map}};
    std::string text;
    try {
      text = index.dump(2) + "\n";  // as transformers: indent 2, sorted keys
    } catch (const Json::exception& e) {  // names were checked to be UTF-8; this is a bug if it happens
      return absl::InternalError(absl::StrCat(kSafetensorsIndexFile, ": cannot encode: ", e.what()));
    }
    RETURN_IF_ERROR(WriteTextFileAtomically((root / kSafetensorsIndexFile).string(), text));
    written.insert(kSafetensorsIndexFile);
    return absl::OkStatus();
  }();
  if (!status.ok()) {
    // Shards without their index (or a complete-looking set missing its last shard) would read as a checkpoint.
    for (const std::string& name : written) {
      std::error_code remove_ec;
      fs::remove(root / name, remove_ec);
    }
    return status;
  }
  // Remove what an earlier write left, so the directory holds one consistent checkpoint.
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const bool ours = name == kSafetensorsSingleFile || name == kSafetensorsIndexFile || IsShardFileName(name);
    if (ours && written.count(name) == 0) {
      std::error_code remove_ec;
      fs::remove(it->path(), remove_ec);
      if (remove_ec) {
        return absl::InternalError(
            absl::StrCat("cannot remove stale ", it->path().string(), ": ", remove_ec.message()));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace tuneforge
