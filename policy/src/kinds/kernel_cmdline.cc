// PLACEHOLDER: being written (see docs/policy.md for the kind's fields).
#include "kinds.h"

namespace parc::policy::kinds {

Expected<CheckPtr> MakeKernelCmdline(Fields& f) { return Fail(f.Bad("kind", "the 'kernel_cmdline' kind is not implemented yet")); }

}  // namespace parc::policy::kinds
