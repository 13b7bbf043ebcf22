// The parc PKI on OpenSSL 3.
//
// FetchPeerChain needs a TCP socket, so this file includes the POSIX socket
// headers. That is acceptable while common/ is built for Linux only; when the
// Windows agent arrives the socket part moves behind a platform header.

#include "parc/common/pki.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <memory>
#include <string_view>
#include <utility>

#include "parc/common/files.h"
#include "parc/common/hash.h"

namespace parc::pki {
namespace {

template <auto Fn>
struct Deleter {
  template <typename T>
  void operator()(T* p) const { Fn(p); }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;
using NamePtr = std::unique_ptr<X509_NAME, Deleter<X509_NAME_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;
using GeneralNamePtr = std::unique_ptr<GENERAL_NAME, Deleter<GENERAL_NAME_free>>;
using BasicConstraintsPtr = std::unique_ptr<BASIC_CONSTRAINTS, Deleter<BASIC_CONSTRAINTS_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using Asn1IntegerPtr = std::unique_ptr<ASN1_INTEGER, Deleter<ASN1_INTEGER_free>>;
using Asn1TimePtr = std::unique_ptr<ASN1_TIME, Deleter<ASN1_TIME_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, Deleter<SSL_free>>;
using AddrInfoPtr = std::unique_ptr<addrinfo, Deleter<freeaddrinfo>>;

// OPENSSL_free is a macro, so it cannot be a template argument.
struct OpenSslStringFree {
  void operator()(char* p) const { OPENSSL_free(p); }
  void operator()(unsigned char* p) const { OPENSSL_free(p); }
};

constexpr size_t kMaxCsrBytes = 16 * 1024;
constexpr int kMaxCommonNameLength = 64;  // ub-common-name, RFC 5280
constexpr int kCaValidityDays = 3650;
constexpr int kMaxIssuedDays = 3650;
// Certificates start five minutes in the past so that a machine whose clock is
// slightly behind the server's still accepts a certificate issued just now.
constexpr long kClockSkewSeconds = 5 * 60;

// Drains OpenSSL's thread-local error queue into one readable reason, so that
// a stale error never leaks into the next, unrelated, message.
std::string OpenSslError() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    std::string text;
    if (reason) {
      text = reason;
    } else {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof buf);
      text = buf;
    }
    if (out.find(text) == std::string::npos) out += (out.empty() ? "" : "; ") + text;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

std::unexpected<Error> CryptoFail(const std::string& what) {
  return Fail(Errc::kCrypto, what + ": " + OpenSslError());
}

BioPtr MemoryBio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

// Refuses to prompt on the terminal for a passphrase: our keys are never encrypted,
// and a daemon must fail rather than hang waiting for input.
int NoPassphrase(char*, int, int, void*) { return 0; }

Expected<PkeyPtr> ReadPrivateKey(const std::string& pem) {
  ERR_clear_error();
  BioPtr bio = MemoryBio(pem);
  if (!bio) return CryptoFail("cannot allocate memory");
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!key) return Fail(Errc::kInvalidArgument, "cannot read the private key: " + OpenSslError());
  return key;
}

Expected<PkeyPtr> ReadPublicKey(const std::string& pem) {
  ERR_clear_error();
  BioPtr bio = MemoryBio(pem);
  if (!bio) return CryptoFail("cannot allocate memory");
  PkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!key) return Fail(Errc::kInvalidArgument, "cannot read the public key: " + OpenSslError());
  return key;
}

Expected<X509Ptr> ReadCertificate(const std::string& pem) {
  ERR_clear_error();
  BioPtr bio = MemoryBio(pem);
  if (!bio) return CryptoFail("cannot allocate memory");
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!cert) return Fail(Errc::kInvalidArgument, "cannot read the certificate: " + OpenSslError());
  return cert;
}

Expected<std::string> CertificatePem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return CryptoFail("cannot encode the certificate");
  return BioText(bio.get());
}

