// Errors thrown by the core. The binding turns them into the matching JS error
// class (RangeError for a bad value, TypeError for a bad kind, Error otherwise),
// so the core can check bounds again without knowing about JS.
#pragma once

#include <stdexcept>
#include <string>

namespace np {

enum class ErrorKind { kError, kRangeError, kTypeError, kNonFinite, kBusy, kAborted };

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

[[noreturn]] inline void throw_range(const std::string& message) { throw Error(ErrorKind::kRangeError, message); }
[[noreturn]] inline void throw_type(const std::string& message) { throw Error(ErrorKind::kTypeError, message); }
[[noreturn]] inline void throw_error(const std::string& message) { throw Error(ErrorKind::kError, message); }

// Throws a RangeError when `bytes` could not fit in this machine's physical
// memory: better than letting an over-committed allocation be killed later.
void check_fits_in_memory(double bytes, const std::string& what);

}  // namespace np
