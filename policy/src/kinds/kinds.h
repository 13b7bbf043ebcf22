// The rule kinds. Each Make* reads its own fields (docs/policy.md) and
// returns the Check, or an error from Fields::Bad naming file, line and key.
#pragma once

#include <memory>
#include <string>

#include "../fields.h"
#include "parc/policy/baseline.h"
#include "parc/policy/context.h"

namespace parc::policy::kinds {

using CheckPtr = std::shared_ptr<const Check>;

Expected<CheckPtr> MakeSysctl(Fields& f);         // sysctl.cc
Expected<CheckPtr> MakePermissions(Fields& f);    // permissions.cc
Expected<CheckPtr> MakeFind(Fields& f);           // find.cc
Expected<CheckPtr> MakeDirective(Fields& f);      // directive.cc
Expected<CheckPtr> MakePam(Fields& f);            // pam.cc
Expected<CheckPtr> MakePackage(Fields& f);        // package.cc
Expected<CheckPtr> MakeService(Fields& f);        // service.cc
Expected<CheckPtr> MakeMount(Fields& f);          // mount.cc
Expected<CheckPtr> MakeKernelCmdline(Fields& f);  // kernel_cmdline.cc
Expected<CheckPtr> MakeAuditRule(Fields& f);      // audit_rule.cc
Expected<CheckPtr> MakeRegistry(Fields& f);       // windows.cc
Expected<CheckPtr> MakeServiceStart(Fields& f);   // windows.cc
Expected<CheckPtr> MakeAuditPolicy(Fields& f);    // windows.cc

// Shared helpers for kinds.
Finding Pass(std::string expected, std::string found);
Finding FailWith(std::string expected, std::string found);
Finding NotApplicable(std::string why);
Finding ErrorFinding(std::string why);
std::string Trim(std::string_view s);
std::string CollapseSpaces(std::string_view s);   // trims and turns runs of blanks into one space
std::vector<std::string> SplitWords(std::string_view s);
std::vector<std::string> Lines(std::string_view text);

// Entry names of an in-system directory resolved inside the root, sorted; empty when absent.
std::vector<std::string> ListDir(const Context& ctx, const std::string& dir);

// Lines joined with "\n" after each one (the form Lines() reads back).
std::string JoinLines(const std::vector<std::string>& lines);

}  // namespace parc::policy::kinds
