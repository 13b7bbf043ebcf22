#include <grpc/support/log.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "parc/ctl/cli.h"

namespace {
void DiscardGrpcLog(gpr_log_func_args*) {}
}  // namespace

int main(int argc, char** argv) {
  // parcctl reports every failure itself in one line with a hint; gRPC's own
  // log lines ("Handshake failed ...") would only repeat it in a rawer form.
  // Setting GRPC_VERBOSITY brings them back for debugging.
  if (std::getenv("GRPC_VERBOSITY") == nullptr) gpr_set_log_function(DiscardGrpcLog);
  std::vector<std::string> args(argv, argv + argc);
  return parc::ctl::Run(args, std::cout, std::cerr);
}
