// neuroplastic_cuda.node: the Node-API side of the CUDA backend, and the only
// CUDA-backend file that includes napi.h. It calls the plain C++ functions of
// native/cuda/runtime.h and kernels.h (implemented in .cu files).
//
// Exports:
//   probe()       { deviceCount, errorCode, error, errorName, driverVersion, runtimeVersion }, never throws
//   devices()     [{ index, name, totalMemory, computeCapability }]
//   gemmBackend() 'cublas (libcublas.so.12)' | 'tiled (<why not cuBLAS>)'
//   kernels       synchronous one-shot kernel calls on host arrays (copy in, run,
//                 copy out) for tests and checks, not a training path:
//     gemm(transA, transB, m, n, k, a, b)                 C = op(A) op(B), row-major
//     spmm(indptr, indices, values, cols, x, batch)        Y = W X   (feature-major)
//     spmmT(indptr, indices, values, cols, dy, batch)      dX = W^T dY
//     sddmm(indptr, indices, cols, dy, x, batch)           dW at W's stored positions
//   emulator      only in the addon built over the CUDA emulator (tests):
//     failLaunch(kernel, skip)  the (skip + 1)-th later launch of a kernel whose
//                               name contains `kernel` fails, out of resources
//     launchFailurePending()    whether that launch is still to come
//     clearLaunchFailure()
//     launchesOf(kernel)        launches of kernels whose name contains `kernel` so far
//     memoryOn(device)          bytes of device memory in use on that emulated GPU
// A CUDA failure becomes an Error with code 'ERR_NEUROPLASTIC_CUDA' and the
// CUDA error string in its message.
#include <napi.h>

#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "cuda/bench_peers.h"
#include "cuda/kernels.h"
#include "cuda/runtime.h"

#if defined(NP_CUDA_EMULATOR)
#include <cuda_runtime.h>  // the emulator's: fail_launch
#endif

namespace npc {
void init_cuda_model(Napi::Env env, Napi::Object exports);  // cuda_model_wrap.cpp
}

namespace {

using np::CsrView;
namespace nc = np::cuda;

template <typename Fn>
Napi::Value guard(Napi::Env env, Fn&& fn) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const nc::CudaError& e) {
    Napi::Error error = Napi::Error::New(env, e.what());
    error.Set("code", Napi::String::New(env, "ERR_NEUROPLASTIC_CUDA"));
    error.Set("cudaError", Napi::Number::New(env, e.code()));
    throw error;
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(env, "out of host memory");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// One stream for the addon's one-shot calls, created on first use and kept to
// the end of the process (destroying it at exit could race the driver's own teardown).
nc::Stream& stream() {
  static nc::Stream* s = new nc::Stream();
  return *s;
}

int64_t integer_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, int64_t min) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(fn) + ": " + name + " must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= static_cast<double>(min)) || v > 2147483647.0 || v != static_cast<double>(static_cast<int64_t>(v)))
    throw Napi::RangeError::New(info.Env(), std::string(fn) + ": " + name + " must be an integer in [" +
                                                std::to_string(min) + ", 2^31), got " + std::to_string(v));
  return static_cast<int64_t>(v);
}

template <typename Array>
Array typed_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, napi_typedarray_type type,
                const char* type_name, int64_t expected_length) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != type)
    throw Napi::TypeError::New(info.Env(), std::string(fn) + ": " + name + " must be a " + type_name);
  Array a = info[i].As<Array>();
  if (expected_length >= 0 && static_cast<int64_t>(a.ElementLength()) != expected_length)
    throw Napi::RangeError::New(info.Env(), std::string(fn) + ": " + name + " must have " +
                                                std::to_string(expected_length) + " elements, got " +
                                                std::to_string(a.ElementLength()));
  return a;
}

Napi::Float32Array floats_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, int64_t n) {
  return typed_arg<Napi::Float32Array>(info, i, fn, name, napi_float32_array, "Float32Array", n);
}

