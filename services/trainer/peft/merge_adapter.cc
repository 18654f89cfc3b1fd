// Merging a LoRA adapter into its base one tensor at a time (the writer pulls each merged tensor when it reaches
// it), and copying the non-weight files of model and adapter directories into an export.
#include "services/trainer/peft/merge_adapter.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_io.h"
#include "common/json_limits.h"
#include "common/model_config.h"
#include "common/safetensors_file.h"
#include "common/safetensors_header.h"
#include "common/status_macros.h"

namespace tuneforge {
namespace {

namespace fs = std::filesystem;
using OrderedJson = nlohmann::ordered_json;

constexpr char kConfig[] = "config.json";
constexpr char kGenerationConfig[] = "generation_config.json";
constexpr char kAdapterConfig[] = "adapter_config.json";
constexpr char kAdapterWeights[] = "adapter_model.safetensors";
constexpr char kLoraPrefix[] = "base_model.model.";
constexpr uint64_t kMaxConfigBytes = 16 << 20;

absl::StatusOr<std::string> ReadConfigText(const fs::path& dir, const std::string& name, bool* present = nullptr) {
  const fs::path path = dir / name;
  std::error_code ec;
  const bool exists = fs::exists(path, ec);
  if (present != nullptr) {
    *present = exists;
    if (!exists) return std::string();
  }
  if (!exists) {
    return absl::NotFoundError(absl::StrCat(name, " is not in '", dir.string(), "'; the directory needs it"));
  }
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat(path.string(), ": cannot read: ", ec.message()));
  if (size > kMaxConfigBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": is ", size, " bytes, larger than the ", kMaxConfigBytes, " we accept"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::PermissionDeniedError(absl::StrCat(path.string(), ": cannot open it"));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The output dtypes: the name transformers writes in config.json, the safetensors dtype, the ATen type.
struct OutputDtype {
  std::string config_name;
  std::string safetensors;
  at::ScalarType type;
};

std::optional<OutputDtype> DtypeByName(std::string_view name) {
  if (name == "fp32" || name == "float32") return OutputDtype{"float32", "F32", at::kFloat};
  if (name == "bf16" || name == "bfloat16") return OutputDtype{"bfloat16", "BF16", at::kBFloat16};
  if (name == "fp16" || name == "float16") return OutputDtype{"float16", "F16", at::kHalf};
  return std::nullopt;
}

// Floating types are cast to the output dtype; every other safetensors dtype is written as it is.
std::optional<at::ScalarType> FloatingType(const std::string& dtype) {
  if (dtype == "F32") return at::kFloat;
  if (dtype == "BF16") return at::kBFloat16;
  if (dtype == "F16") return at::kHalf;
  if (dtype == "F64") return at::kDouble;
  return std::nullopt;
}

// An owning CPU tensor with the bytes of a (possibly unaligned) mapped tensor.
at::Tensor CopyToTensor(absl::Span<const uint8_t> bytes, const std::vector<int64_t>& shape, at::ScalarType type) {
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(type));
  if (!bytes.empty()) std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t;
}

// The dtype to write: options first, then config.json, then the floating dtype holding most of the weights.
absl::StatusOr<OutputDtype> ResolveOutputDtype(const std::string& requested, const OrderedJson& config,
                                               const std::vector<const TensorInfo*>& tensors) {
  if (!requested.empty()) {
    std::optional<OutputDtype> dtype = DtypeByName(requested);
    if (!dtype) {
      return absl::InvalidArgumentError(
          absl::StrCat("dtype '", requested, "' cannot be exported; use fp32, bf16 or fp16 (or leave it empty for "
                       "the base model's)"));
    }
    return *dtype;
  }
  for (const char* key : {"torch_dtype", "dtype"}) {
    auto it = config.find(key);
    if (it != config.end() && it->is_string()) {
      if (std::optional<OutputDtype> dtype = DtypeByName(it->get<std::string>())) return *dtype;
    }
  }
  std::map<std::string, uint64_t> bytes_by_dtype;
  for (const TensorInfo* t : tensors) {
    if (FloatingType(t->dtype)) bytes_by_dtype[t->dtype] += t->end - t->begin;
  }
  auto most = std::max_element(bytes_by_dtype.begin(), bytes_by_dtype.end(),
                               [](const auto& a, const auto& b) { return a.second < b.second; });
  if (most != bytes_by_dtype.end()) {
    for (const char* name : {"float32", "bfloat16", "float16"}) {
      if (DtypeByName(name)->safetensors == most->first) return *DtypeByName(name);
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "the base model's dtype cannot be told (config.json has no torch_dtype float32/bfloat16/float16 and its weights "
      "are ", most == bytes_by_dtype.end() ? std::string("not floating point") : most->first,
      "); choose the export dtype: fp32, bf16 or fp16"));
}

// An export directory starts empty: a file left from another export would be mistaken for part of this one.
absl::StatusOr<bool> PrepareOutputDir(const std::string& out_dir) {
  if (out_dir.empty()) return absl::InvalidArgumentError("the output directory is empty; name a new directory");
  std::error_code ec;
  const fs::file_status status = fs::symlink_status(out_dir, ec);
  if (fs::exists(status)) {
    if (!fs::is_directory(status)) {
      return absl::InvalidArgumentError(
          absl::StrCat("output directory '", out_dir, "' exists and is not a directory; name a new directory"));
    }
    fs::directory_iterator it(out_dir, ec);
    if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot read '", out_dir, "': ", ec.message()));
    if (it != fs::directory_iterator()) {
      return absl::AlreadyExistsError(absl::StrCat("output directory '", out_dir, "' already holds files (e.g. '",
                                                   it->path().filename().string(),
                                                   "'); export into a new or empty directory"));
    }
    return false;
  }
  fs::create_directories(out_dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(absl::StrCat("cannot create output directory '", out_dir, "': ", ec.message()));
  }
  return true;
}

// Everything in out_dir is ours (it was empty or new), so after an error it all goes.
void RemoveOutput(const std::string& out_dir, bool created) {
  std::error_code ec;
  if (created) {
    fs::remove_all(out_dir, ec);
    return;
  }
  for (fs::directory_iterator it(out_dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code remove_ec;
    fs::remove_all(it->path(), remove_ec);
  }
}

std::vector<std::string> ListOutput(const std::string& out_dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(out_dir, ec), end; !ec && it != end; it.increment(ec)) {
    names.push_back(it->path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Creates `path` (it must not exist), lets `body` write it, and syncs it: an export is complete once it is
// reported, even after a crash.
absl::Status WriteNewFile(const std::string& path, const std::function<absl::Status(int fd)>& body) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat(path, ": cannot create: ", std::strerror(errno)));
  absl::Status status = body(fd);
  if (status.ok() && ::fsync(fd) != 0) {
    status = absl::InternalError(absl::StrCat(path, ": fsync failed: ", std::strerror(errno)));
  }
  if (::close(fd) != 0 && status.ok()) {
    status = absl::InternalError(absl::StrCat(path, ": close failed: ", std::strerror(errno)));
  }
  return status;
}

absl::Status WriteTextFile(const std::string& path, const std::string& text) {
  return WriteNewFile(path, [&](int fd) { return WriteAll(fd, text.data(), text.size(), path); });
}

absl::StatusOr<uint64_t> CopyFileContent(const std::string& from, const std::string& label, const std::string& to) {
  const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    const int err = errno;
    std::string msg = absl::StrCat(label, ": cannot open: ", std::strerror(err));
    if (err == EACCES) return absl::PermissionDeniedError(msg);
    if (err == ENOENT) return absl::NotFoundError(msg);
    return absl::InternalError(msg);
  }
  uint64_t copied = 0;
  absl::Status status = WriteNewFile(to, [&](int out) -> absl::Status {
    std::vector<char> buffer(1 << 20);
    while (true) {
      const ssize_t n = ::read(in, buffer.data(), buffer.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return absl::InternalError(absl::StrCat(label, ": read failed: ", std::strerror(errno)));
      }
      if (n == 0) return absl::OkStatus();
      RETURN_IF_ERROR(WriteAll(out, buffer.data(), static_cast<size_t>(n), to));
      copied += static_cast<uint64_t>(n);
    }
  });
  ::close(in);
  if (!status.ok()) return status;
  return copied;
}

// True when `path` is `root` or below it (both canonical).
bool IsInside(const fs::path& path, const fs::path& root) {
  auto [root_end, unused] = std::mismatch(root.begin(), root.end(), path.begin(), path.end());
  return root_end == root.end();
}

struct SourceFile {
  std::string name;    // in the source directory, and in the export
  std::string source;  // what to read: the file itself or the target of its symlink
};

struct SourceListing {
  std::vector<SourceFile> files;  // sorted by name
  std::vector<std::string> skipped;
};

// The regular files at the top of `dir` (hidden ones left out). Symlinks are followed only to files inside `dir`
// or, for a Hugging Face cache snapshot, to its repository's blobs/ (where every snapshot file points): anything
// else could copy a file from elsewhere on the machine into an export.
absl::StatusOr<SourceListing> ListSourceFiles(const std::string& dir) {
  std::error_code ec;
  const fs::path root = fs::canonical(dir, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) {
      return absl::NotFoundError(absl::StrCat("directory '", dir, "' does not exist"));
    }
    return absl::PermissionDeniedError(absl::StrCat("cannot resolve '", dir, "': ", ec.message()));
  }
  std::vector<fs::path> allowed = {root};
  if (root.parent_path().filename() == "snapshots") allowed.push_back(root.parent_path().parent_path() / "blobs");

