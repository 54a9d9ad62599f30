// Dense GEMM, activations, softmax cross-entropy and optimizer updates on the
// GPU against the CPU kernels (native/kernels: gemm_f32_naive,
// bias_activation_forward / activation_backward, softmax_cross_entropy_*,
// sgd_update / adam_update), on awkward shapes with padded row strides.
// Tolerances, stated per test: GEMM |gpu - ref| <= 1e-5 * (|A||B| + 1); the
// elementwise kernels 2e-6 relative (tanhf/expf differ from glibc by an ulp or
// two); per-row sums and the loss 1e-5 relative; argmax counts exact.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <chrono>
#include <string>
#include <vector>

#include "cuda/kernels.h"
#include "cuda/runtime.h"
#include "cuda_test.h"
#include "kernels/activations.h"
#include "kernels/gemm.h"
#include "kernels/losses.h"
#include "kernels/optimizers.h"

namespace {

using namespace np_cuda_test;
namespace nc = np::cuda;
using np::Trans;

bool near_rel(double got, double want, double rel, double abs_floor = 1e-6) {
  return std::fabs(got - want) <= rel * std::fabs(want) + abs_floor;
}

using GemmFn = void (*)(Trans, Trans, int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t, float,
                        float*, int64_t, nc::Stream&);

void check_gemm(GemmFn fn, const char* label) {
  struct S { int64_t m, n, k; };
  const S shapes[] = {{1, 1, 1}, {65, 63, 17}, {128, 64, 256}, {3, 200, 1}, {100, 1, 300}, {129, 130, 131}, {17, 9, 0}};
  uint64_t seed = 1;
  for (const S& sh : shapes)
    for (Trans ta : {Trans::kNo, Trans::kYes})
      for (Trans tb : {Trans::kNo, Trans::kYes})
        for (float beta : {0.0f, 0.5f}) {
          nc::Stream s;
          // Row strides with padding: A is m x k (or k x m), B k x n (or n x k), C m x n.
          const int64_t a_rows = ta == Trans::kYes ? sh.k : sh.m, a_cols = ta == Trans::kYes ? sh.m : sh.k;
          const int64_t b_rows = tb == Trans::kYes ? sh.n : sh.k, b_cols = tb == Trans::kYes ? sh.k : sh.n;
          const int64_t lda = a_cols + 3, ldb = b_cols + 1, ldc = sh.n + 2;
          const std::vector<float> a = padded_block(a_rows, a_cols, lda, seed++), b = padded_block(b_rows, b_cols, ldb, seed++);
          std::vector<float> c0 = padded_block(sh.m, sh.n, ldc, seed++);
          if (beta == 0.0f)
            for (int64_t i = 0; i < sh.m; ++i)
              for (int64_t j = 0; j < sh.n; ++j) c0[i * ldc + j] = kNan;
          nc::DeviceBuffer da = nc::to_device(a, s), db = nc::to_device(b, s), dc = nc::to_device(c0, s);
          fn(ta, tb, sh.m, sh.n, sh.k, da.as<float>(), lda, db.as<float>(), ldb, beta, dc.as<float>(), ldc, s);
          const std::vector<float> got = nc::to_host<float>(dc, c0.size(), s);
          std::vector<float> want = c0, scale = abs_of(c0);
          np::gemm_f32_naive(ta, tb, sh.m, sh.n, sh.k, a.data(), lda, b.data(), ldb, beta, want.data(), ldc);
          const std::vector<float> aa = abs_of(a), ba = abs_of(b);
          np::gemm_f32_naive(ta, tb, sh.m, sh.n, sh.k, aa.data(), lda, ba.data(), ldb, beta, scale.data(), ldc);
          const double e = max_scaled_error(got, want, scale);
          CHECK_MSG(e <= 1e-5, "%s %c%c m %lld n %lld k %lld beta %.1f: error %g", label, ta == Trans::kYes ? 'T' : 'N',
                    tb == Trans::kYes ? 'T' : 'N', (long long)sh.m, (long long)sh.n, (long long)sh.k, beta, e);
        }
}

const np::Activation kActivations[] = {np::Activation::kLinear, np::Activation::kRelu, np::Activation::kTanh,
                                       np::Activation::kSigmoid};

}  // namespace

