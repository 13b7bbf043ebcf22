#include "parc/ctl/exit_codes.h"

namespace parc::ctl {

int ExitCodeForStatus(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return kExitOk;
    // The server names the argument it rejected; to a script that is the same
    // mistake as a bad flag, so it gets the same code.
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE: return kExitUsage;
    case grpc::StatusCode::NOT_FOUND: return kExitNotFound;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::FAILED_PRECONDITION: return kExitRefused;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED: return kExitUnreachable;
    case grpc::StatusCode::ALREADY_EXISTS: return kExitConflict;
    default: return kExitFailure;
  }
}

int ExitCodeForError(const Error& error) {
  switch (error.errc()) {
    case Errc::kOk: return kExitOk;
    case Errc::kInvalidArgument: return kExitUsage;
    case Errc::kNotFound: return kExitNotFound;
    case Errc::kUnauthenticated:
    case Errc::kPermissionDenied:
    case Errc::kFailedPrecondition:
    case Errc::kExpired: return kExitRefused;
    case Errc::kUnavailable: return kExitUnreachable;
    case Errc::kAlreadyExists: return kExitConflict;
    default: return kExitFailure;
  }
}

const char* ExitCodeHelp() {
  return "Exit codes:\n"
         "  0  success\n"
         "  1  server-side failure or other error\n"
         "  2  usage error (bad arguments, bad --ttl, argument rejected by the server)\n"
         "  3  not found (no such host, group ...)\n"
         "  4  refused (not authenticated, not allowed, or state forbids it, e.g. host revoked)\n"
         "  5  server unreachable or no answer within --timeout\n"
         "  6  conflict (already exists)\n";
}

}  // namespace parc::ctl
