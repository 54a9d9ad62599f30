// CudaModel::restructure (cuda_model.h): the device model follows a structural
// change the host made, moving its own numbers (remap.h, remap.cu) instead of
// copying every slot to the host and back.
#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cuda/cuda_model.h"

namespace np::cuda {

namespace {

[[noreturn]] void bad(size_t layer, const std::string& what) {
  throw std::invalid_argument("CudaModel.restructure: layer " + std::to_string(layer) + ": " + what);
}

bool has_new_units(const std::vector<int32_t>& sources) {
  for (int32_t s : sources)
    if (s < 0) return true;
  return false;
}

// Copies (row_copy, input_copy): empty, or one entry per unit (input): -1,
// or for a new one (source -1) a current one, below `current`.
void check_copies(size_t layer, const std::vector<int32_t>& copies, const std::vector<int32_t>& sources, int64_t current,
                  const char* name, const char* what) {
  if (copies.empty()) return;
  if (copies.size() != sources.size()) bad(layer, std::string(name) + " must have one entry per " + what);
  for (size_t r = 0; r < copies.size(); ++r) {
    if (copies[r] == -1) continue;
    if (sources[r] >= 0) bad(layer, std::string(name) + "[" + std::to_string(r) + "]: only a new " + what + " copies");
    if (copies[r] < 0 || copies[r] >= current)
      bad(layer, std::string(name) + "[" + std::to_string(r) + "] = " + std::to_string(copies[r]) + " is not -1 or a current " + what);
  }
}

// Every new unit (input) has a copy.
bool covers(const std::vector<int32_t>& copies, const std::vector<int32_t>& sources) {
  if (copies.size() != sources.size()) return false;
  for (size_t r = 0; r < sources.size(); ++r)
    if (sources[r] < 0 && copies[r] < 0) return false;
  return true;
}

// The CPU's DenseParam::grow headroom: 1.5x what the buffer had, at least
// what is needed, in whole 64-byte lines.
int64_t with_headroom(int64_t need, int64_t have) {
  if (need <= have) return have;
  return ((std::max(need, have + have / 2) + 15) / 16) * 16;
}

// A dense layer's slot (compact, units x inputs) at the positions a growth
// into reserved capacity adds, in remap_append_cuda's order: the new inputs
// of each old row, then the new rows whole.
std::vector<float> appended_values(const std::vector<float>& all, int64_t old_units, int64_t old_inputs, int64_t units, int64_t inputs) {
  std::vector<float> out;
  out.reserve(static_cast<size_t>(old_units * (inputs - old_inputs) + (units - old_units) * inputs));
  for (int64_t r = 0; r < old_units; ++r)
    out.insert(out.end(), all.begin() + r * inputs + old_inputs, all.begin() + (r + 1) * inputs);
  out.insert(out.end(), all.begin() + old_units * inputs, all.begin() + units * inputs);
  return out;
}

}  // namespace

// Whether a dense layer's change is a growth that fits its spare capacity:
// the same units first, then new ones; the same inputs first, then new ones;
// nothing else moves or restarts. The old positions are not re-masked: the
// host's growth (np::Model::grow_units) leaves their mask entries and the
// old units' alive flags as they were.
bool CudaModel::grows_in_place(const Layer& old, const CudaLayerState& s, const std::vector<int32_t>& rows,
                               const std::vector<int32_t>* cols) {
  if (old.csr || s.csr || old.drop_connect > 0.0f || s.drop_connect > 0.0f || s.restart_scale) return false;
  if (s.units < old.units || s.inputs < old.inputs || (s.units == old.units && s.inputs == old.inputs)) return false;
  if (s.units > old.row_capacity || s.inputs > old.stride) return false;
  auto appended = [](const std::vector<int32_t>& src, int64_t kept) {
    for (size_t r = 0; r < src.size(); ++r)
      if (src[r] != (static_cast<int64_t>(r) < kept ? static_cast<int32_t>(r) : -1)) return false;
    return true;
  };
  return appended(rows, old.units) && (cols == nullptr ? s.inputs == old.inputs : appended(*cols, old.inputs));
}

namespace {

bool is_identity(const std::vector<int32_t>& sources, int64_t units) {
  if (static_cast<int64_t>(sources.size()) != units) return false;
  for (size_t r = 0; r < sources.size(); ++r)
    if (sources[r] != static_cast<int32_t>(r)) return false;
  return true;
}

}  // namespace

void CudaModel::restructure(std::vector<CudaLayerState> layers, const std::vector<std::vector<int32_t>>& row_sources) {
  ensure_usable();
  // ---- check everything first --------------------------------------------------
  if (layers.size() != layers_.size())
    throw std::invalid_argument("CudaModel.restructure: " + std::to_string(layers.size()) + " layers given, the model has " +
                                std::to_string(layers_.size()));
  if (row_sources.size() != layers.size())
    throw std::invalid_argument("CudaModel.restructure: one row_sources list per layer is needed");
  const size_t moments = static_cast<size_t>(moment_slots());
  std::vector<bool> fresh(layers.size());
  int64_t inputs = config_.input_size;
  for (size_t i = 0; i < layers.size(); ++i) {
    const CudaLayerState& l = layers[i];
    if (l.keep) {
      // Kept whole: it must be the same layer, fed by the same units.
      const Layer& old = layers_[i];
      if (l.units != old.units || l.inputs != old.inputs || l.inputs != inputs || l.csr != old.csr)
        bad(i, "kept, but its shape or format differs from the device's");
      if (l.activation != old.activation || l.input_dropout != old.input_dropout || l.drop_connect != old.drop_connect ||
          l.use_bias != old.use_bias)
        bad(i, "kept, but its settings differ from the device's");
      if (!is_identity(row_sources[i], old.units) || (i > 0 && !is_identity(row_sources[i - 1], layers_[i - 1].units)))
        bad(i, "kept, but its units or inputs moved");
      if (l.restart_scale || !l.input_scale.empty() || !l.row_copy.empty() || !l.input_copy.empty() || !l.weight.empty() ||
          !l.bias.empty() || !l.compensate_inputs.empty() || l.compensate_new_weights)
        bad(i, "kept, but given values, scales, copies or units to compensate");
      inputs = l.units;
      continue;
    }
    check_structure(i, l, inputs);
    const std::vector<int32_t>& src = row_sources[i];
    if (static_cast<int64_t>(src.size()) != l.units) bad(i, "row_sources must have one entry per unit");
    std::set<int32_t> seen;
    for (int32_t s : src) {
      if (s < -1 || s >= layers_[i].units) bad(i, "row source " + std::to_string(s) + " is not -1 or a current unit");
      if (s >= 0 && !seen.insert(s).second) bad(i, "current unit " + std::to_string(s) + " is the source of two units");
    }
    if (!l.input_scale.empty()) {
      if (static_cast<int64_t>(l.input_scale.size()) != l.inputs) bad(i, "input_scale must have one entry per input");
      for (float f : l.input_scale)
        if (!std::isfinite(f)) bad(i, "input_scale entries must be finite");
    }
    const bool new_rows = has_new_units(src), new_inputs = i > 0 && has_new_units(row_sources[i - 1]);
    // One change at a time: a restart (sparsify) moves weights only, and copies (net2wider) come
    // either as new rows (the grown layer, its inputs as they were) or as new inputs (the next
    // layer), so every copied value is an old one as the host's copy took it.
    if (l.restart_scale) {
      if (!std::isfinite(*l.restart_scale)) bad(i, "restart_scale must be finite");
      if (!l.input_scale.empty() || !l.row_copy.empty() || !l.input_copy.empty())
        bad(i, "restart_scale cannot be given with input_scale, row_copy or input_copy");
    }
    if (!l.row_copy.empty() && (new_inputs || !l.input_scale.empty() || !l.input_copy.empty()))
      bad(i, "row_copy: the layer's inputs must be as they were (no new inputs, input_scale or input_copy)");
    check_copies(i, l.row_copy, src, layers_[i].units, "row_copy", "unit");
    if (!l.input_copy.empty()) {
      if (i == 0) bad(i, "input_copy: the first layer's inputs are not units");
      check_copies(i, l.input_copy, row_sources[i - 1], layers_[i].inputs, "input_copy", "input");
      if (l.input_copy_scale.size() != l.input_copy.size()) bad(i, "input_copy_scale must have one entry per input");
      for (float f : l.input_copy_scale)
        if (!std::isfinite(f)) bad(i, "input_copy_scale entries must be finite");
    } else if (!l.input_copy_scale.empty()) {
      bad(i, "input_copy_scale given without input_copy");
    }
    if (!l.compensate_inputs.empty()) {
      if (i == 0) bad(i, "compensate_inputs: the first layer's inputs are not units");
      const int64_t limit = l.compensate_new_weights ? l.inputs : layers_[i].inputs;
      for (size_t k = 0; k < l.compensate_inputs.size(); ++k)
        if (l.compensate_inputs[k] < 0 || l.compensate_inputs[k] >= limit ||
            (k > 0 && l.compensate_inputs[k] <= l.compensate_inputs[k - 1]))
          bad(i, std::string("compensate_inputs must be ascending ") + (l.compensate_new_weights ? "new" : "current") +
                     " inputs of the layer");
      if (l.compensate_means.size() != l.compensate_inputs.size()) bad(i, "compensate_means must have one entry per compensated input");
      for (double m : l.compensate_means)
        if (!std::isfinite(m)) bad(i, "compensate_means must be finite");
    } else if (!l.compensate_means.empty() || l.compensate_new_weights) {
      bad(i, "compensate_means or compensate_new_weights given without compensate_inputs");
    }
    // The host's values: needed where a new position has no copy to take
    // (a new unit's row without row_copy, a new input without input_copy,
    // or a new unit's new input), allowed wherever a unit is new.
    const bool copied = (!new_rows || covers(l.row_copy, src)) && (!new_inputs || covers(l.input_copy, row_sources[i - 1])) &&
                        !(new_rows && new_inputs);
    const bool given = !l.weight.empty() || !l.bias.empty() || !l.weight_moments.empty() || !l.bias_moments.empty();
    fresh[i] = (new_rows || new_inputs) && (given || !copied);
    if (fresh[i]) {
      check_values(i, l, moments);
    } else if (given) {
      bad(i, "values given, but the layer has no new units in its rows or inputs");
    }
    inputs = l.units;
  }

  // ---- build the new layers from the old ones, on the stream --------------------
  // First everything that allocates (a failure here leaves the model as it
  // was), then the kernels, some of which write a growing layer's own buffers
  // in place; the swap comes last.
  set_device(config_.device);
  std::vector<Layer> built;
  built.reserve(layers.size());
  std::vector<DeviceBuffer> sources;  // kept alive until the stream is done with them
  std::vector<DeviceBuffer> fresh_values;
  std::vector<RemapView> views(layers.size());
  std::vector<RemapSlots> weight_slots(layers.size()), bias_slots(layers.size());
  std::vector<bool> in_place(layers.size(), false);
  // What the kernels read from the host, uploaded with the allocations.
  struct Pending {
    const int32_t* compensate_inputs = nullptr;
    const double* compensate_means = nullptr;
    const double* fresh_stats[3] = {nullptr, nullptr, nullptr};
    const int32_t* split_columns = nullptr;  // in place: the old columns whose factor is not 1
    int64_t splits = 0;
  };
  std::vector<Pending> pending(layers.size());
  auto upload = [&](const auto& host) {
    fresh_values.push_back(to_device(host, stream_));
    return fresh_values.back().data();
  };
  for (size_t i = 0; i < layers.size(); ++i) {
    const CudaLayerState& s = layers[i];
    sources.push_back(to_device(row_sources[i], stream_));  // also the next layer's column sources
    if (s.keep) {
      built.emplace_back();  // filled with the old layer itself once nothing can fail
      continue;
    }
    const Layer& old = layers_[i];
    const std::vector<int32_t>* col_sources = i == 0 ? nullptr : &row_sources[i - 1];
    in_place[i] = grows_in_place(old, s, row_sources[i], col_sources);
    Layer l;
    if (in_place[i]) {
      // Its weights, gradients and slots stay where they are (moved over at the swap).
      l = build_structure(s, old.stride, old.row_capacity, /*gradients=*/false);
    } else {
      // A dense layer keeps its spare capacity through a rebuild, and one that outgrows it gets
      // more (as the CPU's DenseParam::grow); one that shrinks (compaction) gives it back.
      const bool shrinks = s.units < old.units || s.inputs < old.inputs;
      const int64_t old_pitch = old.csr ? old.inputs : old.stride, old_rows = old.csr ? old.units : old.row_capacity;
      l = build_structure(s, s.csr || shrinks ? 0 : with_headroom(s.inputs, old_pitch),
                          s.csr || shrinks ? 0 : with_headroom(s.units, old_rows));
      const size_t weights = static_cast<size_t>(l.allocated()) * sizeof(float), biases = static_cast<size_t>(l.row_capacity) * sizeof(float);
      l.weight = DeviceBuffer(weights);
      l.bias = DeviceBuffer(biases);
      for (size_t m = 0; m < moments; ++m) {
        l.weight_moments[m] = DeviceBuffer(weights);
        l.bias_moments[m] = DeviceBuffer(biases);
      }
    }
    RemapView& v = views[i];
    v.old_units = old.units;
    v.old_inputs = old.inputs;
    v.old_csr = old.csr;
    v.old_indptr = old.indptr.as<int64_t>();
    v.old_indices = old.indices.as<int32_t>();
    v.old_stride = old.csr ? 0 : old.stride;
    v.units = l.units;
    v.inputs = l.inputs;
    v.csr = l.csr;
    v.indptr = l.indptr.as<int64_t>();
    v.indices = l.indices.as<int32_t>();
    v.stride = l.csr ? 0 : l.stride;
    v.mask = l.mask.size() ? l.mask.as<uint8_t>() : nullptr;
    v.alive = l.alive.size() ? l.alive.as<uint8_t>() : nullptr;
    v.row_source = sources.back().as<int32_t>();
    v.col_source = i == 0 ? nullptr : sources[i - 1].as<int32_t>();
    if (s.restart_scale) {
      v.restart = true;
      v.restart_scale = *s.restart_scale;
    }
    if (!s.input_scale.empty()) v.col_scale = static_cast<const float*>(upload(s.input_scale));
    if (!s.row_copy.empty()) v.row_copy = static_cast<const int32_t*>(upload(s.row_copy));
    if (!s.input_copy.empty()) {
      v.col_copy = static_cast<const int32_t*>(upload(s.input_copy));
      v.col_copy_scale = static_cast<const float*>(upload(s.input_copy_scale));
    }
    // In place, the layer's own buffers are both the source and the target.
    const Layer& target = in_place[i] ? old : l;
    RemapSlots& w = weight_slots[i];
    RemapSlots& b = bias_slots[i];
    w.count = b.count = 1 + static_cast<int>(moments);
    w.from[0] = old.weight.as<float>();
    w.to[0] = target.weight.as<float>();
    b.from[0] = old.bias.as<float>();
    b.to[0] = target.bias.as<float>();
    for (size_t m = 0; m < moments; ++m) {
      w.from[1 + m] = old.weight_moments[m].as<float>();
      w.to[1 + m] = target.weight_moments[m].as<float>();
      b.from[1 + m] = old.bias_moments[m].as<float>();
      b.to[1 + m] = target.bias_moments[m].as<float>();
    }
    if (fresh[i] && in_place[i]) {
      // Only the new positions' values cross (in remap_append_cuda's order), and the new units' biases.
      w.fresh[0] = static_cast<const float*>(upload(appended_values(s.weight, old.units, old.inputs, s.units, s.inputs)));
      b.fresh[0] = static_cast<const float*>(upload(std::vector<float>(s.bias.begin() + old.units, s.bias.end())));
      for (size_t m = 0; m < moments; ++m) {
        w.fresh[1 + m] = static_cast<const float*>(upload(appended_values(s.weight_moments[m], old.units, old.inputs, s.units, s.inputs)));
        b.fresh[1 + m] = static_cast<const float*>(upload(std::vector<float>(s.bias_moments[m].begin() + old.units, s.bias_moments[m].end())));
      }
    } else if (fresh[i]) {
      w.fresh[0] = static_cast<const float*>(upload(s.weight));
      b.fresh[0] = static_cast<const float*>(upload(s.bias));
      for (size_t m = 0; m < moments; ++m) {
        w.fresh[1 + m] = static_cast<const float*>(upload(s.weight_moments[m]));
        b.fresh[1 + m] = static_cast<const float*>(upload(s.bias_moments[m]));
      }
    }
    if (in_place[i] && !s.input_scale.empty()) {
      std::vector<int32_t> split;
      for (int64_t c = 0; c < old.inputs; ++c)
        if (s.input_scale[static_cast<size_t>(c)] != 1.0f) split.push_back(static_cast<int32_t>(c));
      pending[i].splits = static_cast<int64_t>(split.size());
      if (!split.empty()) pending[i].split_columns = static_cast<const int32_t*>(upload(split));
    }
    if (!s.compensate_inputs.empty()) {
      pending[i].compensate_inputs = static_cast<const int32_t*>(upload(s.compensate_inputs));
      pending[i].compensate_means = static_cast<const double*>(upload(s.compensate_means));
    }
    // Unit statistics follow their units (build_structure's new buffer); new units take the host's (zeros).
    const std::vector<double>* host_stats[3] = {&s.mean_abs_activation, &s.mean_activation, &s.taylor};
    for (int k = 0; k < 3; ++k)
      if (fresh[i] && static_cast<int64_t>(host_stats[k]->size()) == l.units)
        pending[i].fresh_stats[k] = static_cast<const double*>(upload(*host_stats[k]));
    built.push_back(std::move(l));
  }

  // Nothing can fail for want of memory from here on: the kernels. The
  // layers rebuilt into new buffers first, then those that grow in place,
  // whose writes to old positions (net2wider's split columns, gradmax's
  // biases) come last of all. Should anything fail after an in-place write,
  // the model's numbers are in an unknown state: it refuses every use until
  // it is loaded again (lib/cuda_model.ts then drops it and keeps the host's).
  bool wrote_in_place = false;
  try {
    for (int pass = 0; pass < 2; ++pass) {
      for (size_t i = 0; i < layers.size(); ++i) {
        const CudaLayerState& s = layers[i];
        if (s.keep || in_place[i] != (pass == 1)) continue;
        Layer& old = layers_[i];
        Layer& l = built[i];
        const RemapView& v = views[i];
        if (in_place[i]) {
          // Growth into reserved capacity: only the new positions and units are written.
          wrote_in_place = true;
          remap_append_cuda(v, old.units, old.inputs, weight_slots[i], stream_);
          remap_bias_cuda(v, bias_slots[i], stream_, old.units);
          old.weight_grad.fill_zero(stream_);  // gradients restart at zero, as after any restructure
          old.bias_grad.fill_zero(stream_);
        } else {
          // Spare capacity starts (and stays) zero in every slot.
          if (l.allocated() > l.count) {
            l.weight.fill_zero(stream_);
            for (size_t m = 0; m < moments; ++m) l.weight_moments[m].fill_zero(stream_);
          }
          if (l.row_capacity > l.units) {
            l.bias.fill_zero(stream_);
            for (size_t m = 0; m < moments; ++m) l.bias_moments[m].fill_zero(stream_);
          }
          remap_weights_cuda(v, l.count, weight_slots[i], stream_);
          remap_bias_cuda(v, bias_slots[i], stream_);
        }
        for (int k = 0; k < 3; ++k) remap_rows_f64_cuda(l.stat(k), old.stat(k), pending[i].fresh_stats[k], v.row_source, l.units, stream_);
        l.stats_updates = old.stats_updates;
      }
    }
    // Writes to surviving positions, after every read of them above.
    for (size_t i = 0; i < layers.size(); ++i) {
      const CudaLayerState& s = layers[i];
      if (s.keep) continue;
      Layer& old = layers_[i];
      Layer& l = built[i];
      const RemapView& v = views[i];
      if (in_place[i]) remap_scale_columns_cuda(v, old.units, pending[i].split_columns, pending[i].splits, weight_slots[i], stream_);
      if (!s.compensate_inputs.empty()) {
        // Through the old weights (still the device's until the swap), or the new ones just remapped
        // (in place: the same buffer).
        const Layer& through = s.compensate_new_weights && !in_place[i] ? l : old;
        compensate_bias_cuda((in_place[i] ? old : l).bias.as<float>(), v, through.weight.as<float>(), s.compensate_new_weights,
                             pending[i].compensate_inputs, pending[i].compensate_means,
                             static_cast<int64_t>(s.compensate_inputs.size()), stream_);
      }
    }
    stream_.synchronize();
  } catch (...) {
    if (wrote_in_place) unusable_ = "a restructure failed after changing a layer in place, so its numbers are unknown; it takes no call until a load()";
    throw;
  }
  // Every copy and kernel done; only then do the kept layers, and the
  // buffers of the layers that grew in place, move over, so no failure
  // leaves one behind half-moved.
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i].keep) {
      built[i] = std::move(layers_[i]);
    } else if (in_place[i]) {
      Layer& from = layers_[i];
      Layer& to = built[i];
      to.weight = std::move(from.weight);
      to.weight_grad = std::move(from.weight_grad);
      to.bias = std::move(from.bias);
      to.bias_grad = std::move(from.bias_grad);
      for (int m = 0; m < 2; ++m) {
        to.weight_moments[m] = std::move(from.weight_moments[m]);
        to.bias_moments[m] = std::move(from.bias_moments[m]);
      }
    }
  }
  swap_layers(std::move(built), step_);  // the old buffers may go now
}

}  // namespace np::cuda
