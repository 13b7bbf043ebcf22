// parcctl's command line: parsing, connecting, calling the admin API, printing.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

namespace grpc {
class Channel;
}

namespace parc::ctl {

// Seams for tests; production leaves them empty.
struct Hooks {
  // Replaces the mutual-TLS channel built from the credentials file (which is
  // then not read), e.g. with an in-process server's channel.
  std::function<std::shared_ptr<grpc::Channel>(const std::string& server)> connect;
  std::function<int64_t()> now;
};

// args[0] is the program name. Returns the process exit code (see ExitCodeHelp()).
int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err, const Hooks& hooks = {});

}  // namespace parc::ctl
