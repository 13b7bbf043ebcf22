// Check, apply (with a rollback point first), and roll back a baseline on a
// root. An Engine holds <state>/policy.lock while it lives and restores any
// apply left open by a crash when it opens.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "parc/common/error.h"
#include "parc/policy/baseline.h"

namespace parc::policy {

struct RuleResult {
  std::string id, title, anssi, source, kind;
  Level level = Level::kMinimal;
  Status status = Status::kError;
  std::string expected, found, message;
  bool manual = false;       // failing and not remediable here (reason in message)
  bool remediated = false;   // apply changed something for it
};

struct Report {
  std::string baseline, baseline_version;
  Level level = Level::kMinimal;
  std::string root;
  int64_t checked_at = 0;    // unix seconds
  double duration_ms = 0;
  std::vector<RuleResult> rules;
  int Count(Status s) const;
  // pass / (pass + fail) in percent; 100 when nothing applies.
  double Score() const;
  nlohmann::json ToJson() const;
};

struct PolicyPoint {
  std::string id;            // UUID
  std::string baseline;
  Level level = Level::kMinimal;
  std::string root;
  int64_t created_at = 0;
  std::vector<std::string> rules;  // rules remediated
  uint64_t paths = 0, bytes = 0;
  std::string state;         // "open", "committed", "restored" (failed apply or crash), "rolled-back"
  nlohmann::json ToJson() const;
};

struct ApplyResult {
  Report before, after;
  PolicyPoint point;         // id empty when nothing needed changing
  std::vector<std::string> notes;
};

struct SelectOptions {
  Level level = Level::kIntermediary;
  std::vector<std::string> only_rules;  // empty: all rules up to level
};

// Check needs no state and no lock.
Report CheckBaseline(const Baseline& baseline, const std::filesystem::path& root, const SelectOptions& select);

class Engine {
 public:
  static Expected<std::unique_ptr<Engine>> Open(const std::filesystem::path& root, const std::filesystem::path& state);
  ~Engine();
  // Restored points of applies that a crash left open (done by Open too).
  const std::vector<PolicyPoint>& recovered() const;

  // Remediates failing rules. On a remediation error everything is put back
  // and the error names the rule (kIo); the root is as before.
  // crash_at ("after-record", "mid-apply") makes the process SIGKILL itself, for tests.
  Expected<ApplyResult> Apply(const Baseline& baseline, const SelectOptions& select, const std::string& crash_at = "");
  Expected<PolicyPoint> Rollback(const std::string& point_id);
  Expected<std::vector<PolicyPoint>> ListPoints();

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace parc::policy
