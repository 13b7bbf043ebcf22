// Exit codes scripts can rely on; the --help footer documents them.
#pragma once

#include <grpcpp/support/status_code_enum.h>

#include "parc/common/error.h"

namespace parc::ctl {

enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,      // server-side failure or anything else
  kExitUsage = 2,        // bad arguments (also when the server rejects one)
  kExitNotFound = 3,
  kExitRefused = 4,      // unauthenticated, not allowed, or the state forbids it (revoked ...)
  kExitUnreachable = 5,  // server down, unreachable, or too slow
  kExitConflict = 6,     // already exists
};

int ExitCodeForStatus(grpc::StatusCode code);
// For failures detected locally (bad --ttl, unreadable file ...).
int ExitCodeForError(const Error& error);

// Text of the exit code table, for the --help footer.
const char* ExitCodeHelp();

}  // namespace parc::ctl
