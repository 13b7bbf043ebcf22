// PLACEHOLDER: being written (see docs/policy.md for the kind's fields).
#include "kinds.h"

namespace parc::policy::kinds {

Expected<CheckPtr> MakeFind(Fields& f) { return Fail(f.Bad("kind", "the 'find' kind is not implemented yet")); }

}  // namespace parc::policy::kinds
