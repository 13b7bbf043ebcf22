// Error handling shared by every Parc part: fallible functions return
// Expected<T>; exceptions are caught only in the adapters around throwing
// libraries and converted to Error there.
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <system_error>

namespace parc {

enum class Errc {
  kOk = 0,
  kInvalidArgument,   // the caller gave something malformed
  kNotFound,
  kAlreadyExists,
  kPermissionDenied,  // authenticated but not allowed
  kUnauthenticated,   // no or bad credentials
  kFailedPrecondition,// state does not allow it (used token, revoked host ...)
  kExpired,
  kIo,
  kDatabase,
  kCrypto,
  kUnavailable,       // the peer cannot be reached now; retrying may help
  kParse,
  kResourceExhausted, // too large, too many
  kInternal,
};

const std::error_category& ParcCategory();
std::error_condition MakeCondition(Errc e);

class Error {
 public:
  Error() = default;
  Error(Errc code, std::string message) : code_(MakeCondition(code)), message_(std::move(message)) {}
  Error(std::error_condition code, std::string message) : code_(code), message_(std::move(message)) {}

  const std::error_condition& code() const { return code_; }
  Errc errc() const;
  const std::string& message() const { return message_; }
  // "context: message" — the outer layer says what it was doing.
  Error WithContext(std::string_view context) const;
  bool Is(Errc e) const { return code_ == MakeCondition(e); }
  std::string String() const;

 private:
  std::error_condition code_;
  std::string message_;
};

template <typename T>
using Expected = std::expected<T, Error>;
using ExpectedVoid = std::expected<void, Error>;

inline std::unexpected<Error> Fail(Errc code, std::string message) {
  return std::unexpected<Error>(Error(code, std::move(message)));
}
inline std::unexpected<Error> Fail(Error e) { return std::unexpected<Error>(std::move(e)); }

// errno -> Error with the system's wording.
Error ErrnoError(int err, std::string_view what);

}  // namespace parc
