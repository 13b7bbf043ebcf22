#include "parc/common/error.h"

#include <cstring>

namespace parc {
namespace {
class Category : public std::error_category {
 public:
  const char* name() const noexcept override { return "parc"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::kOk: return "ok";
      case Errc::kInvalidArgument: return "invalid argument";
      case Errc::kNotFound: return "not found";
      case Errc::kAlreadyExists: return "already exists";
      case Errc::kPermissionDenied: return "permission denied";
      case Errc::kUnauthenticated: return "unauthenticated";
      case Errc::kFailedPrecondition: return "failed precondition";
      case Errc::kExpired: return "expired";
      case Errc::kIo: return "input/output error";
      case Errc::kDatabase: return "database error";
      case Errc::kCrypto: return "cryptography error";
      case Errc::kUnavailable: return "unavailable";
      case Errc::kParse: return "parse error";
      case Errc::kResourceExhausted: return "resource exhausted";
      case Errc::kInternal: return "internal error";
    }
    return "unknown error";
  }
};
}  // namespace

const std::error_category& ParcCategory() {
  static Category category;
  return category;
}

std::error_condition MakeCondition(Errc e) { return {static_cast<int>(e), ParcCategory()}; }

Errc Error::errc() const {
  if (code_.category() == ParcCategory()) return static_cast<Errc>(code_.value());
  return Errc::kInternal;
}

Error Error::WithContext(std::string_view context) const {
  Error e = *this;
  e.message_ = std::string(context) + ": " + message_;
  return e;
}

std::string Error::String() const { return message_; }

Error ErrnoError(int err, std::string_view what) {
  Errc code = Errc::kIo;
  if (err == ENOENT) code = Errc::kNotFound;
  else if (err == EACCES || err == EPERM) code = Errc::kPermissionDenied;
  else if (err == EEXIST) code = Errc::kAlreadyExists;
  else if (err == ENOSPC) code = Errc::kResourceExhausted;
  return Error(code, std::string(what) + ": " + std::strerror(err));
}

}  // namespace parc
