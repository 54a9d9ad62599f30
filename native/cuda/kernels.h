// The GPU kernels, seen from plain C++ (no CUDA header): every pointer argument
// is DEVICE memory unless it says host; every call is queued on `stream` and
// returns without waiting, except where a result comes back to the host.
// Layouts and formulas are the CPU kernels' (native/kernels/*.h), which are the
// references the tests compare against:
//   activations feature-major (features x batch, row stride ld >= batch),
//   weights row-major with a row stride, CSR = int64 row pointers, int32
//   column indices sorted per row, float32 values (np::CsrView, with device
//   pointers here); beta == 0 overwrites (old contents, even NaN, ignored).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cuda/host_device.h"
#include "cuda/remap.h"
#include "cuda/runtime.h"
#include "kernels/activations.h"
#include "kernels/gemm.h"
#include "kernels/optimizers.h"
#include "kernels/sparse.h"
#include "model/magnitude_drops.h"

namespace np::cuda {

// ---- sparse (sparse.cu) -------------------------------------------------------

// W^T in compressed-column form, pointing into W's values, so W^T * dY is a
// row-wise product like W * X (deterministic: no atomics) and W keeps one copy
// of its values. Depends only on W's structure: rebuild it after a structural
// change, not after an optimizer step.
struct CsrTransposeView {
  int64_t rows = 0;                   // of W
  int64_t cols = 0;                   // of W
  const int64_t* col_ptr = nullptr;   // cols + 1 entries
  const int32_t* row_idx = nullptr;   // nnz entries, sorted per column
  const int64_t* value_pos = nullptr; // nnz entries: index into W's values
};

// The host-side build of the transpose structure from W's host indptr/indices (O(nnz + cols)).
struct CsrTranspose {
  std::vector<int64_t> col_ptr;
  std::vector<int32_t> row_idx;
  std::vector<int64_t> value_pos;
};
CsrTranspose csr_transpose_host(const CsrView& w_host);

// The same structure built on the device from W's device indptr/indices (the
// host reference above is what the tests compare with); nnz is W's, known on
// the host (W's view holds device pointers). col_ptr holds cols + 1 entries,
// row_idx and value_pos nnz each; `scratch` is resized to a table of up to
// 2^22 int64 cells (cols x row blocks). A stable counting sort on the column:
// each row block counts and then places its entries in row order, so the
// result is the host's exactly, with no atomics and no sort. Indices must be
// in [0, cols) (the caller checked the pattern).
void csr_transpose_cuda(const CsrView& w, int64_t nnz, int64_t* col_ptr, int32_t* row_idx, int64_t* value_pos,
                        DeviceBuffer& scratch, Stream& stream);

// Which kernel computes a CSR product (sparse.cu):
//   kRows  a group of 32, 64 or 128 threads per output row, each reading
//          single floats of four batch columns; every thread loads each stored
//          weight (index and value) itself;
//   kWarp  a warp per output row and up to 1024 batch columns, each lane
//          reading 16-byte vectors (float4) of X; the row's stored weights are
//          loaded 32 at a time, one per lane, and passed round by shuffles.
//   kStaged a block of 8 warps per 64 output rows and 128 batch columns; X
//          comes through shared memory, 64 input rows at a time, so each of
//          its rows is read from L2 once per 64 output rows instead of once per
//          stored weight; each warp walks its rows' weights in that column
//          range (read 32 at a time and shuffled round, kept across stages)
//          and reads X from the tile. Worth its whole-tile loads where a row
//          meets several weights per 64 columns.
//   kWarp and kStaged need batch, ldx and ldy multiples of 4 and 16-byte aligned
//   X and Y; elsewhere kRows runs.
//   kAuto  from batch 128 where they can run: kStaged at density >= 1/16
//          (when the caller says nnz, and the batch is within its grid), else
//          kWarp; below batch 128 kRows. The
//          environment variable NEUROPLASTIC_CUDA_SPMM=rows|warp|staged overrides it.
// All three add the same products in the same order (stored weights
// ascending, one multiply-add each), so their results are equal to the bit:
// the choice is speed only. Which is fastest on which GPU, and so the
// thresholds above, is what `npm run bench -- --device cuda` measures (each
// kernel, beside cuSPARSE).
enum class SpmmKernel { kAuto, kRows, kWarp, kStaged };
// The kernel a product with these operands runs when `asked` is requested;
// density: stored / (rows x cols) of W, or < 0 when the caller does not know it.
SpmmKernel spmm_kernel_for(SpmmKernel asked, const float* x, int64_t ldx, const float* y, int64_t ldy, int64_t batch,
                           double density = -1.0);

//   forward          Y[rows x B]  = beta*Y  + W * X          X: cols x B
//   backward (data)  dX[cols x B] = beta*dX + W^T * dY       dY: rows x B
//   weight gradient  dW[k] = beta*dW[k] + dY[row(k), :] . X[col(k), :]
// nnz: W's stored weights, known on the host (w's arrays are the device's),
// for kAuto's choice; -1 when unknown (kAuto then never takes kStaged).
void spmm_f32_csr_cuda(const CsrView& w, const float* x, int64_t ldx, float beta, float* y, int64_t ldy,
                       int64_t batch, Stream& stream, SpmmKernel kernel = SpmmKernel::kAuto, int64_t nnz = -1);
void spmm_t_f32_csr_cuda(const CsrView& w, const CsrTransposeView& wt, const float* dy, int64_t lddy, float beta,
                         float* dx, int64_t lddx, int64_t batch, Stream& stream, SpmmKernel kernel = SpmmKernel::kAuto,
                         int64_t nnz = -1);
// SDDMM by one of two kernels (sparse.cu): float4 reads with dY's row held in
// registers where sddmm_takes_vectors says (batch 128..1024, batch and both
// strides multiples of 4, 16-byte aligned dY and X), else scalar reads. They
// sum each dot product in different orders: equal to float rounding.
void sddmm_f32_csr_cuda(const CsrView& pattern, const float* dy, int64_t lddy, const float* x, int64_t ldx,
                        int64_t batch, float beta, float* grad_values, Stream& stream);
bool sddmm_takes_vectors(const float* dy, int64_t lddy, const float* x, int64_t ldx, int64_t batch);

// In place, one block: v[i] = v[0] + ... + v[i] for i < n (device memory).
void inclusive_scan_i64_cuda(int64_t* v, int64_t n, Stream& stream);

// ---- magnitude decisions (magnitude.cu) ------------------------------------------

// A layer's weights as a magnitude decision sees them: `count` values in
// storage order (dense: units x inputs, no stride; CSR: its values), and
// mask (nullptr: all stored) saying which positions are stored. Magnitudes are
// compared as bit patterns, |w| = bits(w) & 0x7fffffff (the CPU's order for
// every non-NaN weight).
struct MagnitudeView {
  const float* values = nullptr;
  const uint8_t* mask = nullptr;
  int64_t count = 0;
  // Rank from the largest |w| down (RigL's gradient choice): the kernels
  // below then see the key 0x7fffffff - |w| bits, so "smallest key first"
  // and ties in storage order give the largest magnitudes, ties by position.
  bool largest = false;
  // Dense weights with spare capacity: position i = r * cols + c lies at
  // values[r * stride + c] (stride 0 or == cols: contiguous).
  int64_t cols = 0, stride = 0;
};
// One pass of a radix select: hist[d] += stored weights whose |w| bits match
// `prefix` on the `known` bits and have digit d at (shift, width <= 11). hist
// (device, 2^width entries) is not cleared: several layers add to one.
void magnitude_histogram_cuda(const MagnitudeView& w, uint32_t prefix, uint32_t known, int shift, int width,
                              unsigned long long* hist, Stream& stream);
// counts[0] += stored weights with |w| below the cut, counts[1] += at it (device, not cleared).
void magnitude_census_cuda(const MagnitudeView& w, uint32_t threshold_bits, unsigned long long* counts, Stream& stream);
// bits (device, ceil(count / 32) words, overwritten): position i set when
// its weight is stored and |w| is below the cut, or at it and among the first
// ties_to_drop such in storage order (np::DropBits). scratch grows as needed.
void magnitude_drop_bits_cuda(const MagnitudeView& w, uint32_t threshold_bits, int64_t ties_to_drop, uint32_t* bits,
                              DeviceBuffer& scratch, Stream& stream);

// Driven from the host (each waits for the stream):
// the k-th smallest key (1 <= k <= stored) over a group of views, as the
// host's kth_smallest_magnitude (radix_select.h): its bits, and how many
// stored keys are strictly below it (three histogram passes, read back);
struct MagnitudeCut {
  uint32_t threshold = 0;
  int64_t below = 0;
};
MagnitudeCut magnitude_select_cuda(const std::vector<MagnitudeView>& group, int64_t k, Stream& stream);
// magnitude_drop_bits_cuda's bits, copied to the host;
np::DropBits magnitude_drop_bits_host(const MagnitudeView& v, uint32_t threshold_bits, int64_t ties_to_drop,
                                      DeviceBuffer& scratch, Stream& stream);
// the bits of the k (0 <= k <= stored) smallest keys of one view, ties in storage order.
np::DropBits magnitude_smallest_cuda(const MagnitudeView& v, int64_t k, DeviceBuffer& scratch, Stream& stream);

// RigL's candidates (np::Model::regrow's open positions): open[r * inputs + c]
// = 1 where unit r is alive (alive_rows nullptr: all), input c is open (its
// unit in the layer below alive; alive_inputs nullptr: all) and nothing is
// stored (dense: mask[p] == 0, and no mask means every position is stored;
// CSR: no entry (r, c) in indptr / indices). open: device, units x inputs.
void growth_candidates_cuda(uint8_t* open, int64_t units, int64_t inputs, const uint8_t* alive_rows,
                            const uint8_t* alive_inputs, const uint8_t* mask, const int64_t* indptr,
                            const int32_t* indices, Stream& stream);

// ---- neuron scores (neuron_scores.cu) ---------------------------------------------

// A layer's stored weights for per-unit sums: dense (indptr nullptr) row-major
// units x inputs, every position (pruned ones hold zero); or CSR values with
// row pointers, and W^T's column pointers and value positions (CsrTransposeView).
struct NormWeights {
  int64_t units = 0, inputs = 0;
  int64_t stride = 0;  // dense: the row pitch (>= inputs; 0: inputs)
  const float* values = nullptr;
  const int64_t* indptr = nullptr;
  const int64_t* t_col_ptr = nullptr;
  const int64_t* t_value_pos = nullptr;
};
// scores[j] (device, layer.units doubles) = l1: sum |w| over unit j's incoming
// row of `layer` and outgoing column j of `next`; l2: sqrt of the sum of w^2.
// The CPU model's neuron_scores to the bit (same order of double additions).
void neuron_norm_scores_cuda(const NormWeights& layer, const NormWeights& next, bool l1, double* scores, Stream& stream);
// out[j] (device, next.inputs doubles) = the mean |w| over the stored rows of
// column j of `next` (dense: mask, nullptr for all; CSR: its entries), 0 for
// an empty column: continual backprop's utility term, the CPU's
// mean_abs_outgoing to the bit (same order of double additions).
void mean_abs_columns_cuda(const NormWeights& next, const uint8_t* mask, double* out, Stream& stream);
// partials (device, sum_squares_partials() doubles): each one a share of the
// sum of values[i]^2 in double, i < count (GradMax's norm of the next layer's
// weights); their sum in order is the total, deterministic but rounded in
// another order than the CPU's running sum.
int sum_squares_partials();
void sum_squares_cuda(const float* values, int64_t count, double* partials, Stream& stream);

// ---- restructuring (remap.cu) ----------------------------------------------------

// One parameter group's slots (value first, then optimizer moments) before and
// after a structural change, and the host's values for fresh positions
// (nullptr where the layer has none).
struct RemapSlots {
  int count = 0;  // slots in use, 1..3
  const float* from[3] = {nullptr, nullptr, nullptr};
  float* to[3] = {nullptr, nullptr, nullptr};
  const float* fresh[3] = {nullptr, nullptr, nullptr};
};
// to[s][k] for every new stored position k < stored, by remap.h's rule: a
// moved slot from[s][source] (remap_weight_source, times remap_moved_slot's
// factor: a column's share, or a restart's factor with the moments zeroed), a
// copied value (remap_weight_copy: value only, moments zero), the host's
// fresh[s][k], or 0 (the view's pointers are device memory, `stored` its
// count(), read on the host).
// Dense positions land at r * stride + c (remap_new_addr), old ones are read
// at remap_old_addr.
void remap_weights_cuda(const RemapView& v, int64_t stored, const RemapSlots& slots, Stream& stream);
// The same for the bias and its slots, by remap_bias_source, for first <= r
// < v.units (the host's biases, slots.fresh, then hold units first.. only).
void remap_bias_cuda(const RemapView& v, const RemapSlots& slots, Stream& stream, int64_t first = 0);
// Growth into reserved capacity, in place (slots.from == slots.to, the
// layer's own buffers; v.old_stride == v.stride, v.units <= its row capacity):
// the rule for the positions a dense layer gained (columns old_inputs.. of its
// old rows, then rows old_units..), nothing else touched: O(new positions).
// slots.fresh holds the host's values of those positions only, in that order.
void remap_append_cuda(const RemapView& v, int64_t old_units, int64_t old_inputs, const RemapSlots& slots, Stream& stream);
// Then, with v.col_scale, the old rows' entries in `columns` (device,
// `splits` of them: net2wider's sources) times their column's factors, in
// place, after remap_append_cuda, whose copies read the values before the split.
void remap_scale_columns_cuda(const RemapView& v, int64_t old_units, const int32_t* columns, int64_t splits,
                              const RemapSlots& slots, Stream& stream);
// A bias compensation for units of the layer below whose output changed:
// for every unit r with a source (row_source[r] >= 0), bias[r] +=
// float(w(r, cols[i]) * means[i]) for i in order, in float, as the CPU adds
// them (a CSR position not stored counts as 0).
// - Continual backprop (new_weights false): w is the layer's weight before
//   the change (v's old_* structure, the unit's old row; cols are old
//   inputs, ascending, as the CPU's reinit_units adds them) and means[i] the
//   reinitialised unit's mean output (the host's, from the statistics).
// - GradMax (new_weights true): w is the layer's new weight (v's new
//   structure, row r; cols are the new units' inputs) and means[i] minus the
//   new unit's constant output act(0): its near-zero incoming weights make it
//   emit that, which the bias takes out so the function is unchanged.
void compensate_bias_cuda(float* bias, const RemapView& v, const float* weight, bool new_weights, const int32_t* cols,
                          const double* means, int64_t count, Stream& stream);
// Per-unit doubles (running statistics): to[r] = from[row_source[r]], or
// fresh[r] (host memory copied before, device here) for a new unit.
void remap_rows_f64_cuda(double* to, const double* from, const double* fresh, const int32_t* row_source, int64_t units,
                         Stream& stream);

// ---- dense products (gemm.cu) -------------------------------------------------

// C[M x N] = beta*C + op(A) op(B), row-major, the CPU gemm_f32's contract. Runs
// cuBLAS when it was found at run time (and NEUROPLASTIC_CUBLAS is not 0), else
// gemm_f32_tiled_cuda.
void gemm_f32_cuda(Trans trans_a, Trans trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                   const float* b, int64_t ldb, float beta, float* c, int64_t ldc, Stream& stream);
// Our own kernel: 64x64 output tiles, 16-deep k slices in shared memory, 4x4 per thread.
void gemm_f32_tiled_cuda(Trans trans_a, Trans trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                         const float* b, int64_t ldb, float beta, float* c, int64_t ldc, Stream& stream);
// Which one gemm_f32_cuda runs: "cublas (libcublas.so.12)" or "tiled (libcublas not found: ...)".
std::string gemm_backend();

// ---- activations (elementwise.cu) -----------------------------------------------

// y[r, :] = act(y[r, :] + bias[r]) for r < rows; bias may be nullptr. Optional
// per-row sums of |y| and y (nullptr: not wanted), as the CPU kernel.
void bias_activation_forward_cuda(float* y, int64_t ld, const float* bias, Activation act, int64_t rows,
                                  int64_t batch, float* row_abs_sum, float* row_sum, Stream& stream);
// dz = dy * act'(y) in place on dy, from the activation's output y. Optional
// per-row sums of y*dy (before the derivative) and of dz (the bias gradient).
void activation_backward_cuda(float* dy, const float* y, int64_t ld, Activation act, int64_t rows, int64_t batch,
                              float* row_y_dot_dy, float* row_dz_sum, Stream& stream);

// The first training step whose batch loss was NaN or infinite (step -1:
// none yet) and that loss. Set on the device by accumulate_totals_cuda; the
// optimizer kernels given it change nothing once it is set, so the weights
// stay those before that step (the CPU model's rule) without a sync per step.
struct NonFiniteStep {
  int64_t step = -1;
  double loss = 0.0;
};

// ---- optimizers (elementwise.cu) ------------------------------------------------

// The CPU sgd_update / adam_update on a rows x cols block with row stride ld
// (padding never touched); rows = 1, cols = count for a contiguous slot.
// halt (device, may be nullptr): nothing is updated once halt->step >= 0.
void sgd_update_cuda(float* value, float* velocity, const float* grad, int64_t rows, int64_t cols, int64_t ld,
                     const SgdParams& p, Stream& stream, const NonFiniteStep* halt = nullptr);
void adam_update_cuda(float* value, float* m, float* v, const float* grad, int64_t rows, int64_t cols,
                      int64_t ld, const AdamParams& p, Stream& stream, const NonFiniteStep* halt = nullptr);

// ---- losses (losses.cu) -----------------------------------------------------------

// The sum of per-sample losses and the argmax hits over a batch, left on the
// device so a training loop reads them back once per epoch, not per batch.
struct LossTotals {
  double loss = 0.0;
  int64_t correct = 0;
};

// Fused softmax + cross-entropy on feature-major logits (outputs x batch): grad
// (may be nullptr) = (softmax - target) / batch, as the CPU kernels. Exactly
// one of labels (int32 per column) and targets (outputs x batch, same ld) is
// given. totals (device) is overwritten, deterministically (fixed reduction
// order). workspace is grown as needed and may be reused across calls.
void softmax_cross_entropy_cuda(float* grad, LossTotals* totals, const float* logits, int64_t ld,
                                const int32_t* labels, const float* targets, int64_t outputs, int64_t batch,
                                DeviceBuffer& workspace, Stream& stream);

// Mean squared error on feature-major outputs: grad (may be nullptr) =
// 2 (y - t) / (batch * outputs), loss per sample = mean over outputs of
// (y - t)^2, hits = argmax(y) == argmax(t): the CPU mean_squared_error.
void mean_squared_error_cuda(float* grad, LossTotals* totals, const float* y, int64_t ld, const float* targets,
                             int64_t outputs, int64_t batch, DeviceBuffer& workspace, Stream& stream);

// ---- the device-resident model's data movement (model_kernels.cu) ------------------

// Gather + transpose: dst[c * ldd + j] = src[row(j) * lds + c] for j < rows,
// c < cols, row(j) = index ? index[first + j] : first + j (index is device
// memory). Turns row-major samples (a batch picked by the epoch order) into
// the feature-major block the layers take, and a feature-major output block
// back into row-major samples (index nullptr, first 0).
void gather_transpose_f32_cuda(float* dst, int64_t ldd, const float* src, int64_t lds, const int32_t* index,
                               int64_t first, int64_t rows, int64_t cols, Stream& stream);
// dst[j] = src[index ? index[first + j] : first + j] for j < count (the batch's labels).
void gather_i32_cuda(int32_t* dst, const int32_t* src, const int32_t* index, int64_t first, int64_t count,
                     Stream& stream);
// total += batch (both device): the epoch's running loss and hits, read back
// once. With halt (device, training): a batch whose loss is not finite is not
// added and sets halt to `step` (the first such step only); once halt is set
// nothing is added.
void accumulate_totals_cuda(LossTotals* total, const LossTotals* batch, Stream& stream,
                            NonFiniteStep* halt = nullptr, int64_t step = 0);
// values[r * ld + c] = 0 where keep[r * cols + c] == 0 (keep row-major, no
// stride): pruned weights' gradients and dead units' bias gradients.
void mask_by_flags_cuda(float* values, int64_t ld, const uint8_t* keep, int64_t rows, int64_t cols, Stream& stream);

// Per-unit running statistics of a training step, the CPU's
// update_activation_stats / update_taylor_stats in double precision:
//   mean_abs[r] = d mean_abs[r] + (1 - d) abs_sum[r] / batch, mean likewise
//   taylor[r]   = d taylor[r] + (1 - d) |dot[r]|
// from the row sums the activation kernels give. Nothing changes once halt
// (may be nullptr) is set: the CPU model stops at the bad step too.
void update_unit_stats_cuda(double* mean_abs, double* mean, const float* abs_sum, const float* sum, int64_t units,
                            double decay, int64_t batch, const NonFiniteStep* halt, Stream& stream);
void update_taylor_stats_cuda(double* taylor, const float* dot, int64_t units, double decay, const NonFiniteStep* halt,
                              Stream& stream);

// Inverted dropout with a counter-based generator (no state on the device):
// element i is kept when dropout_uniform(seed, stream_id, i) >= rate, and
// then mask[i] = 1 / (1 - rate), else 0; dropped = in * mask. stream_id
// (e.g. step and layer) makes every step's mask independent and reproducible.
void dropout_forward_cuda(float* dropped, float* mask, const float* in, int64_t count, float rate, uint64_t seed,
                          uint64_t stream_id, Stream& stream);
// x[i] *= mask[i] (dropout's backward on the input gradient).
void multiply_cuda(float* x, const float* mask, int64_t count, Stream& stream);

// The dropout generator, shared by the kernel and the host reference the tests
// use: splitmix64 of (seed, stream, index), top 24 bits as a float in [0, 1).
NP_HOST_DEVICE inline float dropout_uniform(uint64_t seed, uint64_t stream_id, uint64_t index) {
  uint64_t z = seed ^ (stream_id * 0x9E3779B97F4A7C15ull) ^ (index * 0xD1B54A32D192ED03ull);
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

}  // namespace np::cuda