CUDA_TEST(gemm_f32_tiled_cuda_matches_naive) { check_gemm(nc::gemm_f32_tiled_cuda, "tiled"); }

CUDA_TEST(gemm_f32_cuda_matches_naive) {
  std::printf("    gemm backend: %s\n", nc::gemm_backend().c_str());
  check_gemm(nc::gemm_f32_cuda, "dispatch");
}

CUDA_TEST(bias_activation_forward_and_backward_cuda_match_cpu) {
  const int64_t shapes[][3] = {{1, 1, 0}, {7, 33, 2}, {65, 257, 0}, {3, 1000, 5}, {20, 0, 3}};  // rows, batch, pad
  uint64_t seed = 40;
  for (const auto& sh : shapes)
    for (np::Activation act : kActivations) {
      nc::Stream s;
      const int64_t rows = sh[0], batch = sh[1], ld = batch + sh[2];
      const std::vector<float> z = padded_block(rows, batch, ld, seed++), bias = random_vector(rows, seed++);
      // Forward, with the per-row sums.
      nc::DeviceBuffer dy = nc::to_device(z, s), db = nc::to_device(bias, s), dabs(rows * 4), dsum(rows * 4);
      nc::bias_activation_forward_cuda(dy.as<float>(), ld, db.as<float>(), act, rows, batch, dabs.as<float>(),
                                       dsum.as<float>(), s);
      const auto y = nc::to_host<float>(dy, z.size(), s);
      const auto abs_sum = nc::to_host<float>(dabs, rows, s), sum = nc::to_host<float>(dsum, rows, s);
      std::vector<float> want = z, want_abs(rows), want_sum(rows);
      np::bias_activation_forward(want.data(), ld, bias.data(), act, 0, rows, batch, want_abs.data(), want_sum.data());
      bool ok = true;
      for (size_t i = 0; i < y.size(); ++i) ok = ok && near_rel(y[i], want[i], 2e-6);
      CHECK_MSG(ok, "forward %s rows %lld batch %lld: values differ", np::activation_name(act), (long long)rows, (long long)batch);
      for (int64_t r = 0; r < rows; ++r) {
        CHECK_MSG(near_rel(abs_sum[r], want_abs[r], 1e-5, 1e-5), "forward %s row %lld: sum|y| %g vs %g", np::activation_name(act), (long long)r, abs_sum[r], want_abs[r]);
        CHECK_MSG(near_rel(sum[r], want_sum[r], 1e-5, 1e-5 * (1 + want_abs[r])), "forward %s row %lld: sum y %g vs %g", np::activation_name(act), (long long)r, sum[r], want_sum[r]);
      }
      // Backward from the CPU's outputs, so both sides differentiate the same y.
      const std::vector<float> g = padded_block(rows, batch, ld, seed++);
      nc::DeviceBuffer dyo = nc::to_device(want, s), dg = nc::to_device(g, s), ddot(rows * 4), ddz(rows * 4);
      nc::activation_backward_cuda(dg.as<float>(), dyo.as<float>(), ld, act, rows, batch, ddot.as<float>(), ddz.as<float>(), s);
      const auto dz = nc::to_host<float>(dg, g.size(), s);
      const auto dot = nc::to_host<float>(ddot, rows, s), dzs = nc::to_host<float>(ddz, rows, s);
      std::vector<float> want_dz = g, want_dot(rows), want_dzs(rows);
      np::activation_backward(want_dz.data(), want.data(), ld, act, 0, rows, batch, want_dot.data(), want_dzs.data());
      ok = true;
      for (size_t i = 0; i < dz.size(); ++i) ok = ok && near_rel(dz[i], want_dz[i], 2e-6);
      CHECK_MSG(ok, "backward %s rows %lld batch %lld: values differ", np::activation_name(act), (long long)rows, (long long)batch);
      for (int64_t r = 0; r < rows; ++r) {
        CHECK_MSG(near_rel(dot[r], want_dot[r], 1e-5, 1e-5 * (1 + batch)), "backward %s row %lld: y.dy %g vs %g", np::activation_name(act), (long long)r, dot[r], want_dot[r]);
        CHECK_MSG(near_rel(dzs[r], want_dzs[r], 1e-5, 1e-5 * (1 + batch)), "backward %s row %lld: sum dz %g vs %g", np::activation_name(act), (long long)r, dzs[r], want_dzs[r]);
      }
    }
}

