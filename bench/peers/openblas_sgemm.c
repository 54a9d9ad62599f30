/* OpenBLAS sgemm with the flags and output of neuroplastic_native_bench, so
 * bench/gemm.ts can run the two interleaved and divide their medians.
 *
 *   cc -O2 bench/peers/openblas_sgemm.c -o build/bench/openblas_sgemm -lopenblas
 *   openblas_sgemm --shapes 128x784x1024 --trans nn,tn,nt --threads 1,2 [--reps N]
 *                  [--min-ms MS] [--json]
 *
 * A shape is MxNxK: C[M x N] = op(A)[M x K] * op(B)[K x N], row-major, beta = 0.
 * Run it with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (BENCH.md), or
 * OpenBLAS uses its Haswell kernels on this AVX-512 machine. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Declared here too: the cblas.h alternative may belong to another BLAS. */
void openblas_set_num_threads(int num_threads);
char* openblas_get_corename(void);
char* openblas_get_config(void);

#define MAX_ITEMS 64

static int split(char* s, char** out) {
  int n = 0;
  for (char* tok = strtok(s, ","); tok != NULL && n < MAX_ITEMS; tok = strtok(NULL, ",")) out[n++] = tok;
  return n;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_double(const void* x, const void* y) {
  double a = *(const double*)x, b = *(const double*)y;
  return a < b ? -1 : a > b;
}

static uint64_t g_seed = 7;
static float rnd(void) {
  g_seed = g_seed * 6364136223846793005ULL + 1442695040888963407ULL;
  return (float)((g_seed >> 40) & 0xFFFFFF) / 8388608.0f - 1.0f;
}

/* Largest relative error over 64 sampled entries of C, recomputed naively. */
static double sampled_error(int ta, int tb, long m, long n, long k, const float* a, long lda,
                            const float* b, long ldb, const float* c, long ldc) {
  double worst = 0.0;
  uint64_t s = 12345;
  for (int t = 0; t < 64; ++t) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    long i = (long)((s >> 33) % (uint64_t)m), j = (long)((s >> 13) % (uint64_t)n);
    double want = 0.0, mag = 0.0;
    for (long p = 0; p < k; ++p) {
      double prod = (double)(ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
      want += prod;
      mag += fabs(prod);
    }
    double err = fabs(c[i * ldc + j] - want) / (1.0 + mag);
    if (err > worst) worst = err;
  }
  return worst;
}

int main(int argc, char** argv) {
  char shapes_buf[4096] = "128x784x1024", trans_buf[256] = "nn", threads_buf[256] = "1";
  int reps = 11, json = 0;
  double min_ms = 200.0;
  for (int i = 1; i < argc; ++i) {
    const char* arg = argv[i];
    const char* val = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(arg, "--json") == 0) { json = 1; continue; }
    if (val == NULL) { fprintf(stderr, "openblas_sgemm: %s needs a value\n", arg); return 2; }
    ++i;
    if (strcmp(arg, "--shapes") == 0) snprintf(shapes_buf, sizeof shapes_buf, "%s", val);
    else if (strcmp(arg, "--trans") == 0) snprintf(trans_buf, sizeof trans_buf, "%s", val);
    else if (strcmp(arg, "--threads") == 0) snprintf(threads_buf, sizeof threads_buf, "%s", val);
    else if (strcmp(arg, "--reps") == 0) reps = atoi(val);
    else if (strcmp(arg, "--min-ms") == 0) min_ms = atof(val);
    else if (strcmp(arg, "--levels") == 0 || strcmp(arg, "--blocking") == 0) { /* ours only */ }
    else { fprintf(stderr, "openblas_sgemm: unknown argument %s\n", arg); return 2; }
  }
  char *shapes[MAX_ITEMS], *trans[MAX_ITEMS], *threads[MAX_ITEMS];
  int n_shapes = split(shapes_buf, shapes), n_trans = split(trans_buf, trans), n_threads = split(threads_buf, threads);
  const char* core = openblas_get_corename();
  if (!json) printf("OpenBLAS %s, core %s\n", openblas_get_config(), core);
  int failures = 0;
  for (int ti = 0; ti < n_threads; ++ti) {
    int nt = atoi(threads[ti]);
    if (nt < 1) { fprintf(stderr, "openblas_sgemm: bad thread count %s\n", threads[ti]); return 2; }
    openblas_set_num_threads(nt);
    for (int si = 0; si < n_shapes; ++si) {
      long m, n, k;
      if (sscanf(shapes[si], "%ldx%ldx%ld", &m, &n, &k) != 3 || m <= 0 || n <= 0 || k <= 0) {
        fprintf(stderr, "openblas_sgemm: shape %s is not MxNxK\n", shapes[si]);
        return 2;
      }
      for (int xi = 0; xi < n_trans; ++xi) {
        int ta = trans[xi][0] == 't', tb = trans[xi][1] == 't';
        long lda = ta ? m : k, ldb = tb ? k : n, ldc = n;
        float* a = aligned_alloc(64, ((size_t)(m * k) * 4 + 63) / 64 * 64);
        float* b = aligned_alloc(64, ((size_t)(k * n) * 4 + 63) / 64 * 64);
        float* c = aligned_alloc(64, ((size_t)(m * n) * 4 + 63) / 64 * 64);
        g_seed = 7;  /* the same matrices as our bench */
        for (long i = 0; i < m * k; ++i) a[i] = rnd();
        for (long i = 0; i < k * n; ++i) b[i] = rnd();
#define RUN() cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, \
                          (int)m, (int)n, (int)k, 1.0f, a, (int)lda, b, (int)ldb, 0.0f, c, (int)ldc)
        RUN();
        double err = sampled_error(ta, tb, m, n, k, a, lda, b, ldb, c, ldc);
        if (!(err <= 1e-4)) {
          fprintf(stderr, "WRONG RESULT %s %s: relative error %g\n", shapes[si], trans[xi], err);
          ++failures;
        }
        RUN();
        int cap = reps > 16 ? reps : 16, count = 0;
        double* ms = malloc(sizeof(double) * cap);
        double total = 0.0;
        while ((count < reps || total < min_ms) && count < 10000) {
          double t0 = now_ms();
          RUN();
          double dt = now_ms() - t0;
          if (count == cap) ms = realloc(ms, sizeof(double) * (cap *= 2));
          ms[count++] = dt;
          total += dt;
        }
        qsort(ms, count, sizeof(double), cmp_double);
        double median = ms[count / 2], gflops = 2.0 * m * n * k / (median * 1e6);
        if (json)
          printf("{\"impl\":\"openblas\",\"shape\":\"%s\",\"m\":%ld,\"n\":%ld,\"k\":%ld,\"trans\":\"%s\","
                 "\"threads\":%d,\"simd\":\"%s\",\"median_ms\":%.6f,\"gflops\":%.3f,\"reps\":%d,\"rel_err\":%.3g}\n",
                 shapes[si], m, n, k, trans[xi], nt, core, median, gflops, count, err);
        else
          printf("%-16s %-5s %-10s %-7d %10.3f %10.1f %10.2g\n", shapes[si], trans[xi], core, nt, median, gflops, err);
        fflush(stdout);
        free(ms);
        free(a);
        free(b);
        free(c);
      }
    }
  }
  return failures == 0 ? 0 : 1;
}