Expected<std::string> PublicKeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1) return CryptoFail("cannot encode the public key");
  return BioText(bio.get());
}

std::string FingerprintOf(X509* cert) {
  unsigned char* der = nullptr;
  int len = i2d_X509(cert, &der);
  if (len <= 0) return {};
  std::unique_ptr<unsigned char, OpenSslStringFree> owned(der);
  return HexEncode(Sha256(std::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(len))));
}

// The first entry of `nid` in a name, as UTF-8; empty when absent.
std::string NameEntry(const X509_NAME* name, int nid) {
  if (!name) return {};
  int index = X509_NAME_get_index_by_NID(name, nid, -1);
  if (index < 0) return {};
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) return {};
  std::unique_ptr<unsigned char, OpenSslStringFree> owned(utf8);
  return std::string(reinterpret_cast<const char*>(utf8), static_cast<size_t>(len));
}

ExpectedVoid AddNameEntry(X509_NAME* name, int nid, const std::string& value, const char* label) {
  if (value.size() > kMaxCommonNameLength)
    return Fail(Errc::kInvalidArgument, std::string(label) + " \"" + value + "\" is longer than 64 characters");
  if (value.find('\0') != std::string::npos)
    return Fail(Errc::kInvalidArgument, std::string(label) + " contains a NUL character");
  if (X509_NAME_add_entry_by_NID(name, nid, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.data()),
                                 static_cast<int>(value.size()), -1, 0) != 1)
    return Fail(Errc::kInvalidArgument, std::string("cannot use \"") + value + "\" as " + label + ": " + OpenSslError());
  return {};
}

int64_t UnixTime(const ASN1_TIME* t) {
  // ASN1_TIME_diff from the epoch instead of timegm(): same result, no platform function.
  Asn1TimePtr epoch(ASN1_TIME_set(nullptr, 0));
  int days = 0, seconds = 0;
  if (!epoch || !t || ASN1_TIME_diff(&days, &seconds, epoch.get(), t) != 1) return 0;
  return int64_t{days} * 86400 + seconds;
}

// 128 random bits, top bit cleared so the DER INTEGER is positive, next bit set so
// it never shrinks to a short (or zero) serial.
Expected<Asn1IntegerPtr> RandomSerial() {
  std::string bytes = RandomBytes(16);
  bytes[0] = static_cast<char>((static_cast<unsigned char>(bytes[0]) & 0x7f) | 0x40);
  BignumPtr bn(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()), 16, nullptr));
  if (!bn) return CryptoFail("cannot make a serial number");
  Asn1IntegerPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!serial) return CryptoFail("cannot make a serial number");
  return serial;
}

enum class AddressFamily { kNone, kIpv4, kIpv6 };

// The binary form of an IP literal, or kNone when `text` is not one.
AddressFamily ParseIp(const std::string& text, unsigned char (&out)[16]) {
  if (inet_pton(AF_INET, text.c_str(), out) == 1) return AddressFamily::kIpv4;
  if (inet_pton(AF_INET6, text.c_str(), out) == 1) return AddressFamily::kIpv6;
  return AddressFamily::kNone;
}

bool IsIpLiteral(const std::string& text) {
  unsigned char buf[16];
  return ParseIp(text, buf) != AddressFamily::kNone;
}

// Only hostname characters (and the wildcard) may reach a DNS SAN: anything else
// is a typo or an attempt to smuggle a second name in.
bool IsValidDnsName(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
              c == '_' || c == '*';
    if (!ok) return false;
  }
  return true;
}