template <typename T>
nc::DeviceBuffer upload(const T* data, int64_t count) {
  nc::DeviceBuffer b(static_cast<size_t>(count) * sizeof(T));
  b.upload(data, static_cast<size_t>(count) * sizeof(T), stream());
  return b;
}

Napi::Float32Array download(Napi::Env env, const nc::DeviceBuffer& b, int64_t count) {
  Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(count));
  b.download(out.Data(), static_cast<size_t>(count) * sizeof(float), stream());
  return out;
}

// A CSR matrix from JS, checked entry by entry (the kernels trust their indices).
struct HostCsr {
  Napi::BigInt64Array indptr;
  Napi::Int32Array indices;
  int64_t rows = 0, cols = 0, nnz = 0;
};

HostCsr csr_args(const Napi::CallbackInfo& info, const char* fn, size_t cols_arg) {
  HostCsr w;
  w.indptr = typed_arg<Napi::BigInt64Array>(info, 0, fn, "indptr", napi_bigint64_array, "BigInt64Array", -1);
  w.indices = typed_arg<Napi::Int32Array>(info, 1, fn, "indices", napi_int32_array, "Int32Array", -1);
  w.cols = integer_arg(info, cols_arg, fn, "cols", 0);
  if (w.indptr.ElementLength() < 1) throw Napi::RangeError::New(info.Env(), std::string(fn) + ": indptr must have rows + 1 >= 1 entries");
  w.rows = static_cast<int64_t>(w.indptr.ElementLength()) - 1;
  const int64_t* p = w.indptr.Data();
  w.nnz = static_cast<int64_t>(w.indices.ElementLength());
  if (p[0] != 0 || p[w.rows] != w.nnz)
    throw Napi::RangeError::New(info.Env(), std::string(fn) + ": indptr must start at 0 and end at indices.length (" +
                                                std::to_string(w.nnz) + ")");
  for (int64_t r = 0; r < w.rows; ++r) {
    if (p[r + 1] < p[r]) throw Napi::RangeError::New(info.Env(), std::string(fn) + ": indptr decreases at row " + std::to_string(r));
    for (int64_t k = p[r]; k < p[r + 1]; ++k) {
      const int32_t c = w.indices.Data()[k];
      if (c < 0 || c >= w.cols || (k > p[r] && c <= w.indices.Data()[k - 1]))
        throw Napi::RangeError::New(info.Env(), std::string(fn) + ": indices[" + std::to_string(k) + "] = " +
                                                    std::to_string(c) + " is not a sorted column in [0, " +
                                                    std::to_string(w.cols) + ") for row " + std::to_string(r));
    }
  }
  return w;
}

Napi::Value Probe(const Napi::CallbackInfo& info) {
  const nc::Probe p = nc::probe();
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("deviceCount", p.device_count);
  o.Set("errorCode", p.error_code);
  o.Set("error", p.error_code ? Napi::Value(Napi::String::New(env, p.error)) : env.Null());
  o.Set("errorName", p.error_code ? Napi::Value(Napi::String::New(env, p.error_name)) : env.Null());
  o.Set("driverVersion", p.driver_version);
  o.Set("runtimeVersion", p.runtime_version);
  return o;
}

Napi::Value Devices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const std::vector<nc::DeviceInfo> list = nc::devices();
    Napi::Array out = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); ++i) {
      Napi::Object d = Napi::Object::New(env);
      d.Set("index", list[i].index);
      d.Set("name", list[i].name);
      d.Set("totalMemory", static_cast<double>(list[i].total_memory));
      d.Set("computeCapability", std::to_string(list[i].major) + "." + std::to_string(list[i].minor));
      out.Set(static_cast<uint32_t>(i), d);
    }
    return out;
  });
}

