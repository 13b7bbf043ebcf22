#include "parc/common/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace parc {
namespace fs = std::filesystem;

namespace {
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() { if (fd >= 0) ::close(fd); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};
}  // namespace

Expected<std::string> ReadSmallFile(const fs::path& path, size_t max_bytes) {
  Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (f.fd < 0) return Fail(ErrnoError(errno, "cannot open " + path.string()));
  std::string out;
  char buf[65536];
  while (out.size() < max_bytes) {
    ssize_t n = ::read(f.fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrnoError(errno, "cannot read " + path.string()));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  if (out.size() > max_bytes) out.resize(max_bytes);
  return out;
}

Expected<std::string> ReadFile(const fs::path& path) {
  return ReadSmallFile(path, size_t{1} << 34);
}

ExpectedVoid WriteFileAtomic(const fs::path& path, std::string_view data, unsigned mode) {
  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  {
    Fd f(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (f.fd < 0) return Fail(ErrnoError(errno, "cannot create " + tmp.string()));
    ::fchmod(f.fd, mode);
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::write(f.fd, data.data() + off, data.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        ::unlink(tmp.c_str());
        return Fail(ErrnoError(err, "cannot write " + tmp.string()));
      }
      off += static_cast<size_t>(n);
    }
    if (::fsync(f.fd) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      return Fail(ErrnoError(err, "cannot sync " + tmp.string()));
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Fail(ErrnoError(err, "cannot replace " + path.string()));
  }
  return {};
}

ExpectedVoid EnsureDirectory(const fs::path& path, unsigned mode) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return Fail(Errc::kIo, "cannot create directory " + path.string() + ": " + ec.message());
  ::chmod(path.c_str(), mode);
  return {};
}

bool PathExists(const fs::path& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

fs::path UnderRoot(const fs::path& root, std::string_view absolute) {
  std::string_view rel = absolute;
  while (!rel.empty() && rel.front() == '/') rel.remove_prefix(1);
  if (root.empty() || root == "/") return fs::path("/") / rel;
  return root / rel;
}

}  // namespace parc