Expected<GeneralNamesPtr> SubjectAltNames(const std::vector<std::string>& names) {
  GeneralNamesPtr gens(sk_GENERAL_NAME_new_null());
  if (!gens) return CryptoFail("cannot allocate memory");
  for (const auto& name : names) {
    GeneralNamePtr gn(GENERAL_NAME_new());
    if (!gn) return CryptoFail("cannot allocate memory");
    unsigned char ip[16];
    AddressFamily family = ParseIp(name, ip);
    if (family != AddressFamily::kNone) {
      ASN1_OCTET_STRING* octets = ASN1_OCTET_STRING_new();
      if (!octets || ASN1_OCTET_STRING_set(octets, ip, family == AddressFamily::kIpv4 ? 4 : 16) != 1) {
        ASN1_OCTET_STRING_free(octets);
        return CryptoFail("cannot encode IP address " + name);
      }
      GENERAL_NAME_set0_value(gn.get(), GEN_IPADD, octets);
    } else {
      if (!IsValidDnsName(name))
        return Fail(Errc::kInvalidArgument,
                    "\"" + name + "\" is neither an IP address nor a valid DNS name for a server certificate");
      ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
      if (!dns || ASN1_STRING_set(dns, name.data(), static_cast<int>(name.size())) != 1) {
        ASN1_IA5STRING_free(dns);
        return CryptoFail("cannot encode DNS name " + name);
      }
      GENERAL_NAME_set0_value(gn.get(), GEN_DNS, dns);
    }
    if (sk_GENERAL_NAME_push(gens.get(), gn.get()) <= 0) return CryptoFail("cannot allocate memory");
    gn.release();  // now owned by the stack
  }
  return gens;
}

ExpectedVoid AddExtension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (!ext) return CryptoFail(std::string("cannot build the ") + OBJ_nid2sn(nid) + " extension");
  if (X509_add_ext(cert, ext.get(), -1) != 1)
    return CryptoFail(std::string("cannot add the ") + OBJ_nid2sn(nid) + " extension");
  return {};
}

// A v3 certificate with serial, validity, names and key set; extensions and the
// signature are added by the caller.
Expected<X509Ptr> NewCertificate(EVP_PKEY* subject_key, const X509_NAME* subject, const X509_NAME* issuer, int days) {
  X509Ptr cert(X509_new());
  if (!cert) return CryptoFail("cannot allocate a certificate");
  auto serial = RandomSerial();
  if (!serial) return Fail(serial.error());
  if (X509_set_version(cert.get(), 2) != 1 || X509_set_serialNumber(cert.get(), serial->get()) != 1 ||
      !X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kClockSkewSeconds) ||
      !X509_time_adj_ex(X509_getm_notAfter(cert.get()), days, 0, nullptr) ||
      X509_set_subject_name(cert.get(), subject) != 1 || X509_set_issuer_name(cert.get(), issuer) != 1 ||
      X509_set_pubkey(cert.get(), subject_key) != 1)
    return CryptoFail("cannot fill in the certificate");
  return cert;
}

Expected<std::string> SignCertificate(X509* cert, EVP_PKEY* signer) {
  if (X509_sign(cert, signer, EVP_sha256()) <= 0) return CryptoFail("cannot sign the certificate");
  return CertificatePem(cert);
}

Expected<X509Ptr> MakeCaCertificate(EVP_PKEY* key, const std::string& name) {
  NamePtr subject(X509_NAME_new());
  if (!subject) return CryptoFail("cannot allocate memory");
  if (auto r = AddNameEntry(subject.get(), NID_commonName, name, "CA name"); !r) return Fail(r.error());
  auto cert = NewCertificate(key, subject.get(), subject.get(), kCaValidityDays);
  if (!cert) return cert;
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert->get(), cert->get(), nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                            std::pair{NID_key_usage, "critical,keyCertSign,cRLSign"},
                            std::pair{NID_subject_key_identifier, "hash"},
                            std::pair{NID_authority_key_identifier, "keyid:always"}}) {
    if (auto r = AddExtension(cert->get(), &ctx, nid, value); !r) return Fail(r.error());
  }
  if (X509_sign(cert->get(), key, EVP_sha256()) <= 0) return CryptoFail("cannot sign the CA certificate");
  return cert;
}

