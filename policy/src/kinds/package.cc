// PLACEHOLDER: being written (see docs/policy.md for the kind's fields).
#include "kinds.h"

namespace parc::policy::kinds {

Expected<CheckPtr> MakePackage(Fields& f) { return Fail(f.Bad("kind", "the 'package' kind is not implemented yet")); }

}  // namespace parc::policy::kinds