Napi::Value GemmBackend(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), nc::gemm_backend()); }

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const char* fn = "gemm";
    if (!info[0].IsBoolean() || !info[1].IsBoolean()) throw Napi::TypeError::New(env, "gemm: transA and transB must be booleans");
    const bool ta = info[0].As<Napi::Boolean>(), tb = info[1].As<Napi::Boolean>();
    const int64_t m = integer_arg(info, 2, fn, "m", 0), n = integer_arg(info, 3, fn, "n", 0), k = integer_arg(info, 4, fn, "k", 0);
    Napi::Float32Array a = floats_arg(info, 5, fn, "a", m * k), b = floats_arg(info, 6, fn, "b", k * n);
    nc::DeviceBuffer da = upload(a.Data(), m * k), db = upload(b.Data(), k * n), dc(static_cast<size_t>(m * n) * sizeof(float));
    nc::gemm_f32_cuda(ta ? np::Trans::kYes : np::Trans::kNo, tb ? np::Trans::kYes : np::Trans::kNo, m, n, k,
                      da.as<float>(), ta ? m : k, db.as<float>(), tb ? k : n, 0.0f, dc.as<float>(), n, stream());
    return download(env, dc, m * n);
  });
}

// spmm and spmmT: same arguments, W or W^T applied to a feature-major block.
Napi::Value SpmmEither(const Napi::CallbackInfo& info, bool transposed) {
  Napi::Env env = info.Env();
  const char* fn = transposed ? "spmmT" : "spmm";
  return guard(env, [&]() -> Napi::Value {
    HostCsr w = csr_args(info, fn, 3);
    Napi::Float32Array values = floats_arg(info, 2, fn, "values", w.nnz);
    const int64_t batch = integer_arg(info, 5, fn, "batch", 0);
    const int64_t in_rows = transposed ? w.rows : w.cols, out_rows = transposed ? w.cols : w.rows;
    Napi::Float32Array x = floats_arg(info, 4, fn, transposed ? "dy" : "x", in_rows * batch);
    nc::DeviceBuffer dptr = upload(w.indptr.Data(), w.rows + 1), didx = upload(w.indices.Data(), w.nnz),
                     dval = upload(values.Data(), w.nnz), dx = upload(x.Data(), in_rows * batch),
                     dy(static_cast<size_t>(out_rows * batch) * sizeof(float));
    const CsrView dev{w.rows, w.cols, dptr.as<int64_t>(), didx.as<int32_t>(), dval.as<float>()};
    if (!transposed) {
      nc::spmm_f32_csr_cuda(dev, dx.as<float>(), batch, 0.0f, dy.as<float>(), batch, batch, stream());
    } else {
      const CsrView host{w.rows, w.cols, w.indptr.Data(), w.indices.Data(), values.Data()};
      const nc::CsrTranspose t = nc::csr_transpose_host(host);
      nc::DeviceBuffer cp = nc::to_device(t.col_ptr, stream()), ri = nc::to_device(t.row_idx, stream()),
                       vp = nc::to_device(t.value_pos, stream());
      const nc::CsrTransposeView tv{w.rows, w.cols, cp.as<int64_t>(), ri.as<int32_t>(), vp.as<int64_t>()};
      nc::spmm_t_f32_csr_cuda(dev, tv, dx.as<float>(), batch, 0.0f, dy.as<float>(), batch, batch, stream());
      return download(env, dy, out_rows * batch);  // before cp/ri/vp are freed
    }
    return download(env, dy, out_rows * batch);
  });
}

Napi::Value Spmm(const Napi::CallbackInfo& info) { return SpmmEither(info, false); }
Napi::Value SpmmT(const Napi::CallbackInfo& info) { return SpmmEither(info, true); }

