// Restructuring the device model without a host round trip (issue 6, part 3).
//
// A structural operation whose decisions depend only on the structure (compact,
// growth with 'zero' or 'random' initialisation, a format change) is decided
// and applied on the host, whose copy of the numbers may be stale while the
// device trains. The device then rebuilds each layer to the host's new
// structure from its own numbers: every stored weight of the new layer is
//   - an old stored weight, moved with its optimizer slots (same unit ids, same
//     input ids: the unit's row and the input's column survived);
//   - a fresh value the host made: a position in a new unit's row or in a new
//     input's column (growth), which the host's arrays hold exactly;
//   - zero in every slot: a pruned position (mask), a dead unit's row, or a
//     position the old layer did not store.
// A moved weight may be scaled by its column's factor: net2wider splits a
// source unit's outgoing weights between it and its copies, so the source's
// column keeps a share of its value and first moment, and the square of that
// share of its second moment (np::Model::grow_units does the same on the host).
// A new position may also copy an old one's value (value only, slots from
// zero): net2wider's new unit copies its source's row and bias, and its new
// outgoing column takes a share of the source's column (row_copy, col_copy),
// so the device needs none of the host's values for it. A restarted layer
// (sparsify) keeps each moved weight's value times one factor, slots from zero.
// That rule is here, shared by the CUDA kernel (remap.cu) and the CPU tests
// (native/tests/test_remap.cpp check it against np::Model's own operations).
// Its positions are compact (dense: r * inputs + c; CSR: the entry); a dense
// layer on the device may keep spare capacity (a row pitch, `stride`, above
// its inputs, and rows beyond its units), and remap_old_addr / remap_new_addr
// place a position in such a buffer.
#pragma once

#include <cstdint>

#include "cuda/host_device.h"

namespace np::cuda {

// Where a new stored weight comes from, besides an old position (>= 0).
constexpr int64_t kRemapFresh = -1;  // the host's value
constexpr int64_t kRemapZero = -2;   // zero in every slot

struct RemapView {
  // The old layer, as the device holds it (dense: units x inputs, no stride).
  int64_t old_units = 0, old_inputs = 0;
  bool old_csr = false;
  const int64_t* old_indptr = nullptr;  // CSR
  const int32_t* old_indices = nullptr;
  // The new layer's structure, from the host.
  int64_t units = 0, inputs = 0;
  bool csr = false;
  const int64_t* indptr = nullptr;  // CSR
  const int32_t* indices = nullptr;
  const uint8_t* mask = nullptr;   // dense; nullptr: nothing pruned
  const uint8_t* alive = nullptr;  // nullptr: every unit alive
  // row_source[r]: the old row of new unit r, or -1 for a new unit.
  // col_source[c]: the old column of new input c, or -1; nullptr: unchanged.
  const int32_t* row_source = nullptr;
  const int32_t* col_source = nullptr;
  // col_scale[c]: the factor of a moved weight in new column c; nullptr: 1.
  const float* col_scale = nullptr;
  // row_copy[r] (nullptr: none): for a new unit r (row_source -1), the old
  // row whose weights and bias it copies, value only; -1: the host's values.
  const int32_t* row_copy = nullptr;
  // col_copy[c] (nullptr: none): for a new input c (col_source -1), the old
  // column whose values times col_copy_scale[c] it takes, value only; -1: the host's.
  const int32_t* col_copy = nullptr;
  const float* col_copy_scale = nullptr;
  // Every moved weight keeps value x restart_scale and starts its slots at
  // zero (sparsify rescales the weights it keeps and restarts their slots).
  bool restart = false;
  float restart_scale = 1.0f;
  // Dense row pitches of the old and the new weight buffers, in floats; 0:
  // the inputs (the buffer has no spare columns).
  int64_t old_stride = 0, stride = 0;