enum class Usage { kServer, kClient };

// Signs a leaf certificate for `public_key_pem` with the CA's key.
Expected<std::string> IssueLeaf(const std::string& ca_key_pem, const std::string& ca_cert_pem,
                                const std::string& public_key_pem, const X509_NAME* subject,
                                const std::vector<std::string>& san_names, int days, Usage usage) {
  if (days < 1 || days > kMaxIssuedDays)
    return Fail(Errc::kInvalidArgument, "certificate lifetime must be between 1 and 3650 days, not " +
                                            std::to_string(days));
  auto ca_key = ReadPrivateKey(ca_key_pem);
  if (!ca_key) return Fail(ca_key.error().WithContext("CA"));
  auto ca_cert = ReadCertificate(ca_cert_pem);
  if (!ca_cert) return Fail(ca_cert.error().WithContext("CA"));
  auto subject_key = ReadPublicKey(public_key_pem);
  if (!subject_key) return Fail(subject_key.error());

  auto cert = NewCertificate(subject_key->get(), subject, X509_get_subject_name(ca_cert->get()), days);
  if (!cert) return Fail(cert.error());
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, ca_cert->get(), cert->get(), nullptr, nullptr, 0);
  // keyEncipherment only means something for RSA key transport; an EC key signs.
  const char* key_usage = EVP_PKEY_base_id(subject_key->get()) == EVP_PKEY_RSA
                              ? "critical,digitalSignature,keyEncipherment"
                              : "critical,digitalSignature";
  const char* extended = usage == Usage::kServer ? "serverAuth" : "clientAuth";
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:FALSE"},
                            std::pair{NID_key_usage, key_usage},
                            std::pair{NID_ext_key_usage, extended},
                            std::pair{NID_subject_key_identifier, "hash"},
                            std::pair{NID_authority_key_identifier, "keyid:always"}}) {
    if (auto r = AddExtension(cert->get(), &ctx, nid, value); !r) return Fail(r.error());
  }
  if (!san_names.empty()) {
    auto gens = SubjectAltNames(san_names);
    if (!gens) return Fail(gens.error());
    // RFC 5280: the SAN must be critical when the subject is empty.
    int critical = X509_NAME_entry_count(subject) == 0 ? 1 : 0;
    if (X509_add1_ext_i2d(cert->get(), NID_subject_alt_name, gens->get(), critical, X509V3_ADD_DEFAULT) != 1)
      return CryptoFail("cannot add the subjectAltName extension");
  }
  return SignCertificate(cert->get(), ca_key->get());
}

// ---- FetchPeerChain helpers ----

using Clock = std::chrono::steady_clock;

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Socket& operator=(Socket&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Waits for `events` on fd until the deadline. 0 on readiness, else an errno value.
int WaitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, RemainingMs(deadline));
    if (n > 0) return 0;
    if (n == 0) return ETIMEDOUT;
    if (errno != EINTR) return errno;
  }
}

// OpenSSL writes to the socket with write(), which raises SIGPIPE if the server
// already hung up; a library must not kill its host process for that. Block the
// signal on this thread for the duration and swallow one we caused.
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock() {
    sigemptyset(&pipe_set_);
    sigaddset(&pipe_set_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    already_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_set_, &old_mask_);
  }
  ~ScopedSigpipeBlock() {
    if (!already_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        timespec zero{0, 0};
        sigtimedwait(&pipe_set_, nullptr, &zero);
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  }
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

 private:
  sigset_t pipe_set_;
  sigset_t old_mask_;
  bool already_pending_ = false;
};