CUDA_TEST(softmax_cross_entropy_cuda_matches_cpu) {
  const int64_t shapes[][3] = {{1, 1, 0}, {10, 257, 3}, {3, 1000, 0}, {1000, 7, 1}, {2, 513, 2}};  // outputs, batch, pad
  uint64_t seed = 70;
  for (const auto& sh : shapes)
    for (bool soft : {false, true}) {
      nc::Stream s;
      const int64_t outputs = sh[0], batch = sh[1], ld = batch + sh[2];
      std::vector<float> logits = padded_block(outputs, batch, ld, seed++);
      for (float& v : logits)
        if (v != kSentinel) v *= 8.0f;  // spread the softmax
      std::vector<int32_t> labels(batch);
      Lcg rng{seed++};
      for (auto& l : labels) l = static_cast<int32_t>(rng.u32() % outputs);
      std::vector<float> targets(static_cast<size_t>(outputs * ld), 0.0f);
      for (int64_t j = 0; j < batch; ++j) {  // soft targets: mass split over two classes, argmax = labels[j]
        targets[labels[j] * ld + j] += outputs > 1 ? 0.7f : 1.0f;
        if (outputs > 1) targets[((labels[j] + 1) % outputs) * ld + j] += 0.3f;
      }
      nc::DeviceBuffer dl = nc::to_device(logits, s), dlab = nc::to_device(labels, s), dt = nc::to_device(targets, s);
      nc::DeviceBuffer dg = nc::to_device(std::vector<float>(logits.size(), kSentinel), s), dtot(sizeof(nc::LossTotals)), ws;
      nc::softmax_cross_entropy_cuda(dg.as<float>(), dtot.as<nc::LossTotals>(), dl.as<float>(), ld,
                                     soft ? nullptr : dlab.as<int32_t>(), soft ? dt.as<float>() : nullptr, outputs,
                                     batch, ws, s);
      const auto grad = nc::to_host<float>(dg, logits.size(), s);
      nc::LossTotals tot;
      dtot.download(&tot, sizeof tot, s);
      std::vector<float> want(logits.size(), kSentinel);
      int64_t want_correct = 0;
      const double want_loss =
          soft ? np::softmax_cross_entropy_targets(want.data(), logits.data(), ld, targets.data(), outputs, 0, batch, batch, &want_correct)
               : np::softmax_cross_entropy_labels(want.data(), logits.data(), ld, labels.data(), outputs, 0, batch, batch, &want_correct);
      bool ok = true;
      for (size_t i = 0; i < grad.size(); ++i) ok = ok && near_rel(grad[i], want[i], 1e-5, 1e-7);
      CHECK_MSG(ok, "%s outputs %lld batch %lld: gradients differ", soft ? "targets" : "labels", (long long)outputs, (long long)batch);
      CHECK_MSG(near_rel(tot.loss, want_loss, 1e-5), "%s outputs %lld batch %lld: loss %g vs %g", soft ? "targets" : "labels", (long long)outputs, (long long)batch, tot.loss, want_loss);
      CHECK_MSG(tot.correct == want_correct, "correct %lld vs %lld", (long long)tot.correct, (long long)want_correct);
    }
}

