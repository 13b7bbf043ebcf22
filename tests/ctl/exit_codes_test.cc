#include <catch2/catch.hpp>

#include <string>

#include "parc/ctl/exit_codes.h"

using namespace parc::ctl;
using grpc::StatusCode;

TEST_CASE("gRPC status codes map to the documented exit codes", "[ctl]") {
  CHECK(ExitCodeForStatus(StatusCode::OK) == 0);
  CHECK(ExitCodeForStatus(StatusCode::INTERNAL) == 1);
  CHECK(ExitCodeForStatus(StatusCode::UNKNOWN) == 1);
  CHECK(ExitCodeForStatus(StatusCode::INVALID_ARGUMENT) == 2);
  CHECK(ExitCodeForStatus(StatusCode::NOT_FOUND) == 3);
  CHECK(ExitCodeForStatus(StatusCode::UNAUTHENTICATED) == 4);
  CHECK(ExitCodeForStatus(StatusCode::PERMISSION_DENIED) == 4);
  CHECK(ExitCodeForStatus(StatusCode::FAILED_PRECONDITION) == 4);
  CHECK(ExitCodeForStatus(StatusCode::UNAVAILABLE) == 5);
  CHECK(ExitCodeForStatus(StatusCode::DEADLINE_EXCEEDED) == 5);
  CHECK(ExitCodeForStatus(StatusCode::ALREADY_EXISTS) == 6);
}

TEST_CASE("Local errors map to the same exit codes", "[ctl]") {
  using parc::Errc;
  using parc::Error;
  CHECK(ExitCodeForError(Error(Errc::kInvalidArgument, "x")) == 2);
  CHECK(ExitCodeForError(Error(Errc::kNotFound, "x")) == 3);
  CHECK(ExitCodeForError(Error(Errc::kPermissionDenied, "x")) == 4);
  CHECK(ExitCodeForError(Error(Errc::kUnavailable, "x")) == 5);
  CHECK(ExitCodeForError(Error(Errc::kAlreadyExists, "x")) == 6);
  CHECK(ExitCodeForError(Error(Errc::kIo, "x")) == 1);
}

TEST_CASE("The help text documents every exit code", "[ctl]") {
  std::string help = ExitCodeHelp();
  for (const char* code : {"0  success", "1  ", "2  usage", "3  not found", "4  refused", "5  server unreachable", "6  conflict"})
    CHECK(help.find(code) != std::string::npos);
}
