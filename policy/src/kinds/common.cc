#include <dirent.h>
#include <memory>
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

std::vector<std::string> ListDir(const Context& ctx, const std::string& dir) {
  std::vector<std::string> out;
  auto host = ctx.Resolve(dir);
  if (!host) return out;
  DIR* d = ::opendir(host->c_str());
  if (!d) return out;
  std::unique_ptr<DIR, int (*)(DIR*)> guard(d, &::closedir);
  while (const dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") out.emplace_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string JoinLines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

}  // namespace parc::policy::kinds