std::string Endpoint(const std::string& host, uint16_t port) {
  bool ipv6 = host.find(':') != std::string::npos;
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Expected<Socket> ConnectWithTimeout(const std::string& host, uint16_t port, Clock::time_point deadline,
                                    int timeout_ms) {
  const std::string where = Endpoint(host, port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
  addrinfo* raw = nullptr;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &raw);
  if (rc != 0) {
    std::string why = rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc);
    return Fail(Errc::kUnavailable, "cannot resolve " + host + ": " + why);
  }
  AddrInfoPtr addresses(raw);

  int last_error = 0;
  for (addrinfo* ai = addresses.get(); ai != nullptr; ai = ai->ai_next) {
    Socket sock(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (sock.fd() < 0) {
      last_error = errno;
      continue;
    }
    if (::connect(sock.fd(), ai->ai_addr, ai->ai_addrlen) == 0) return sock;
    if (errno != EINPROGRESS) {
      last_error = errno;
      continue;
    }
    int wait_error = WaitFor(sock.fd(), POLLOUT, deadline);
    if (wait_error != 0) {
      last_error = wait_error;
      if (wait_error == ETIMEDOUT) break;  // the whole budget is spent
      continue;
    }
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (::getsockopt(sock.fd(), SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) so_error = errno;
    if (so_error == 0) return sock;
    last_error = so_error;
  }
  if (last_error == ETIMEDOUT)
    return Fail(Errc::kUnavailable, "cannot connect to " + where + ": no answer within " +
                                        std::to_string(timeout_ms) + " ms");
  return Fail(Errc::kUnavailable,
              "cannot connect to " + where + ": " + std::strerror(last_error ? last_error : EHOSTUNREACH));
}

}  // namespace

Expected<std::string> GenerateKeyPem() {
  ERR_clear_error();
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return CryptoFail("cannot generate a P-256 key");
  BioPtr bio(BIO_new(BIO_s_mem()));
  // PEM_write_bio_PrivateKey writes PKCS#8 ("BEGIN PRIVATE KEY") in OpenSSL 3.
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return CryptoFail("cannot encode the private key");
  return BioText(bio.get());
}

Expected<std::string> PublicKeyPem(const std::string& private_key_pem) {
  auto key = ReadPrivateKey(private_key_pem);
  if (!key) return Fail(key.error());
  return PublicKeyToPem(key->get());
}

Expected<std::string> MakeCsr(const std::string& private_key_pem, const std::string& common_name) {
  auto key = ReadPrivateKey(private_key_pem);
  if (!key) return Fail(key.error());
  ReqPtr req(X509_REQ_new());
  if (!req) return CryptoFail("cannot allocate a certificate request");
  X509_NAME* subject = X509_REQ_get_subject_name(req.get());
  if (!common_name.empty()) {
    if (auto r = AddNameEntry(subject, NID_commonName, common_name, "common name"); !r) return Fail(r.error());
  }
  if (X509_REQ_set_version(req.get(), 0) != 1 || X509_REQ_set_pubkey(req.get(), key->get()) != 1)
    return CryptoFail("cannot fill in the certificate request");
  if (X509_REQ_sign(req.get(), key->get(), EVP_sha256()) <= 0) return CryptoFail("cannot sign the certificate request");
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1)
    return CryptoFail("cannot encode the certificate request");
  return BioText(bio.get());
}

