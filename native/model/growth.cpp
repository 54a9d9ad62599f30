// Dropin (neurogenesis): inserting units into a live hidden layer in place.
// Dense weights grow into reserved capacity (DenseParam::grow), so adding one
// unit costs O(fan_in + fan_out) amortised; every slot grows with the weights
// and new entries start with zero optimizer state.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "kernels/gemm.h"
#include "model/csr_edit.h"
#include "model/errors.h"
#include "model/model.h"
#include "model/singular_vectors.h"

namespace np {

namespace {

const char* init_name(GrowInit init) {
  switch (init) {
    case GrowInit::kZero: return "zero";
    case GrowInit::kNet2Wider: return "net2wider";
    case GrowInit::kGradMax: return "gradmax";
    case GrowInit::kRandom: return "random";
  }
  return "unknown";
}

// Activation value at 0: what a unit with (near-)zero incoming weights emits.
float activation_at_zero(Activation a) { return a == Activation::kSigmoid ? 0.5f : 0.0f; }

// k distinct sorted values from [0, n), uniformly.
std::vector<int32_t> sample_sorted(Rng& rng, int64_t n, int64_t k) {
  std::vector<int32_t> all(n);
  std::iota(all.begin(), all.end(), 0);
  for (int64_t i = 0; i < k; ++i) std::swap(all[i], all[i + static_cast<int64_t>(rng.below(n - i))]);
  all.resize(k);
  std::sort(all.begin(), all.end());
  return all;
}

}  // namespace

void orthonormalise_columns(std::vector<double>& q, int64_t rows, int64_t k, Rng& rng) {
  for (int64_t j = 0; j < k; ++j) {
    double* qj = &q[j * rows];
    for (int64_t i = 0; i < j; ++i) {
      const double* qi = &q[i * rows];
      double d = 0.0;
      for (int64_t r = 0; r < rows; ++r) d += qi[r] * qj[r];
      for (int64_t r = 0; r < rows; ++r) qj[r] -= d * qi[r];
    }
    double norm = 0.0;
    for (int64_t r = 0; r < rows; ++r) norm += qj[r] * qj[r];
    norm = std::sqrt(norm);
    if (norm < 1e-30) {
      for (int64_t r = 0; r < rows; ++r) qj[r] = rng.normal();  // degenerate: restart this column
      --j;
      continue;
    }
    for (int64_t r = 0; r < rows; ++r) qj[r] /= norm;
  }
}

std::vector<double> top_left_singular_vectors(const std::vector<float>& m, int64_t rows, int64_t cols, int64_t k, Rng& rng) {
  std::vector<double> q(rows * k), t(cols * k);
  for (auto& v : q) v = rng.normal();
  for (int iter = 0; iter < 30; ++iter) {
    // t = m^T q ; q = m t, every column j in one pass over m (row-major)
    // each: t[c] and q[r] add their terms in the order of the plain
    // per-column loops (rows ascending, columns ascending), so the result is
    // theirs to the bit, without striding m or reading it once per column.
    std::fill(t.begin(), t.end(), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      const float* mr = &m[r * cols];
      for (int64_t j = 0; j < k; ++j) {
        double* tj = &t[j * cols];
        const double qr = q[j * rows + r];
        for (int64_t c = 0; c < cols; ++c) tj[c] += static_cast<double>(mr[c]) * qr;
      }
    }
    // Four columns side by side: four independent running sums instead of one
    // chain of dependent adds (each still adds in column order).
    for (int64_t r = 0; r < rows; ++r) {
      const float* mr = &m[r * cols];
      int64_t j = 0;
      for (; j + 4 <= k; j += 4) {
        const double *t0 = &t[j * cols], *t1 = t0 + cols, *t2 = t1 + cols, *t3 = t2 + cols;
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
        for (int64_t c = 0; c < cols; ++c) {
          const double v = static_cast<double>(mr[c]);
          s0 += v * t0[c];
          s1 += v * t1[c];
          s2 += v * t2[c];
          s3 += v * t3[c];
        }
        q[j * rows + r] = s0;
        q[(j + 1) * rows + r] = s1;
        q[(j + 2) * rows + r] = s2;
        q[(j + 3) * rows + r] = s3;
      }
      for (; j < k; ++j) {
        const double* tj = &t[j * cols];
        double s = 0.0;
        for (int64_t c = 0; c < cols; ++c) s += static_cast<double>(mr[c]) * tj[c];
        q[j * rows + r] = s;
      }
    }
    orthonormalise_columns(q, rows, k, rng);
  }
  return q;
}



// Draws the incoming weights of `unit` from the layer's init distribution
// (He-normal for relu, Glorot-uniform otherwise), times `scale`, at the
// positions the unit stores.
void Model::init_incoming_row(DenseLayer& layer, int64_t unit, float scale) {
  const double fan_in = static_cast<double>(layer.inputs), fan_out = static_cast<double>(layer.units);
  auto sample = [&]() {
    if (layer.activation == Activation::kRelu) return static_cast<float>(std::sqrt(2.0 / fan_in)) * rng_.normal();
    const float limit = static_cast<float>(std::sqrt(6.0 / (fan_in + fan_out)));
    return (2.0f * rng_.uniform() - 1.0f) * limit;
  };
  if (layer.format == WeightFormat::kCsr) {
    for (int64_t k = layer.csr.indptr[unit]; k < layer.csr.indptr[unit + 1]; ++k) layer.csr.value()[k] = scale * sample();
    return;
  }
  float* w = layer.weight.value() + unit * layer.weight.stride;
  for (int64_t c = 0; c < layer.inputs; ++c)
    w[c] = layer.mask.empty() || layer.mask[unit * layer.inputs + c] ? scale * sample() : 0.0f;
}

GradMaxProduct Model::gradmax_product(int64_t l, const float* x, const Targets* targets, int64_t n, ThreadPool* pool) {
  if (l < 0 || l + 1 >= static_cast<int64_t>(layers_.size()))
    throw_range("layer " + std::to_string(l) + " is not a hidden layer");
  const DenseLayer& layer = layers_[l];
  const DenseLayer& next = layers_[l + 1];
  const int64_t b = signals_of(x, targets, n, pool);
  GradMaxProduct out;
  // M = sum over the batch of dL/dz_{l+1} a_{l-1}^T (next.units x layer.inputs).
  out.m.resize(next.units * layer.inputs);
  gemm_f32(Trans::kNo, Trans::kYes, next.units, layer.inputs, b, ws_.dz[l + 1].data(), b, ws_.act[l].data(), b, 0.0f,
           out.m.data(), layer.inputs, pool);
  std::vector<float> w(next.units * next.inputs);
  get_weights(l + 1, w.data(), nullptr);
  for (float v : w) out.weight_squares += static_cast<double>(v) * v;
  return out;
}

std::vector<int64_t> Model::grow_units(int64_t l, int64_t count, GrowInit init, double noise, const float* x,
                                       const Targets* targets, int64_t n, ThreadPool* pool, const GradMaxProduct* product) {
  if (l < 0 || l >= static_cast<int64_t>(layers_.size()))
    throw_range("dense layer index " + std::to_string(l) + " is out of range");
  if (l + 1 >= static_cast<int64_t>(layers_.size()))
    throw_range("layer " + std::to_string(l) + " is the output layer; its size is fixed by the targets, so it cannot grow");
  if (count < 1 || count > (1 << 20)) throw_range("count must be in [1, 1048576], got " + std::to_string(count));
  if (!(noise >= 0.0 && noise < 0.5)) throw_range("noise must be in [0, 0.5)");
  DenseLayer& layer = layers_[l];
  DenseLayer& next = layers_[l + 1];
  const int64_t old_units = layer.units, new_units = old_units + count;
  check_fits_in_memory(16.0 * static_cast<double>(new_units) * static_cast<double>(layer.inputs + next.units),
                       "growing layer " + std::to_string(l) + " to " + std::to_string(new_units) + " units");

  // GradMax needs the gradient of the current network first (given: read
  // where the weights are; checked before anything changes).
  std::vector<double> q;
  float out_scale = 1.0f;
  if (init == GrowInit::kGradMax) {
    GradMaxProduct own;
    if (product) {
      if (static_cast<int64_t>(product->m.size()) != next.units * layer.inputs)
        throw_range("the gradmax product has " + std::to_string(product->m.size()) + " entries; layer " + std::to_string(l + 1) +
                    " x layer " + std::to_string(l) + "'s inputs is " + std::to_string(next.units * layer.inputs));
      for (float v : product->m)
        if (!std::isfinite(v)) throw_range("the gradmax product holds a non-finite value");
      if (!(product->weight_squares >= 0.0) || !std::isfinite(product->weight_squares))
        throw_range("the gradmax weight_squares must be finite and >= 0");
    } else {
      own = gradmax_product(l, x, targets, n, pool);
      product = &own;
    }
    q = top_left_singular_vectors(product->m, next.units, layer.inputs, std::min<int64_t>(count, next.units), rng_);
    // New outgoing columns get the typical norm of the existing ones.
    out_scale = static_cast<float>(std::sqrt(product->weight_squares / std::max<int64_t>(1, next.inputs)));
    if (!(out_scale > 0.0f)) out_scale = 1.0f;
  }
  last_compensations_.clear();

  // Net2Wider sources: live units, without replacement while possible. When
  // every unit is alive and few are needed, sample them directly (O(count))
  // instead of listing the layer (O(width)).
  std::vector<int64_t> sources;
  if (init == GrowInit::kNet2Wider) {
    if (layer.alive.empty() && count <= old_units / 2) {
      while (static_cast<int64_t>(sources.size()) < count) {
        const int64_t g = static_cast<int64_t>(rng_.below(old_units));
        if (std::find(sources.begin(), sources.end(), g) == sources.end()) sources.push_back(g);
      }
    } else {
      std::vector<int64_t> live;
      for (int64_t j = 0; j < old_units; ++j)
        if (layer.alive.empty() || layer.alive[j]) live.push_back(j);
      if (live.empty()) throw_error("net2wider needs at least one live unit to split");
      for (int64_t k = 0; k < count; ++k) {
        if (k % static_cast<int64_t>(live.size()) == 0) {
          for (size_t i = live.size() - 1; i > 0; --i) std::swap(live[i], live[rng_.below(i + 1)]);
        }
        sources.push_back(live[k % live.size()]);
      }
    }
  }

  // ---- this layer gains rows ------------------------------------------------
  const double density = static_cast<double>(layer.nnz()) / static_cast<double>(old_units * layer.inputs);
  if (layer.format == WeightFormat::kCsr) {
    csr_append_rows(layer.csr, count);
    std::vector<std::pair<int64_t, int32_t>> entries;
    for (int64_t k = 0; k < count; ++k) {
      const int64_t unit = old_units + k;
      std::vector<int32_t> cols;
      if (init == GrowInit::kNet2Wider) {
        const int64_t g = sources[k];
        cols.assign(layer.csr.indices.begin() + layer.csr.indptr[g], layer.csr.indices.begin() + layer.csr.indptr[g + 1]);
      } else {
        cols = sample_sorted(rng_, layer.inputs, std::max<int64_t>(1, std::llround(density * layer.inputs)));
      }
      for (int32_t c : cols) entries.emplace_back(unit, c);
    }
    csr_insert(layer.csr, entries, std::vector<float>(entries.size(), 0.0f));
  } else {
    layer.weight.grow(new_units, layer.inputs);
    if (!layer.mask.empty()) {
      layer.mask.resize(new_units * layer.inputs, 1);
      if (init == GrowInit::kNet2Wider)
        for (int64_t k = 0; k < count; ++k)
          std::copy(layer.mask.begin() + sources[k] * layer.inputs, layer.mask.begin() + (sources[k] + 1) * layer.inputs,
                    layer.mask.begin() + (old_units + k) * layer.inputs);
    }
  }
  layer.bias.grow(new_units, 1);
  layer.units = new_units;
  if (!layer.alive.empty()) layer.alive.resize(new_units, 1);
  if (layer.birth_step.size() != static_cast<size_t>(old_units)) layer.birth_step.assign(old_units, 0);
  layer.birth_step.resize(new_units, step_);
  std::vector<int64_t> ids;
  for (int64_t k = 0; k < count; ++k) ids.push_back(next_neuron_id_++);
  layer.neuron_ids.insert(layer.neuron_ids.end(), ids.begin(), ids.end());
  for (auto* v : {&layer.stats.mean_abs_activation, &layer.stats.mean_activation, &layer.stats.taylor})
    if (!v->empty()) v->resize(new_units, 0.0);

  // Incoming weights and biases of the new units.
  for (int64_t k = 0; k < count; ++k) {
    const int64_t unit = old_units + k;
    if (init == GrowInit::kNet2Wider) {
      const int64_t g = sources[k];
      if (layer.format == WeightFormat::kCsr) {
        std::copy(layer.csr.value() + layer.csr.indptr[g], layer.csr.value() + layer.csr.indptr[g + 1], layer.csr.value() + layer.csr.indptr[unit]);
      } else {
        const float* src = layer.weight.value() + g * layer.weight.stride;
        std::copy(src, src + layer.inputs, layer.weight.value() + unit * layer.weight.stride);
      }
      layer.bias.value()[unit] = layer.bias.value()[g];
    } else {
      // GradMax starts the incoming weights tiny (not zero: at zero relu and
      // tanh units would get no gradient to learn from).
      init_incoming_row(layer, unit, init == GrowInit::kGradMax ? 1e-3f : 1.0f);
    }
  }

  // ---- the next layer gains columns ------------------------------------------
  const int64_t old_inputs = next.inputs;
  // Outgoing value of new unit k towards next-layer unit r.
  std::vector<float> out(next.units * count, 0.0f);
  for (int64_t k = 0; k < count; ++k) {
    for (int64_t r = 0; r < next.units; ++r) {
      float v = 0.0f;
      if (init == GrowInit::kRandom) v = 0.01f * rng_.normal();
      if (init == GrowInit::kGradMax && k < static_cast<int64_t>(q.size() / next.units))
        v = static_cast<float>(q[k * next.units + r]) * out_scale;
      out[r * count + k] = v;
    }
  }
  // Net2Wider: split each source's outgoing weights between it and its copies
  // (shares sum to 1, so the function is unchanged; uneven shares when noise > 0
  // break the symmetry between the copies). Only the sources involved are
  // visited, so the cost does not grow with the layer's width.
  std::vector<float> copy_share(count, 0.0f);
  std::vector<std::pair<int64_t, float>> source_shares;  // (source unit, its remaining share)
  if (init == GrowInit::kNet2Wider) {
    std::vector<int64_t> order(count);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return sources[a] < sources[b]; });
    for (size_t i = 0; i < order.size();) {
      size_t j = i;
      while (j < order.size() && sources[order[j]] == sources[order[i]]) ++j;
      const size_t parts = j - i + 1;
      std::vector<double> share(parts);
      double sum = 0.0;
      for (auto& s : share) sum += (s = 1.0 + noise * (2.0 * rng_.uniform() - 1.0));
      source_shares.emplace_back(sources[order[i]], static_cast<float>(share[0] / sum));
      for (size_t c = i; c < j; ++c) copy_share[order[c]] = static_cast<float>(share[c - i + 1] / sum);
      i = j;
    }
  }
  std::vector<float> source_share_of;  // dense lookup only for the CSR path's column scan
  if (init == GrowInit::kNet2Wider && next.format == WeightFormat::kCsr) {
    source_share_of.assign(old_units, 1.0f);
    for (const auto& [g, s] : source_shares) source_share_of[g] = s;
  }
  auto outgoing = [&](int64_t r, int64_t k, float source_value) {
    return init == GrowInit::kNet2Wider ? copy_share[k] * source_value : out[r * count + k];
  };
  if (next.format == WeightFormat::kCsr) {
    CsrParam& c = next.csr;
    c.cols = next.inputs + count;
    c.drop_transpose();
    // New entries: net2wider copies the source column's pattern; the others
    // get the layer's density at random rows.
    const double next_density = static_cast<double>(c.nnz()) / static_cast<double>(next.units * old_inputs);
    std::vector<std::vector<int64_t>> rows_of(count);
    for (int64_t k = 0; k < count; ++k) {
      if (init == GrowInit::kNet2Wider) continue;
      for (int32_t r : sample_sorted(rng_, next.units, std::max<int64_t>(1, std::llround(next_density * next.units)))) rows_of[k].push_back(r);
    }
    std::vector<std::pair<int64_t, int32_t>> entries;
    std::vector<float> values;
    for (int64_t r = 0; r < next.units; ++r) {
      for (int64_t k = 0; k < count; ++k) {
        float v = 0.0f;
        bool present = false;
        if (init == GrowInit::kNet2Wider) {
          const int64_t g = sources[k];
          for (int64_t e = c.indptr[r]; e < c.indptr[r + 1]; ++e)
            if (c.indices[e] == g) {
              present = true;
              v = outgoing(r, k, c.value()[e]);
            }
        } else {
          present = std::binary_search(rows_of[k].begin(), rows_of[k].end(), r);
          v = out[r * count + k];
        }
        if (present) {
          entries.emplace_back(r, static_cast<int32_t>(old_inputs + k));
          values.push_back(v);
        }
      }
    }
    if (init == GrowInit::kNet2Wider) {
      for (int64_t r = 0; r < next.units; ++r)
        for (int64_t e = c.indptr[r]; e < c.indptr[r + 1]; ++e) {
          const float s = source_share_of[c.indices[e]];
          for (int sl = 0; sl < kSlotCount; ++sl)
            if (c.has(static_cast<Slot>(sl)) && sl != 1) c.slots[sl][e] *= sl == 3 ? s * s : s;
        }
    }
    csr_insert(c, entries, values);
  } else {
    DenseParam& p = next.weight;
    p.grow(next.units, old_inputs + count);
    if (!next.mask.empty()) {
      std::vector<uint8_t> mask(next.units * (old_inputs + count), 1);
      for (int64_t r = 0; r < next.units; ++r) {
        std::copy(next.mask.begin() + r * old_inputs, next.mask.begin() + (r + 1) * old_inputs, mask.begin() + r * (old_inputs + count));
        if (init == GrowInit::kNet2Wider)
          for (int64_t k = 0; k < count; ++k) mask[r * (old_inputs + count) + old_inputs + k] = next.mask[r * old_inputs + sources[k]];
      }
      next.mask = std::move(mask);
    }
    for (int64_t r = 0; r < next.units; ++r) {
      float* row = p.value() + r * p.stride;
      for (int64_t k = 0; k < count; ++k) row[old_inputs + k] = outgoing(r, k, init == GrowInit::kNet2Wider ? row[sources[k]] : 0.0f);
      if (init == GrowInit::kNet2Wider) {
        for (const auto& [g, s] : source_shares) {
          for (int sl = 0; sl < kSlotCount; ++sl)
            if (p.has(static_cast<Slot>(sl)) && sl != 1) p.slots[sl][r * p.stride + g] *= sl == 3 ? s * s : s;
        }
      }
    }
  }
  next.inputs = old_inputs + count;
  last_split_.layer = init == GrowInit::kNet2Wider ? l : -1;
  last_split_.shares = std::move(source_shares);
  last_split_.copies.clear();
  if (init == GrowInit::kNet2Wider)
    for (int64_t k = 0; k < count; ++k) last_split_.copies.emplace_back(sources[k], copy_share[k]);

  // Near-zero incoming weights make a gradmax unit emit act(0): take that
  // constant out through the next layer's bias so the function is unchanged
  // (only through the outgoing weights actually stored). b += float(w x -a0),
  // new units in order: a GPU model adds the same (compensate_bias_cuda).
  if (init == GrowInit::kGradMax && activation_at_zero(layer.activation) != 0.0f) {
    Compensation moved;
    moved.layer = l;
    moved.new_weights = true;
    for (int64_t k = 0; k < count; ++k) {
      moved.units.push_back(old_units + k);
      moved.means.push_back(-static_cast<double>(activation_at_zero(layer.activation)));
    }
    std::vector<float> w(next.units * next.inputs);
    get_weights(l + 1, w.data(), nullptr);
    for (int64_t r = 0; r < next.units; ++r)
      for (int64_t k = 0; k < count; ++k)
        next.bias.value()[r] += static_cast<float>(static_cast<double>(w[r * next.inputs + old_inputs + k]) * moved.means[k]);
    last_compensations_.push_back(std::move(moved));
  }

  StructuralEvent e;
  e.kind = "grow";
  e.layer = l;
  e.criterion = init_name(init);
  e.neuron_ids = ids;
  e.count = count;
  e.density_before = static_cast<double>(old_units);
  e.density_after = static_cast<double>(new_units);
  log_event(std::move(e));
  return ids;
}

}  // namespace np