  NP_HOST_DEVICE int64_t count() const { return csr ? indptr[units] : units * inputs; }
};

// Where compact position pos of the old layer lies in its buffer.
NP_HOST_DEVICE inline int64_t remap_old_addr(const RemapView& v, int64_t pos) {
  if (v.old_csr || v.old_stride == 0 || v.old_stride == v.old_inputs) return pos;
  return (pos / v.old_inputs) * v.old_stride + pos % v.old_inputs;
}

// Where the new layer's stored position k (row r, column c) lies in its buffer.
NP_HOST_DEVICE inline int64_t remap_new_addr(const RemapView& v, int64_t k, int64_t r, int64_t c) {
  return v.csr || v.stride == 0 ? k : r * v.stride + c;
}

// The row of stored position k: k / inputs, or the CSR row whose range holds k.
NP_HOST_DEVICE inline int64_t remap_row_of(const RemapView& v, int64_t k) {
  if (!v.csr) return k / v.inputs;
  int64_t lo = 0, hi = v.units;  // last row with indptr[row] <= k (rows may be empty)
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (v.indptr[mid] <= k) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

NP_HOST_DEVICE inline int64_t remap_col_of(const RemapView& v, int64_t k, int64_t row) {
  return v.csr ? v.indices[k] : k - row * v.inputs;
}

// The source of the new layer's stored position k (row r, column c): an old
// stored position, kRemapFresh or kRemapZero. A fresh position that is pruned
// or belongs to a dead unit is zero, as the host's own value there is.
// col (optional) receives c.
// The old stored position of (old_r, old_c), or kRemapZero where the old layer did not store it.
NP_HOST_DEVICE inline int64_t remap_old_position(const RemapView& v, int64_t old_r, int64_t old_c) {
  if (!v.old_csr) return old_r * v.old_inputs + old_c;
  // Column indices are sorted within a row: binary search the old row.
  int64_t lo = v.old_indptr[old_r], hi = v.old_indptr[old_r + 1];
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (v.old_indices[mid] < old_c) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo < v.old_indptr[old_r + 1] && v.old_indices[lo] == old_c ? lo : kRemapZero;
}

NP_HOST_DEVICE inline int64_t remap_weight_source(const RemapView& v, int64_t k, int64_t* col = nullptr, int64_t* row = nullptr) {
  const int64_t r = remap_row_of(v, k);
  const int64_t c = remap_col_of(v, k, r);
  if (col) *col = c;
  if (row) *row = r;
  if (v.alive && !v.alive[r]) return kRemapZero;
  if (!v.csr && v.mask && !v.mask[k]) return kRemapZero;
  const int64_t old_r = v.row_source[r];
  const int64_t old_c = v.col_source ? v.col_source[c] : c;
  if (old_r < 0 || old_c < 0) return kRemapFresh;
  return remap_old_position(v, old_r, old_c);
}

// Where a fresh position (r, c) (remap_weight_source gave kRemapFresh) copies
// its value from: an old stored position (value only, times *scale; every
// other slot zero), kRemapZero (the copied position was not stored), or
// kRemapFresh (no copy: the host's value). A new unit's row copies its
// row_copy's row at the same old inputs; an old unit's new input copies
// col_copy's column, times col_copy_scale.
NP_HOST_DEVICE inline int64_t remap_weight_copy(const RemapView& v, int64_t r, int64_t c, float* scale) {
  *scale = 1.0f;
  const int64_t old_r = v.row_source[r];
  const int64_t old_c = v.col_source ? v.col_source[c] : c;
  if (old_r < 0 && old_c >= 0 && v.row_copy && v.row_copy[r] >= 0) return remap_old_position(v, v.row_copy[r], old_c);
  if (old_r >= 0 && old_c < 0 && v.col_copy && v.col_copy[c] >= 0) {
    if (v.col_copy_scale) *scale = v.col_copy_scale[c];
    return remap_old_position(v, old_r, v.col_copy[c]);
  }
  return kRemapFresh;
}

// What slot `slot` of a weight moved into column c is multiplied by: the
// column's factor for the value (slot 0) and the first moment (1), its square
// for the second moment (2, Adam's). Products in float, as the host's.
NP_HOST_DEVICE inline float remap_slot_scale(const RemapView& v, int64_t c, int slot) {
  if (!v.col_scale) return 1.0f;
  const float s = v.col_scale[c];
  return slot == 2 ? s * s : s;
}

// Slot `slot` of a weight moved into column c from an old one whose slot holds `from`.
NP_HOST_DEVICE inline float remap_moved_slot(const RemapView& v, int64_t c, int slot, float from) {
  if (v.restart) return slot == 0 ? from * v.restart_scale : 0.0f;
  return v.col_scale ? from * remap_slot_scale(v, c, slot) : from;
}

// The source of new unit r's bias: its old unit, kRemapFresh (new) or kRemapZero (dead).
NP_HOST_DEVICE inline int64_t remap_bias_source(const RemapView& v, int64_t r) {
  if (v.alive && !v.alive[r]) return kRemapZero;
  return v.row_source[r] >= 0 ? v.row_source[r] : kRemapFresh;
}

// The old unit whose bias value a fresh bias copies (row_copy), or kRemapFresh (the host's).
NP_HOST_DEVICE inline int64_t remap_bias_copy(const RemapView& v, int64_t r) {
  return v.row_source[r] < 0 && v.row_copy && v.row_copy[r] >= 0 ? v.row_copy[r] : kRemapFresh;
}

}  // namespace np::cuda
