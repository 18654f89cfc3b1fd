// Confines client-supplied file system paths to the directories named by --allowed-roots:
// every path a request names is resolved (all symlinks followed) and must land inside one root.
#ifndef TUNEFORGE_COMMON_ALLOWED_ROOTS_H_
#define TUNEFORGE_COMMON_ALLOWED_ROOTS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tuneforge {

class AllowedRoots {
 public:
  // Longest path accepted in a request field, in bytes (PATH_MAX).
  static constexpr size_t kMaxPathBytes = 4096;

  // Canonicalises each root (must exist and be a directory, else INVALID_ARGUMENT naming the flag value and
  // saying to create it). An empty list or an empty entry is INVALID_ARGUMENT. Duplicates are dropped.
  static absl::StatusOr<AllowedRoots> Create(const std::vector<std::string>& roots);

  // Resolves a client-supplied path to a canonical path inside a root, after following every symlink.
  // `field` is the request field name used in messages (e.g. "local.path").
  //   empty -> INVALID_ARGUMENT "<field> is required"; longer than kMaxPathBytes, NUL or control characters ->
  //   INVALID_ARGUMENT; relative -> INVALID_ARGUMENT "must be an absolute path"; does not exist -> NOT_FOUND
  //   "<field>: '<path>' does not exist"; resolves outside every root ("../" traversal, a symlink escaping) ->
  //   PERMISSION_DENIED "<field>: '<path>' is outside the allowed roots (<roots>); move the files under one of
  //   them or start tuneforge-metadata with --allowed-roots". A missing path outside the roots is reported as
  //   outside (PERMISSION_DENIED), so callers cannot probe for files outside the roots. The root itself is inside.
  // The check is component-wise: root "/data" does not admit "/data2/x".
  // The result names what the path pointed to at the time of the call; a later symlink swap is not detected.
  absl::StatusOr<std::string> Resolve(std::string_view path, std::string_view field) const;

  // For a path that must not exist yet (export destinations): the parent must exist, be a directory and
  // resolve inside a root (NOT_FOUND / INVALID_ARGUMENT / PERMISSION_DENIED otherwise); the path itself existing
  // (a dangling symlink included) -> ALREADY_EXISTS naming it. Trailing slashes are ignored. Returns the canonical
  // parent joined with the final component, which must be a plain name (not "." or "..") -> else INVALID_ARGUMENT.
  absl::StatusOr<std::string> ResolveNew(std::string_view path, std::string_view field) const;

  // Whether an already canonical absolute path equals a root or lies below one (component-wise).
  bool Contains(std::string_view canonical_path) const;

  const std::vector<std::string>& roots() const { return roots_; }

 private:
  explicit AllowedRoots(std::vector<std::string> roots) : roots_(std::move(roots)) {}
  absl::Status OutsideError(std::string_view path, std::string_view field) const;

  std::vector<std::string> roots_;  // canonical, absolute
};

// Whether canonical absolute `path` is `dir` or lies below it, component-wise ("/data" does not hold "/data2").
bool IsPathWithin(std::string_view path, std::string_view dir);

// For paths the server or a trainer is about to write, which need not exist yet (a job's output and checkpoint
// folders): `path` must be absolute, free of control characters and of '.' / '..' components, and lie under `dir`
// once the symlinks of the parts that exist are followed. Otherwise INVALID_ARGUMENT "<field>: '<path>' is outside
// <what>"; `what` names the directory by its setting (e.g. "the artifacts directory (--artifacts-dir)"), so that
// messages need not show the server's own paths.
absl::Status CheckPathUnder(std::string_view path, std::string_view dir, std::string_view field,
                            std::string_view what);

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_ALLOWED_ROOTS_H_