Napi::Value Sddmm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const char* fn = "sddmm";
    HostCsr w = csr_args(info, fn, 2);
    const int64_t batch = integer_arg(info, 5, fn, "batch", 0);
    Napi::Float32Array dy = floats_arg(info, 3, fn, "dy", w.rows * batch), x = floats_arg(info, 4, fn, "x", w.cols * batch);
    nc::DeviceBuffer dptr = upload(w.indptr.Data(), w.rows + 1), didx = upload(w.indices.Data(), w.nnz),
                     ddy = upload(dy.Data(), w.rows * batch), dx = upload(x.Data(), w.cols * batch),
                     dg(static_cast<size_t>(w.nnz) * sizeof(float));
    const CsrView dev{w.rows, w.cols, dptr.as<int64_t>(), didx.as<int32_t>(), nullptr};
    nc::sddmm_f32_csr_cuda(dev, ddy.as<float>(), batch, dx.as<float>(), batch, batch, 0.0f, dg.as<float>(), stream());
    return download(env, dg, w.nnz);
  });
}

// bench.gemm(m, n, k, reps, tiled) / bench.spmm(rows, cols, density, batch, reps, impl) -> ms per
// call (-1: peer unavailable); impl 'ours' (as the model runs it), 'rows', 'warp' or 'staged' (one
// kernel forced, kernels.h SpmmKernel) or 'cusparse'; bench.cusparse() -> 'cusparse (...)' | 'unavailable (...)'.
Napi::Value BenchGemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const char* fn = "bench.gemm";
    const int64_t m = integer_arg(info, 0, fn, "m", 1), n = integer_arg(info, 1, fn, "n", 1), k = integer_arg(info, 2, fn, "k", 1);
    const int reps = static_cast<int>(integer_arg(info, 3, fn, "reps", 1));
    return Napi::Number::New(env, nc::bench_gemm_ms(m, n, k, reps, info[4].ToBoolean().Value()));
  });
}

Napi::Value BenchSpmm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const char* fn = "bench.spmm";
    const int64_t rows = integer_arg(info, 0, fn, "rows", 1), cols = integer_arg(info, 1, fn, "cols", 1);
    if (!info[2].IsNumber()) throw Napi::TypeError::New(env, "bench.spmm: density must be a number");
    const double density = info[2].As<Napi::Number>().DoubleValue();
    if (!(density > 0.0 && density <= 1.0)) throw Napi::RangeError::New(env, "bench.spmm: density must be in (0, 1]");
    const int64_t batch = integer_arg(info, 3, fn, "batch", 1);
    const int reps = static_cast<int>(integer_arg(info, 4, fn, "reps", 1));
    const std::string impl = info[5].IsString() ? info[5].As<Napi::String>().Utf8Value() : std::string();
    nc::SpmmBenchImpl which;
    if (impl == "ours") which = nc::SpmmBenchImpl::kOurs;
    else if (impl == "rows") which = nc::SpmmBenchImpl::kOursRows;
    else if (impl == "warp") which = nc::SpmmBenchImpl::kOursWarp;
    else if (impl == "staged") which = nc::SpmmBenchImpl::kOursStaged;
    else if (impl == "cusparse") which = nc::SpmmBenchImpl::kCusparse;
    else throw Napi::TypeError::New(env, "bench.spmm: impl must be 'ours', 'rows', 'warp', 'staged' or 'cusparse'");
    return Napi::Number::New(env, nc::bench_spmm_ms(rows, cols, density, batch, reps, which));
  });
}

Napi::Value BenchCusparse(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), nc::cusparse_status()); }

// bench.selectDevice(n): the GPU the bench calls above run on (the calling thread's current device).
Napi::Value BenchSelectDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const int64_t device = integer_arg(info, 0, "bench.selectDevice", "device", 0);
    const int64_t count = static_cast<int64_t>(nc::devices().size());
    if (device >= count)
      throw Napi::RangeError::New(env, "bench.selectDevice: device " + std::to_string(device) + " is not a GPU here (CUDA sees " +
                                           std::to_string(count) + ")");
    nc::set_device(static_cast<int>(device));
    return env.Undefined();
  });
}

