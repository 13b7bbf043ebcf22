// Hardening baselines: rules parsed from a TOML file (docs/policy.md), each
// with a check and a remediation from a fixed set of kinds.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "parc/common/error.h"

namespace parc::policy {

enum class Level { kMinimal = 0, kIntermediary = 1, kEnhanced = 2, kHigh = 3 };
std::optional<Level> ParseLevel(std::string_view text);
std::string_view LevelName(Level level);

enum class Status { kPass, kFail, kNotApplicable, kError };
std::string_view StatusName(Status status);  // "pass", "fail", "na", "error"

// What one check found.
struct Finding {
  Status status = Status::kError;
  std::string expected;  // what the rule wants ("kernel.dmesg_restrict = 1")
  std::string found;     // what the root has, with where ("0 in /etc/sysctl.d/10-x.conf:3")
  std::string message;   // reason for na/error, or a note
};

class Context;
class Change;

// One rule's kind-specific logic. Implementations live in policy/src/kinds/.
class Check {
 public:
  virtual ~Check() = default;
  virtual Finding Evaluate(const Context& ctx) const = 0;
  // Whether Remediate can fix a failure on this root; otherwise the failure
  // is reported as manual with this reason (empty when it can).
  virtual std::string CannotRemediate(const Context& ctx) const {
    (void)ctx;
    return "";
  }
  // Makes the rule pass. Every change to the root goes through `change`,
  // which records the previous state in the rollback point first.
  virtual ExpectedVoid Remediate(const Context& ctx, Change& change) const = 0;
};

struct Rule {
  std::string id, title, rationale;
  std::string anssi;    // "R9" (ANSSI-BP-028 v2.0)
  std::string source;   // other reference
  std::string note;     // distribution differences, caveats
  Level level = Level::kMinimal;
  std::vector<std::string> platforms;
  bool remediate = true;
  std::string when_package, when_path;
  std::string kind;
  int line = 0;         // line of the [[rule]] header
  std::shared_ptr<const Check> check;
};

struct Baseline {
  std::string name, title, version, source;
  std::vector<std::string> platforms;
  std::vector<Rule> rules;
  std::string file;     // where it was read from (for messages)
};

// Errors name the file, the line and the field: "x.toml:12: rule 'a': key 'mode': ...".
Expected<Baseline> ParseBaseline(std::string_view text, const std::string& file_label);
Expected<Baseline> LoadBaseline(const std::filesystem::path& file);

// Finds a baseline by name: a path (contains '/' or ends in .toml) is read
// as is; otherwise NAME.toml in each directory of `search` in order.
Expected<Baseline> FindBaseline(const std::string& name_or_path, const std::vector<std::filesystem::path>& search);

}  // namespace parc::policy