Expected<CsrInfo> VerifyCsr(const std::string& csr_pem) {
  if (csr_pem.size() > kMaxCsrBytes)
    return Fail(Errc::kInvalidArgument, "the certificate request is " + std::to_string(csr_pem.size()) +
                                            " bytes; at most 16 KiB is accepted");
  ERR_clear_error();
  BioPtr bio = MemoryBio(csr_pem);
  if (!bio) return CryptoFail("cannot allocate memory");
  ReqPtr req(PEM_read_bio_X509_REQ(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!req)
    return Fail(Errc::kInvalidArgument, "the certificate request cannot be read (expected a PEM \"CERTIFICATE "
                                        "REQUEST\"): " + OpenSslError());
  EVP_PKEY* key = X509_REQ_get0_pubkey(req.get());
  if (!key) return Fail(Errc::kInvalidArgument, "the certificate request carries no usable public key: " + OpenSslError());
  // Proves that whoever sent the request holds the private key.
  if (X509_REQ_verify(req.get(), key) != 1) {
    ERR_clear_error();  // OpenSSL's reason ("EVP lib") would only confuse the reader
    return Fail(Errc::kInvalidArgument,
                "the certificate request's signature does not match its key (the request was altered or forged)");
  }
  auto pub = PublicKeyToPem(key);
  if (!pub) return Fail(pub.error());
  return CsrInfo{std::move(*pub), NameEntry(X509_REQ_get_subject_name(req.get()), NID_commonName)};
}

Expected<CertInfo> ParseCertificate(const std::string& pem) {
  auto cert = ReadCertificate(pem);
  if (!cert) return Fail(cert.error());
  X509* x = cert->get();
  CertInfo info;
  info.common_name = NameEntry(X509_get_subject_name(x), NID_commonName);
  info.organization = NameEntry(X509_get_subject_name(x), NID_organizationName);
  info.issuer_common_name = NameEntry(X509_get_issuer_name(x), NID_commonName);
  if (BignumPtr bn{ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), nullptr)}) {
    if (std::unique_ptr<char, OpenSslStringFree> hex{BN_bn2hex(bn.get())}) {
      info.serial_hex = hex.get();
      for (auto& c : info.serial_hex) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  info.fingerprint = FingerprintOf(x);
  info.not_before = UnixTime(X509_get0_notBefore(x));
  info.not_after = UnixTime(X509_get0_notAfter(x));

  GeneralNamesPtr sans(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans.get(), i);
    if (gn->type == GEN_DNS) {
      const ASN1_IA5STRING* s = gn->d.dNSName;
      info.dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                  static_cast<size_t>(ASN1_STRING_length(s)));
    } else if (gn->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* s = gn->d.iPAddress;
      char text[INET6_ADDRSTRLEN] = {};
      int len = ASN1_STRING_length(s);
      int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : AF_UNSPEC;
      if (family != AF_UNSPEC && inet_ntop(family, ASN1_STRING_get0_data(s), text, sizeof text))
        info.ip_addresses.emplace_back(text);
    }
  }
  BasicConstraintsPtr bc(static_cast<BASIC_CONSTRAINTS*>(X509_get_ext_d2i(x, NID_basic_constraints, nullptr, nullptr)));
  info.is_ca = bc && bc->ca;
  ERR_clear_error();  // absent extensions leave entries behind
  return info;
}

Expected<std::string> CertificateFingerprint(const std::string& pem) {
  auto cert = ReadCertificate(pem);
  if (!cert) return Fail(cert.error());
  std::string fp = FingerprintOf(cert->get());
  if (fp.empty()) return CryptoFail("cannot encode the certificate");
  return fp;
}

std::vector<std::string> SplitPemCertificates(const std::string& pem_bundle) {
  static constexpr std::string_view kBegin = "-----BEGIN CERTIFICATE-----";
  static constexpr std::string_view kEnd = "-----END CERTIFICATE-----";
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = pem_bundle.find(kBegin, pos)) != std::string::npos) {
    size_t end = pem_bundle.find(kEnd, pos + kBegin.size());
    if (end == std::string::npos) break;  // a truncated last block is not a certificate
    end += kEnd.size();
    out.push_back(pem_bundle.substr(pos, end - pos) + "\n");
    pos = end;
  }
  return out;
}

Expected<bool> IsSignedBy(const std::string& cert_pem, const std::string& ca_pem) {
  auto cert = ReadCertificate(cert_pem);
  if (!cert) return Fail(cert.error());
  auto ca = ReadCertificate(ca_pem);
  if (!ca) return Fail(ca.error().WithContext("CA"));
  EVP_PKEY* ca_key = X509_get0_pubkey(ca->get());
  if (!ca_key) return Fail(Errc::kInvalidArgument, "the CA certificate has no usable public key: " + OpenSslError());
  // 0 is a bad signature, -1 a key that cannot have made it (other algorithm): both mean "no".
  bool signature_ok = X509_verify(cert->get(), ca_key) == 1;
  ERR_clear_error();
  if (!signature_ok) return false;
  bool started = X509_cmp_current_time(X509_get0_notBefore(cert->get())) < 0;
  bool not_expired = X509_cmp_current_time(X509_get0_notAfter(cert->get())) > 0;
  return started && not_expired;
}

