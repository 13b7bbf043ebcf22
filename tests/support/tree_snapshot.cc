#include "tree_snapshot.h"

#include <sys/stat.h>
#include <unistd.h>

#include <sstream>

#include "parc/common/files.h"
#include "parc/common/hash.h"

namespace parc::pkg::testing {
namespace fs = std::filesystem;

TreeSnapshot Snapshot(const fs::path& root, const std::vector<std::string>& skip) {
  TreeSnapshot out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end; !ec && it != end;
       it.increment(ec)) {
    std::string rel = "/" + it->path().lexically_relative(root).string();
    bool skipped = false;
    for (const auto& s : skip)
      if (rel == s || rel.rfind(s + "/", 0) == 0) skipped = true;
    if (skipped) {
      if (it->is_directory() && !it->is_symlink()) it.disable_recursion_pending();
      continue;
    }
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    TreeNode n;
    n.mode = st.st_mode & 07777;
    n.uid = st.st_uid;
    n.gid = st.st_gid;
    if (S_ISREG(st.st_mode)) {
      n.type = "file";
      n.content = Sha256Hex(ReadFile(it->path()).value_or("<unreadable>"));
    } else if (S_ISDIR(st.st_mode)) {
      n.type = "dir";
    } else if (S_ISLNK(st.st_mode)) {
      n.type = "symlink";
      n.mode = 0;
      n.content = fs::read_symlink(it->path(), ec).string();
    } else {
      n.type = "other";
    }
    out[rel] = n;
  }
  return out;
}

namespace {
std::string Describe(const TreeNode& n) {
  std::ostringstream s;
  s << n.type << " mode " << std::oct << n.mode << std::dec << " owner " << n.uid << ":" << n.gid;
  if (!n.content.empty()) s << " " << (n.type == "symlink" ? "-> " : "sha256 ") << n.content.substr(0, n.type == "symlink" ? 200 : 12);
  return s.str();
}
}  // namespace

std::string DiffTrees(const TreeSnapshot& expected, const TreeSnapshot& actual) {
  std::string out;
  for (const auto& [p, n] : expected) {
    auto it = actual.find(p);
    if (it == actual.end()) out += "missing " + p + " (" + Describe(n) + ")\n";
    else if (!(it->second == n)) out += "changed " + p + ": expected " + Describe(n) + ", got " + Describe(it->second) + "\n";
  }
  for (const auto& [p, n] : actual)
    if (!expected.count(p)) out += "extra   " + p + " (" + Describe(n) + ")\n";
  return out;
}

}  // namespace parc::pkg::testing
