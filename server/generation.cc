#include "server/generation.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace kv::server {
namespace {

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::Status FsyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return Errno("cannot open", path);
  const int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? absl::OkStatus() : Errno("cannot fsync", path);
}

}  // namespace

absl::StatusOr<uint64_t> NextGeneration(const std::string& data_dir, int64_t now_ms) {
  const std::string path = data_dir + "/GENERATION";
  uint64_t last = 0;
  {
    std::ifstream in(path);
    if (in) {
      std::stringstream text;
      text << in.rdbuf();
      if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text.str()), &last)) {
        return absl::DataLossError(absl::StrCat(
            path, " does not hold a generation number; remove it to start anew"));
      }
    }
  }
  const uint64_t next = std::max<uint64_t>(static_cast<uint64_t>(std::max<int64_t>(now_ms, 0)),
                                           last + 1);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << next << "\n";
    out.close();
    if (!out) return Errno("cannot write", tmp);
  }
  absl::Status s = FsyncPath(tmp, O_RDONLY);
  if (!s.ok()) return s;
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Errno("cannot rename to", path);
  s = FsyncPath(data_dir, O_RDONLY | O_DIRECTORY);
  if (!s.ok()) return s;
  return next;
}

}  // namespace kv::server
