#include <fnmatch.h>
#include <sys/stat.h>

#include <algorithm>
#include <sstream>

#include "kinds.h"

namespace parc::policy::kinds {

Finding Pass(std::string expected, std::string found) { return {Status::kPass, std::move(expected), std::move(found), ""}; }
Finding FailWith(std::string expected, std::string found) { return {Status::kFail, std::move(expected), std::move(found), ""}; }
Finding NotApplicable(std::string why) { return {Status::kNotApplicable, "", "", std::move(why)}; }
Finding ErrorFinding(std::string why) { return {Status::kError, "", "", std::move(why)}; }

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::vector<std::string> SplitWords(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

std::string CollapseSpaces(std::string_view s) {
  std::string out;
  for (const auto& w : SplitWords(s)) out += (out.empty() ? "" : " ") + w;
  return out;
}

std::vector<std::string> Lines(std::string_view text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find('\n', i);
    if (j == std::string_view::npos) j = text.size();
    out.emplace_back(text.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// ---- root-confined glob ------------------------------------------------------

namespace {

bool HasWildcard(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

std::string JoinPath(const std::string& dir, const std::string& name) { return dir == "/" ? "/" + name : dir + "/" + name; }

// Whether an in-system path is a directory once resolved inside the root.
Expected<bool> IsDirInRoot(const Context& ctx, const std::string& path) {
  auto host = ctx.Resolve(path);
  if (!host) return Fail(host.error());
  struct stat st {};
  return ::stat(host->c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

Expected<std::vector<std::string>> GlobInRoot(const Context& ctx, std::string_view pattern) {
  if (pattern.empty() || pattern[0] != '/') return Fail(Errc::kInvalidArgument, "'" + std::string(pattern) + "' is not an absolute path");
  std::vector<std::string> comps;
  for (size_t i = 1; i <= pattern.size();) {
    size_t j = pattern.find('/', i);
    if (j == std::string_view::npos) j = pattern.size();
    if (j > i) comps.emplace_back(pattern.substr(i, j - i));
    i = j + 1;
  }
  std::vector<std::string> current = {"/"};
  for (size_t c = 0; c < comps.size(); ++c) {
    const bool last = c + 1 == comps.size();
    std::vector<std::string> next;
    for (const auto& prefix : current) {
      std::vector<std::string> candidates;
      if (!HasWildcard(comps[c])) {
        candidates.push_back(JoinPath(prefix, comps[c]));
      } else {
        auto dir = ctx.Resolve(prefix);
        if (!dir) return Fail(dir.error());
        std::error_code ec;
        for (fs::directory_iterator it(*dir, ec), end; !ec && it != end; it.increment(ec)) {
          std::string name = it->path().filename().string();
          if (::fnmatch(comps[c].c_str(), name.c_str(), FNM_PERIOD) == 0) candidates.push_back(JoinPath(prefix, name));
        }
      }
      for (auto& cand : candidates) {
        if (last) {
          auto host = ctx.Resolve(cand, false);
          if (!host) return Fail(host.error());
          struct stat st {};
          if (::lstat(host->c_str(), &st) == 0) next.push_back(std::move(cand));
        } else {
          auto dir = IsDirInRoot(ctx, cand);
          if (!dir) return Fail(dir.error());
          if (*dir) next.push_back(std::move(cand));
        }
      }
    }
    current = std::move(next);
  }
  if (comps.empty()) return current;
  std::sort(current.begin(), current.end());
  current.erase(std::unique(current.begin(), current.end()), current.end());
  return current;
}

std::string JoinLines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

}  // namespace parc::policy::kinds