  SourceListing listing;
  fs::directory_iterator it(root, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot read '", dir, "': ", ec.message()));
  for (const fs::directory_iterator end; it != end; it.increment(ec)) {
    if (ec) break;
    const fs::path& path = it->path();
    const std::string name = path.filename().string();
    if (name.front() == '.') continue;
    const fs::file_status link_status = it->symlink_status(ec);
    if (ec) break;
    fs::path source = path;
    if (fs::is_symlink(link_status)) {
      const fs::path resolved = fs::canonical(path, ec);
      if (ec) {
        return absl::NotFoundError(absl::StrCat("'", name, "' in '", dir, "' is a symlink to a missing file (",
                                                ec.message(), "); remove it or restore its target"));
      }
      if (fs::is_directory(resolved, ec)) {
        listing.skipped.push_back(name);  // never read, wherever it points
        continue;
      }
      if (std::none_of(allowed.begin(), allowed.end(), [&](const fs::path& r) { return IsInside(resolved, r); })) {
        return absl::PermissionDeniedError(absl::StrCat("'", name, "' in '", dir, "' is a symlink to '",
                                                        resolved.string(),
                                                        "' outside the directory; copy the file in instead"));
      }
      source = resolved;
    }
    const fs::file_status status = fs::status(source, ec);
    if (ec) break;
    if (!fs::is_regular_file(status)) {
      listing.skipped.push_back(name);  // subdirectories (e.g. a checkpoint's optimizer state) are not exported
      continue;
    }
    listing.files.push_back({name, source.string()});
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list '", dir, "': ", ec.message()));
  std::sort(listing.files.begin(), listing.files.end(),
            [](const SourceFile& a, const SourceFile& b) { return a.name < b.name; });
  std::sort(listing.skipped.begin(), listing.skipped.end());
  return listing;
}

// Weights of the base are replaced by the merged ones; copying them too would leave two checkpoints.
bool IsWeightFile(const std::string& name) {
  for (const char* ext : {".safetensors", ".pt", ".pth", ".gguf", ".h5", ".msgpack"}) {
    if (absl::EndsWith(name, ext)) return true;
  }
  return name == kSafetensorsIndexFile || name == "pytorch_model.bin.index.json" ||
         (absl::StartsWith(name, "pytorch_model") && absl::EndsWith(name, ".bin"));
}

// transformers' GenerationConfig.from_model_config for a base without generation_config.json: the token ids.
std::string GenerationConfigFromModelConfig(const OrderedJson& config) {
  OrderedJson generation = {{"_from_model_config", true}};
  for (const char* key : {"bos_token_id", "eos_token_id", "pad_token_id"}) {
    auto it = config.find(key);
    if (it != config.end() && !it->is_null()) generation[key] = *it;
  }
  return generation.dump(2) + "\n";
}

// The lora_A / lora_B pair that adapts one base weight.
struct LoraPair {
  const TensorInfo* a = nullptr;
  const TensorInfo* b = nullptr;
};

// Shared by the fill callbacks while the writer runs.
struct MergeState {
  const ShardedSafetensors* base = nullptr;
  const SafetensorsFile* adapter = nullptr;
  std::map<std::string, LoraPair> lora_by_weight;  // base weight name -> its adapter tensors
  double scaling = 0;
  OutputDtype dtype;
  const std::function<void(const MergeProgress&)>* on_progress = nullptr;
  const std::function<bool()>* cancelled = nullptr;
  MergeProgress progress;
};

// The bytes of one output tensor: W + scaling * (B @ A) for an adapted weight (fp32, as PEFT computes the delta of
// fp32 adapter weights; summed in fp32, then cast once), the tensor cast to the output dtype otherwise.
absl::Status FillTensor(MergeState& state, const TensorInfo& info, std::string* bytes) {
  if (*state.cancelled && (*state.cancelled)()) {
    return absl::CancelledError("the export was cancelled; no merged weights were kept");
  }
  ASSIGN_OR_RETURN(CheckpointTensorView view, state.base->Find(info.name));
  const std::optional<at::ScalarType> source_type = FloatingType(info.dtype);
  auto lora = state.lora_by_weight.find(info.name);
  try {
    if (!source_type) {
      bytes->assign(reinterpret_cast<const char*>(view.bytes.data()), view.bytes.size());
    } else if (lora == state.lora_by_weight.end() && *source_type == state.dtype.type) {
      bytes->assign(reinterpret_cast<const char*>(view.bytes.data()), view.bytes.size());  // bit for bit
    } else {
      at::Tensor source = CopyToTensor(view.bytes, info.shape, *source_type);
      if (lora != state.lora_by_weight.end()) {
        const TensorInfo& a = *lora->second.a;
        const TensorInfo& b = *lora->second.b;
        const at::Tensor lora_a =
            CopyToTensor(state.adapter->TensorBytes(a), a.shape, *FloatingType(a.dtype)).to(at::kFloat);
        const at::Tensor lora_b =
            CopyToTensor(state.adapter->TensorBytes(b), b.shape, *FloatingType(b.dtype)).to(at::kFloat);
        // PEFT: weight += (lora_B @ lora_A) * scaling
        source = source.to(at::kFloat).add_(at::mm(lora_b, lora_a).mul_(state.scaling));
      }
      int64_t elements = 1;
      for (int64_t d : info.shape) elements *= d;
      bytes->resize(static_cast<size_t>(elements) * c10::elementSize(state.dtype.type));
      at::Tensor out = at::from_blob(bytes->data(), info.shape, at::TensorOptions().dtype(state.dtype.type));
      out.copy_(source);
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("merging tensor '", info.name, "' failed: ", e.what()));
  }
  ++state.progress.tensors_done;
  state.progress.bytes_written += bytes->size();
  if (*state.on_progress) (*state.on_progress)(state.progress);
  return absl::OkStatus();
}

// Pairs every adapter tensor with the base weight it adapts; an adapter tensor without one is an error, never
// skipped, since the merged model would silently lack part of the fine-tune.
absl::Status PairAdapterWithBase(const SafetensorsFile& adapter, const ShardedSafetensors& base,
                                 const std::string& base_dir, std::map<std::string, LoraPair>* pairs) {
  for (const TensorInfo& t : adapter.header().tensors) {
    // ValidatePeftAdapter has checked the form base_model.model.<module>.lora_{A|B}.weight.
    const size_t lora = t.name.rfind(".lora_");
    const std::string weight = t.name.substr(sizeof(kLoraPrefix) - 1, lora - (sizeof(kLoraPrefix) - 1)) + ".weight";
    LoraPair& pair = (*pairs)[weight];
    (t.name.compare(lora, 8, ".lora_A.") == 0 ? pair.a : pair.b) = &t;
  }
  for (const auto& [weight, pair] : *pairs) {
    // ValidatePeftAdapter read the same file a moment ago; this only catches it changing since.
    if (pair.a == nullptr || pair.b == nullptr || pair.a->shape.size() != 2 || pair.b->shape.size() != 2 ||
        !FloatingType(pair.a->dtype) || !FloatingType(pair.b->dtype)) {
      return absl::InvalidArgumentError(absl::StrCat(kAdapterWeights, ": the lora_A / lora_B tensors of '", weight,
                                                     "' changed while the export read them; export again"));
    }
    const TensorInfo& a = *pair.a;
    absl::StatusOr<CheckpointTensorView> view = base.Find(weight);
    if (!view.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          kAdapterWeights, ": tensor '", a.name, "' adapts '", weight, "', which the base model in '", base_dir,
          "' does not have; export with the base model the adapter was trained on (or a complete checkpoint)"));
    }
    const TensorInfo& w = *view->info;
    const std::vector<int64_t> expected = {pair.b->shape[0], a.shape[1]};
    if (w.shape != expected) {
      return absl::InvalidArgumentError(absl::StrCat(
          "base weight '", weight, "' has shape [", absl::StrJoin(w.shape, ", "), "] but its adapter tensors '",
          a.name, "' and '", pair.b->name, "' need [", absl::StrJoin(expected, ", "),
          "]; export with the base model the adapter was trained on"));
    }
    if (!FloatingType(w.dtype)) {
      return absl::InvalidArgumentError(absl::StrCat("base weight '", weight, "' has dtype ", w.dtype,
                                                     "; merging needs unquantized F32, F16, BF16 or F64 weights"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<MergedModelInfo> WriteMergedModelInto(const std::string& base_dir, const std::string& adapter_dir,
                                                     const std::string& out_dir, const MergedModelOptions& options,
                                                     const std::function<void(const MergeProgress&)>& on_progress,
                                                     const std::function<bool()>& cancelled) {
  MergedModelInfo result;
  ASSIGN_OR_RETURN(result.adapter, ReadAdapterForBase(base_dir, adapter_dir));
  ASSIGN_OR_RETURN(const std::string config_text, ReadConfigText(base_dir, kConfig));
  OrderedJson config;
  try {
    config = OrderedJson::parse(config_text);
  } catch (const nlohmann::json::exception& e) {  // ReadAdapterForBase parsed it already; a race at most
    return absl::InvalidArgumentError(absl::StrCat(kConfig, ": is not valid JSON (", e.what(), ")"));
  }
  ASSIGN_OR_RETURN(SourceListing sources, ListSourceFiles(base_dir));
  result.skipped = sources.skipped;

  ASSIGN_OR_RETURN(std::unique_ptr<ShardedSafetensors> base, ShardedSafetensors::OpenDirectory(base_dir));
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> adapter,
                   SafetensorsFile::Open((fs::path(adapter_dir) / kAdapterWeights).string(), kAdapterWeights));
  MergeState state;
  state.base = base.get();
  state.adapter = adapter.get();
  state.on_progress = &on_progress;
  state.cancelled = &cancelled;
  RETURN_IF_ERROR(PairAdapterWithBase(*adapter, *base, base_dir, &state.lora_by_weight));
  const double rank = static_cast<double>(result.adapter.rank);
  state.scaling = result.adapter.alpha / (result.adapter.use_rslora ? std::sqrt(rank) : rank);

  std::vector<const TensorInfo*> base_tensors;  // in the base's order: its shards in turn, each in data order
  for (const std::unique_ptr<SafetensorsFile>& file : base->files()) {
    for (const TensorInfo& t : file->header().tensors) base_tensors.push_back(&t);
  }
  ASSIGN_OR_RETURN(state.dtype, ResolveOutputDtype(options.dtype, config, base_tensors));
  result.dtype = state.dtype.config_name;
  result.merged_modules = static_cast<int64_t>(state.lora_by_weight.size());
  state.progress.tensors_total = static_cast<int64_t>(base_tensors.size());

  std::vector<TensorToWrite> tensors;
  for (const TensorInfo* t : base_tensors) {
    TensorToWrite& out = tensors.emplace_back();
    out.name = t->name;
    out.dtype = FloatingType(t->dtype) ? state.dtype.safetensors : t->dtype;
    out.shape = t->shape;
    out.fill = [&state, t](std::string* bytes) { return FillTensor(state, *t, bytes); };
  }
  RETURN_IF_ERROR(WriteShardedSafetensors(out_dir, tensors, options.max_shard_bytes, {{"format", "pt"}}));
  result.total_bytes = state.progress.bytes_written;
  for (const std::string& name : ListOutput(out_dir)) result.shards += absl::EndsWith(name, ".safetensors") ? 1 : 0;

  const std::string dtype_name = state.dtype.config_name;
  config["torch_dtype"] = dtype_name;
  if (config.contains("dtype")) config["dtype"] = dtype_name;
  RETURN_IF_ERROR(WriteTextFile((fs::path(out_dir) / kConfig).string(), config.dump(2) + "\n"));
  bool has_generation_config = false;
  for (const SourceFile& file : sources.files) {
    if (file.name == kConfig || IsWeightFile(file.name)) continue;
    if (cancelled && cancelled()) return absl::CancelledError("the export was cancelled; nothing was kept");
    has_generation_config |= file.name == kGenerationConfig;
    RETURN_IF_ERROR(CopyFileContent(file.source, file.name, (fs::path(out_dir) / file.name).string()).status());
  }
  if (!has_generation_config) {
    RETURN_IF_ERROR(WriteTextFile((fs::path(out_dir) / kGenerationConfig).string(),
                                  GenerationConfigFromModelConfig(config)));
  }
  result.files = ListOutput(out_dir);
  return result;
}

}  // namespace

absl::StatusOr<PeftAdapterInfo> ReadAdapterForBase(const std::string& base_dir, const std::string& adapter_dir) {
  ASSIGN_OR_RETURN(const std::string config_json, ReadConfigText(base_dir, kConfig));
  bool has_generation_config = false;
  ASSIGN_OR_RETURN(const std::string generation_json,
                   ReadConfigText(base_dir, kGenerationConfig, &has_generation_config));
  ASSIGN_OR_RETURN(const ModelArchitecture arch, ParseModelConfig(config_json, generation_json, kConfig));
  ASSIGN_OR_RETURN(const std::string adapter_config, ReadConfigText(adapter_dir, kAdapterConfig));
  const std::string weights_path = (fs::path(adapter_dir) / kAdapterWeights).string();
  std::error_code ec;
  if (!fs::exists(weights_path, ec)) {
    return absl::NotFoundError(absl::StrCat(kAdapterWeights, " is not in '", adapter_dir,
                                            "'; a PEFT adapter directory needs it (save with safe_serialization)"));
  }
  ASSIGN_OR_RETURN(const SafetensorsHeader header, ReadSafetensorsHeader(weights_path, kAdapterWeights));
  return ValidatePeftAdapter(adapter_config, header, arch, "");
}

absl::StatusOr<MergedModelInfo> WriteMergedModel(const std::string& base_dir, const std::string& adapter_dir,
                                                 const std::string& out_dir, const MergedModelOptions& options,
                                                 const std::function<void(const MergeProgress&)>& on_progress,
                                                 const std::function<bool()>& cancelled) {
  if (options.max_shard_bytes == 0) return absl::InvalidArgumentError("max_shard_bytes must be positive");
  ASSIGN_OR_RETURN(const bool created, PrepareOutputDir(out_dir));
  absl::StatusOr<MergedModelInfo> result =
      WriteMergedModelInto(base_dir, adapter_dir, out_dir, options, on_progress, cancelled);
  if (!result.ok()) RemoveOutput(out_dir, created);
  return result;
}

absl::StatusOr<CopiedAdapterInfo> CopyPeftAdapter(const std::string& adapter_dir, const std::string& out_dir) {
  ASSIGN_OR_RETURN(const std::string adapter_config, ReadConfigText(adapter_dir, kAdapterConfig));
  RETURN_IF_ERROR(CheckJsonDepth(adapter_config, kMaxJsonDepth, kAdapterConfig));
  const nlohmann::json parsed = nlohmann::json::parse(adapter_config, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(kAdapterConfig, " in '", adapter_dir,
                                                   "' is not a JSON object; re-save the adapter with PEFT"));
  }
  const std::string weights_path = (fs::path(adapter_dir) / kAdapterWeights).string();
  std::error_code ec;
  if (!fs::exists(weights_path, ec)) {
    return absl::NotFoundError(absl::StrCat(kAdapterWeights, " is not in '", adapter_dir,
                                            "'; a PEFT adapter directory needs it (save with safe_serialization)"));
  }
  RETURN_IF_ERROR(ReadSafetensorsHeader(weights_path, kAdapterWeights).status());
  ASSIGN_OR_RETURN(SourceListing sources, ListSourceFiles(adapter_dir));

  ASSIGN_OR_RETURN(const bool created, PrepareOutputDir(out_dir));
  CopiedAdapterInfo result;
  result.skipped = sources.skipped;
  for (const SourceFile& file : sources.files) {
    absl::StatusOr<uint64_t> copied = CopyFileContent(file.source, file.name, (fs::path(out_dir) / file.name).string());
    if (!copied.ok()) {
      RemoveOutput(out_dir, created);
      return copied.status();
    }
    result.bytes += *copied;
    result.files.push_back(file.name);
  }
  return result;
}

}  // namespace tuneforge