Expected<CertificateAuthority> CertificateAuthority::LoadOrCreate(const std::filesystem::path& dir,
                                                                  const std::string& name) {
  const auto key_path = dir / "ca.key";
  const auto cert_path = dir / "ca.pem";
  if (auto r = EnsureDirectory(dir, 0700); !r) return Fail(r.error());

  CertificateAuthority ca;
  bool have_key = PathExists(key_path);
  bool have_cert = PathExists(cert_path);
  if (have_cert && !have_key)
    return Fail(Errc::kFailedPrecondition, cert_path.string() + " exists but " + key_path.string() +
                                               " is missing: restore the CA key from a backup, or remove " +
                                               cert_path.string() + " to create a new CA (every agent must then re-enroll)");
  if (have_key) {
    auto key = ReadFile(key_path);
    if (!key) return Fail(key.error());
    ca.key_pem_ = std::move(*key);
  } else {
    auto key = GenerateKeyPem();
    if (!key) return Fail(key.error());
    // The key is written before the certificate: a crash in between leaves a key we
    // can still use, never a published certificate without its key.
    if (auto r = WriteFileAtomic(key_path, *key, 0600); !r) return Fail(r.error());
    ca.key_pem_ = std::move(*key);
  }
  auto key = ReadPrivateKey(ca.key_pem_);
  if (!key) return Fail(key.error().WithContext(key_path.string()));

  if (have_cert) {
    auto pem = ReadFile(cert_path);
    if (!pem) return Fail(pem.error());
    auto cert = ReadCertificate(*pem);
    if (!cert) return Fail(cert.error().WithContext(cert_path.string()));
    if (X509_check_private_key(cert->get(), key->get()) != 1) {
      ERR_clear_error();
      return Fail(Errc::kCrypto, cert_path.string() + " does not belong to the key " + key_path.string());
    }
    ca.cert_pem_ = std::move(*pem);
    ca.fingerprint_ = FingerprintOf(cert->get());
  } else {
    auto cert = MakeCaCertificate(key->get(), name);
    if (!cert) return Fail(cert.error());
    auto pem = CertificatePem(cert->get());
    if (!pem) return Fail(pem.error());
    if (auto r = WriteFileAtomic(cert_path, *pem, 0644); !r) return Fail(r.error());
    ca.cert_pem_ = std::move(*pem);
    ca.fingerprint_ = FingerprintOf(cert->get());
  }
  return ca;
}

Expected<std::string> CertificateAuthority::IssueServerCertificate(const std::string& public_key_pem,
                                                                   const ServerCertRequest& req) const {
  if (req.names.empty()) return Fail(Errc::kInvalidArgument, "a server certificate needs at least one name");
  NamePtr subject(X509_NAME_new());
  if (!subject) return CryptoFail("cannot allocate memory");
  // Clients match on the SANs; the CN is only for people reading the certificate,
  // so a first name too long for a CN is simply left out of it.
  const std::string& first = req.names.front();
  if (first.size() <= kMaxCommonNameLength) {
    if (auto r = AddNameEntry(subject.get(), NID_commonName, first, "common name"); !r) return Fail(r.error());
  }
  return IssueLeaf(key_pem_, cert_pem_, public_key_pem, subject.get(), req.names, req.days, Usage::kServer);
}