CUDA_TEST(sgd_and_adam_updates_cuda_match_cpu) {
  const int64_t rows = 37, cols = 129, ld = 133;  // strided: the padding must not move
  const np::SgdParams sgds[] = {{0.1f, 0.0f, false, 0.0f}, {0.05f, 0.9f, false, 1e-4f}, {0.05f, 0.9f, true, 1e-3f}};
  const np::AdamParams adams[] = {{1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, false, 1 - 0.9f, 1 - 0.999f},
                                  {1e-2f, 0.8f, 0.99f, 1e-6f, 1e-2f, false, 1 - 0.8f * 0.8f, 1 - 0.99f * 0.99f},
                                  {1e-2f, 0.9f, 0.999f, 1e-8f, 1e-2f, true, 0.5f, 0.25f}};
  uint64_t seed = 90;
  auto compare = [&](const std::vector<float>& got, const std::vector<float>& want, const char* what, int variant) {
    bool ok = true;
    for (size_t i = 0; i < got.size(); ++i) ok = ok && near_rel(got[i], want[i], 2e-6, 1e-7);
    CHECK_MSG(ok, "%s variant %d differs", what, variant);
  };
  for (int vi = 0; vi < 3; ++vi) {
    nc::Stream s;
    std::vector<float> w = padded_block(rows, cols, ld, seed++), vel = padded_block(rows, cols, ld, seed++);
    const std::vector<float> g = padded_block(rows, cols, ld, seed++);
    nc::DeviceBuffer dw = nc::to_device(w, s), dv = nc::to_device(vel, s), dg = nc::to_device(g, s);
    nc::sgd_update_cuda(dw.as<float>(), dv.as<float>(), dg.as<float>(), rows, cols, ld, sgds[vi], s);
    nc::sgd_update_cuda(dw.as<float>(), dv.as<float>(), dg.as<float>(), rows, cols, ld, sgds[vi], s);  // twice: the velocity matters
    const auto gw = nc::to_host<float>(dw, w.size(), s), gv = nc::to_host<float>(dv, vel.size(), s);
    for (int step = 0; step < 2; ++step)
      for (int64_t r = 0; r < rows; ++r) np::sgd_update(&w[r * ld], &vel[r * ld], &g[r * ld], cols, sgds[vi]);
    compare(gw, w, "sgd weights", vi);
    compare(gv, vel, "sgd velocity", vi);
  }
  for (int vi = 0; vi < 3; ++vi) {
    nc::Stream s;
    std::vector<float> w = padded_block(rows, cols, ld, seed++), m = padded_block(rows, cols, ld, seed++);
    std::vector<float> v = abs_of(padded_block(rows, cols, ld, seed++));
    const std::vector<float> g = padded_block(rows, cols, ld, seed++);
    nc::DeviceBuffer dw = nc::to_device(w, s), dm = nc::to_device(m, s), dv = nc::to_device(v, s), dg = nc::to_device(g, s);
    nc::adam_update_cuda(dw.as<float>(), dm.as<float>(), dv.as<float>(), dg.as<float>(), rows, cols, ld, adams[vi], s);
    const auto gw = nc::to_host<float>(dw, w.size(), s), gm = nc::to_host<float>(dm, m.size(), s), gv = nc::to_host<float>(dv, v.size(), s);
    for (int64_t r = 0; r < rows; ++r) np::adam_update(&w[r * ld], &m[r * ld], &v[r * ld], &g[r * ld], cols, adams[vi]);
    compare(gw, w, "adam weights", vi);
    compare(gm, m, "adam m", vi);
    compare(gv, v, "adam v", vi);
  }
}

