// PLACEHOLDER: being written (see docs/policy.md for the kinds' fields).
#include "kinds.h"

namespace parc::policy::kinds {

Expected<CheckPtr> MakeRegistry(Fields& f) { return Fail(f.Bad("kind", "the 'registry' kind is not implemented yet")); }
Expected<CheckPtr> MakeServiceStart(Fields& f) { return Fail(f.Bad("kind", "the 'service_start' kind is not implemented yet")); }
Expected<CheckPtr> MakeAuditPolicy(Fields& f) { return Fail(f.Bad("kind", "the 'audit_policy' kind is not implemented yet")); }

}  // namespace parc::policy::kinds