Expected<std::string> CertificateAuthority::IssueClientCertificate(const std::string& public_key_pem,
                                                                   const std::string& common_name,
                                                                   const std::string& organization, int days) const {
  if (common_name.empty()) return Fail(Errc::kInvalidArgument, "a client certificate needs a common name");
  NamePtr subject(X509_NAME_new());
  if (!subject) return CryptoFail("cannot allocate memory");
  if (!organization.empty()) {
    if (auto r = AddNameEntry(subject.get(), NID_organizationName, organization, "organization"); !r)
      return Fail(r.error());
  }
  if (auto r = AddNameEntry(subject.get(), NID_commonName, common_name, "common name"); !r) return Fail(r.error());
  return IssueLeaf(key_pem_, cert_pem_, public_key_pem, subject.get(), {}, days, Usage::kClient);
}

Expected<std::vector<std::string>> FetchPeerChain(const std::string& host, uint16_t port, int timeout_ms) {
  if (host.empty()) return Fail(Errc::kInvalidArgument, "no server address given");
  if (port == 0) return Fail(Errc::kInvalidArgument, "port 0 is not a valid server port");
  if (timeout_ms < 1) timeout_ms = 1;
  const std::string where = Endpoint(host, port);
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);

  auto sock = ConnectWithTimeout(host, port, deadline, timeout_ms);
  if (!sock) return Fail(sock.error());

  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return CryptoFail("cannot create a TLS context");
  // Nothing is verified on purpose: the caller shows the fingerprint to a person
  // who compares it before anything is trusted.
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SslPtr ssl(SSL_new(ctx.get()));
  if (!ssl) return CryptoFail("cannot create a TLS session");
  static const unsigned char kAlpnH2[] = {2, 'h', '2'};
  // gRPC servers refuse handshakes that do not offer h2.
  if (SSL_set_alpn_protos(ssl.get(), kAlpnH2, sizeof kAlpnH2) != 0) return CryptoFail("cannot set ALPN");
  if (!IsIpLiteral(host) && SSL_set_tlsext_host_name(ssl.get(), host.c_str()) != 1)
    return CryptoFail("cannot set the server name " + host);
  if (SSL_set_fd(ssl.get(), sock->fd()) != 1) return CryptoFail("cannot attach the socket");

  ScopedSigpipeBlock no_sigpipe;
  for (;;) {
    ERR_clear_error();
    errno = 0;
    int rc = SSL_connect(ssl.get());
    if (rc == 1) break;
    int err = SSL_get_error(ssl.get(), rc);
    int saved_errno = errno;
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      int wait_error = WaitFor(sock->fd(), err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
      if (wait_error == ETIMEDOUT)
        return Fail(Errc::kUnavailable, "TLS handshake with " + where + " timed out after " +
                                            std::to_string(timeout_ms) + " ms (is this a Parc server port?)");
      if (wait_error != 0)
        return Fail(Errc::kUnavailable, "TLS handshake with " + where + " failed: " + std::strerror(wait_error));
      continue;
    }
    std::string why;
    if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) {
      unsigned long queued = ERR_peek_error();
      if (queued != 0) why = OpenSslError();
      else if (saved_errno != 0) why = std::strerror(saved_errno);
      else why = "the server closed the connection (is this a TLS port?)";
    } else {
      why = OpenSslError();
    }
    return Fail(Errc::kUnavailable, "TLS handshake with " + where + " failed: " + why);
  }

  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl.get());  // owned by ssl; leaf first on a client
  std::vector<std::string> out;
  for (int i = 0; chain && i < sk_X509_num(chain); ++i) {
    auto pem = CertificatePem(sk_X509_value(chain, i));
    if (!pem) return Fail(pem.error());
    out.push_back(std::move(*pem));
  }
  if (out.empty()) return Fail(Errc::kCrypto, "the server at " + where + " presented no certificate");
  // A polite close_notify; the result does not matter, we already have what we came for.
  SSL_shutdown(ssl.get());
  ERR_clear_error();
  return out;
}

}  // namespace parc::pki