// A CUDA failure is an exception carrying the CUDA error string.
CUDA_TEST(cuda_errors_become_exceptions_with_the_cuda_message) {
  bool threw = false;
  try {
    nc::DeviceBuffer huge(size_t{1} << 50);  // 1 PiB
  } catch (const nc::CudaError& e) {
    threw = true;
    const std::string what = e.what();
    CHECK_MSG(what.find("out of memory") != std::string::npos && what.find("cudaMalloc") != std::string::npos,
              "message: %s", e.what());
  }
  CHECK(threw);
  // The context is still usable afterwards, and the next launch check does not
  // report the old error again.
  nc::Stream s;
  nc::DeviceBuffer w = nc::to_device(std::vector<float>{1.0f, 2.0f}, s), g = nc::to_device(std::vector<float>{1.0f, 1.0f}, s);
  nc::sgd_update_cuda(w.as<float>(), nullptr, g.as<float>(), 1, 2, 2, np::SgdParams{0.5f, 0.0f, false, 0.0f}, s);
  CHECK_EQ(nc::to_host<float>(w, 2, s)[1], 1.5f);
  // Sizes beyond the grid limits are refused before anything is launched.
  threw = false;
  try {
    nc::bias_activation_forward_cuda(w.as<float>(), 2, nullptr, np::Activation::kRelu, int64_t{1} << 40, 2, nullptr, nullptr, s);
  } catch (const std::length_error&) {
    threw = true;
  }
  CHECK(threw);
}

// Not a check: milliseconds for one layer's forward product, dense (gemm_f32_cuda
// and the tiled kernel) against CSR at a few densities, so a GPU run shows where
// the sparse kernel starts to pay.
CUDA_TEST(timing_report_dense_vs_csr_forward) {
#if defined(NP_CUDA_EMULATOR)
  std::printf("    not timed on the CUDA emulator: its timings say nothing about a GPU\n");
  return;
#endif
  nc::Stream s;
  const int64_t out = 2048, in = 2048, batch = 512;
  const std::vector<float> x = random_vector(in * batch, 3), wd = random_vector(out * in, 4);
  nc::DeviceBuffer dx = nc::to_device(x, s), dw = nc::to_device(wd, s), dy(out * batch * sizeof(float));
  auto time_ms = [&](auto&& fn) {
    fn();
    s.synchronize();
    const int reps = 20;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) fn();
    s.synchronize();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
  };
  const double flops = 2.0 * out * in * batch;
  const double t_gemm = time_ms([&] { nc::gemm_f32_cuda(Trans::kNo, Trans::kNo, out, batch, in, dw.as<float>(), in, dx.as<float>(), batch, 0.0f, dy.as<float>(), batch, s); });
  const double t_tiled = time_ms([&] { nc::gemm_f32_tiled_cuda(Trans::kNo, Trans::kNo, out, batch, in, dw.as<float>(), in, dx.as<float>(), batch, 0.0f, dy.as<float>(), batch, s); });
  std::printf("    %lldx%lld layer, batch %lld: gemm (%s) %.3f ms (%.0f GFLOP/s), tiled %.3f ms (%.0f GFLOP/s)\n",
              (long long)out, (long long)in, (long long)batch, nc::gemm_backend().c_str(), t_gemm, flops / t_gemm / 1e6,
              t_tiled, flops / t_tiled / 1e6);
  for (double density : {0.01, 0.05, 0.1, 0.2, 0.5}) {
    Csr w = random_csr(out, in, density, 5);
    nc::DeviceBuffer ip = nc::to_device(w.indptr, s), ix = nc::to_device(w.indices, s), iv = nc::to_device(w.values, s);
    const np::CsrView v{out, in, ip.as<int64_t>(), ix.as<int32_t>(), iv.as<float>()};
    const double t = time_ms([&] { nc::spmm_f32_csr_cuda(v, dx.as<float>(), batch, 0.0f, dy.as<float>(), batch, batch, s); });
    std::printf("    csr density %.2f: spmm %.3f ms (%.2fx the gemm time)\n", density, t, t / t_gemm);
  }
}

// Host-only: probe() never throws and explains a missing device.
TEST(probe_reports_devices_or_why_not) {
  const nc::Probe p = nc::probe();
  CHECK(p.runtime_version >= 11000);
  if (p.error_code != 0) {
    CHECK(!p.error.empty());
    CHECK(!p.error_name.empty());
    CHECK_EQ(p.device_count, 0);
    std::printf("    no device: %s (%s), driver version %d\n", p.error.c_str(), p.error_name.c_str(), p.driver_version);
  } else {
    CHECK_EQ(nc::devices().size(), static_cast<size_t>(p.device_count));
  }
}