#if defined(NP_CUDA_EMULATOR)
// The emulator's launch failures on demand (native/cuda/emulator), so tests of
// the JavaScript side can fail a chosen kernel mid-operation.
Napi::Value EmulatorFailLaunch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || info[0].As<Napi::String>().Utf8Value().empty())
    throw Napi::TypeError::New(env, "emulator.failLaunch: kernel must be a non-empty string");
  const int64_t skip = integer_arg(info, 1, "emulator.failLaunch", "skip", 0);
  if (skip > 1000000) throw Napi::RangeError::New(env, "emulator.failLaunch: skip must be at most 1000000");
  np::cuda::emulator::fail_launch(info[0].As<Napi::String>().Utf8Value().c_str(), static_cast<int>(skip),
                                  cudaErrorLaunchOutOfResources);
  return env.Undefined();
}

Napi::Value EmulatorLaunchFailurePending(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), np::cuda::emulator::launch_failure_pending());
}

Napi::Value EmulatorClearLaunchFailure(const Napi::CallbackInfo& info) {
  np::cuda::emulator::clear_launch_failure();
  return info.Env().Undefined();
}

Napi::Value EmulatorMemoryOn(const Napi::CallbackInfo& info) {
  const int64_t device = integer_arg(info, 0, "emulator.memoryOn", "device", 0);
  return Napi::Number::New(info.Env(), static_cast<double>(np::cuda::emulator::memory_in_use_on(static_cast<int>(device))));
}

Napi::Value EmulatorLaunchesOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "emulator.launchesOf: kernel must be a string");
  return Napi::Number::New(env, static_cast<double>(np::cuda::emulator::launches_of(info[0].As<Napi::String>().Utf8Value().c_str())));
}
#endif

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Object bench = Napi::Object::New(env);
  bench.Set("gemm", Napi::Function::New(env, BenchGemm, "gemm"));
  bench.Set("spmm", Napi::Function::New(env, BenchSpmm, "spmm"));
  bench.Set("cusparse", Napi::Function::New(env, BenchCusparse, "cusparse"));
  bench.Set("selectDevice", Napi::Function::New(env, BenchSelectDevice, "selectDevice"));
  exports.Set("bench", bench);
  npc::init_cuda_model(env, exports);
  exports.Set("probe", Napi::Function::New(env, Probe, "probe"));
  exports.Set("devices", Napi::Function::New(env, Devices, "devices"));
  exports.Set("gemmBackend", Napi::Function::New(env, GemmBackend, "gemmBackend"));
  Napi::Object kernels = Napi::Object::New(env);
  kernels.Set("gemm", Napi::Function::New(env, Gemm, "gemm"));
  kernels.Set("spmm", Napi::Function::New(env, Spmm, "spmm"));
  kernels.Set("spmmT", Napi::Function::New(env, SpmmT, "spmmT"));
  kernels.Set("sddmm", Napi::Function::New(env, Sddmm, "sddmm"));
  exports.Set("kernels", kernels);
#if defined(NP_CUDA_EMULATOR)
  Napi::Object emulator = Napi::Object::New(env);
  emulator.Set("failLaunch", Napi::Function::New(env, EmulatorFailLaunch, "failLaunch"));
  emulator.Set("launchFailurePending", Napi::Function::New(env, EmulatorLaunchFailurePending, "launchFailurePending"));
  emulator.Set("clearLaunchFailure", Napi::Function::New(env, EmulatorClearLaunchFailure, "clearLaunchFailure"));
  emulator.Set("launchesOf", Napi::Function::New(env, EmulatorLaunchesOf, "launchesOf"));
  emulator.Set("memoryOn", Napi::Function::New(env, EmulatorMemoryOn, "memoryOn"));
  exports.Set("emulator", emulator);
#endif
  return exports;
}

}  // namespace

NODE_API_MODULE(neuroplastic_cuda, Init)
