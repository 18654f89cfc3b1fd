// Writing to file descriptors: whole buffers, retried on interruption, with errors that name the file.
#ifndef TUNEFORGE_COMMON_FILE_IO_H_
#define TUNEFORGE_COMMON_FILE_IO_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"

namespace tuneforge {

// Writes all `size` bytes of `data` to `fd` (in pieces of at most 1 GiB, retrying EINTR). INTERNAL naming `path`
// when a write fails.
absl::Status WriteAll(int fd, const char* data, size_t size, const std::string& path);

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_FILE_IO_H_
