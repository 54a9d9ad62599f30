// Turns core errors (np::Error) into JS errors of the matching class, with a
// `code` property a caller can test without parsing the message.
#pragma once

#include <napi.h>

#include <string>

#include "model/errors.h"

namespace npb {

inline const char* error_code(np::ErrorKind kind) {
  switch (kind) {
    case np::ErrorKind::kNonFinite: return "ERR_NEUROPLASTIC_NONFINITE_LOSS";
    case np::ErrorKind::kBusy: return "ERR_NEUROPLASTIC_BUSY";
    case np::ErrorKind::kAborted: return "ABORT_ERR";
    case np::ErrorKind::kRangeError: return "ERR_OUT_OF_RANGE";
    case np::ErrorKind::kTypeError: return "ERR_INVALID_ARG_TYPE";
    case np::ErrorKind::kError: return "ERR_NEUROPLASTIC";
  }
  return "ERR_NEUROPLASTIC";
}

inline Napi::Error make_error(Napi::Env env, np::ErrorKind kind, const std::string& message) {
  Napi::Error error = kind == np::ErrorKind::kRangeError  ? Napi::RangeError::New(env, message)
                      : kind == np::ErrorKind::kTypeError ? Napi::TypeError::New(env, message)
                                                          : Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, error_code(kind)));
  return error;
}

// Runs fn, converting core exceptions into JS exceptions.
template <typename Fn>
auto guard(Napi::Env env, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const np::Error& e) {
    throw make_error(env, e.kind(), e.what());
  } catch (const std::bad_alloc&) {
    throw make_error(env, np::ErrorKind::kError, "out of memory");
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw make_error(env, np::ErrorKind::kError, e.what());
  }
}

}  // namespace npb
