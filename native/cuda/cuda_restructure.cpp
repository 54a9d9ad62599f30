// CudaModel::restructure (cuda_model.h): the device model follows a structural
// change the host made, moving its own numbers (remap.h, remap.cu) instead of
// copying every slot to the host and back.
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

bool is_identity(const std::vector<int32_t>& sources, int64_t units) {
  if (static_cast<int64_t>(sources.size()) != units) return false;
  for (size_t r = 0; r < sources.size(); ++r)
    if (sources[r] != static_cast<int32_t>(r)) return false;
  return true;
}

}  // namespace

void CudaModel::restructure(std::vector<CudaLayerState> layers, const std::vector<std::vector<int32_t>>& row_sources) {
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
  set_device(config_.device);
  std::vector<Layer> built;
  built.reserve(layers.size());
  std::vector<DeviceBuffer> sources;  // kept alive until the stream is done with them
  std::vector<DeviceBuffer> fresh_values;
  for (size_t i = 0; i < layers.size(); ++i) {
    const CudaLayerState& s = layers[i];
    if (s.keep) {
      sources.push_back(to_device(row_sources[i], stream_));  // the next layer's column sources
      built.emplace_back();  // filled with the old layer itself once nothing can fail
      continue;
    }
    const Layer& old = layers_[i];
    Layer l = build_structure(s);
    l.weight = DeviceBuffer(static_cast<size_t>(l.count) * sizeof(float));
    l.bias = DeviceBuffer(static_cast<size_t>(l.units) * sizeof(float));
    for (size_t m = 0; m < moments; ++m) {
      l.weight_moments[m] = DeviceBuffer(static_cast<size_t>(l.count) * sizeof(float));
      l.bias_moments[m] = DeviceBuffer(static_cast<size_t>(l.units) * sizeof(float));
    }
    sources.push_back(to_device(row_sources[i], stream_));

    RemapView v;
    v.old_units = old.units;
    v.old_inputs = old.inputs;
    v.old_csr = old.csr;
    v.old_indptr = old.indptr.as<int64_t>();
    v.old_indices = old.indices.as<int32_t>();
    v.units = l.units;
    v.inputs = l.inputs;
    v.csr = l.csr;
    v.indptr = l.indptr.as<int64_t>();
    v.indices = l.indices.as<int32_t>();
    v.mask = l.mask.size() ? l.mask.as<uint8_t>() : nullptr;
    v.alive = l.alive.size() ? l.alive.as<uint8_t>() : nullptr;
    v.row_source = sources.back().as<int32_t>();
    v.col_source = i == 0 ? nullptr : sources[i - 1].as<int32_t>();
    if (s.restart_scale) {
      v.restart = true;
      v.restart_scale = *s.restart_scale;
    }
    if (!s.input_scale.empty()) {
      fresh_values.push_back(to_device(s.input_scale, stream_));
      v.col_scale = fresh_values.back().as<float>();
    }
    if (!s.row_copy.empty()) {
      fresh_values.push_back(to_device(s.row_copy, stream_));
      v.row_copy = fresh_values.back().as<int32_t>();
    }
    if (!s.input_copy.empty()) {
      fresh_values.push_back(to_device(s.input_copy, stream_));
      v.col_copy = fresh_values.back().as<int32_t>();
      fresh_values.push_back(to_device(s.input_copy_scale, stream_));
      v.col_copy_scale = fresh_values.back().as<float>();
    }

    RemapSlots w, b;
    w.count = b.count = 1 + static_cast<int>(moments);
    w.from[0] = old.weight.as<float>();
    w.to[0] = l.weight.as<float>();
    b.from[0] = old.bias.as<float>();
    b.to[0] = l.bias.as<float>();
    for (size_t m = 0; m < moments; ++m) {
      w.from[1 + m] = old.weight_moments[m].as<float>();
      w.to[1 + m] = l.weight_moments[m].as<float>();
      b.from[1 + m] = old.bias_moments[m].as<float>();
      b.to[1 + m] = l.bias_moments[m].as<float>();
    }
    if (fresh[i]) {
      auto add = [&](const std::vector<float>& host) {
        fresh_values.push_back(to_device(host, stream_));
        return static_cast<const float*>(fresh_values.back().as<float>());
      };
      w.fresh[0] = add(s.weight);
      b.fresh[0] = add(s.bias);
      for (size_t m = 0; m < moments; ++m) {
        w.fresh[1 + m] = add(s.weight_moments[m]);
        b.fresh[1 + m] = add(s.bias_moments[m]);
      }
    }
    remap_weights_cuda(v, l.count, w, stream_);
    remap_bias_cuda(v, b, stream_);
    if (!s.compensate_inputs.empty()) {
      // Through the old weights (still the device's until the swap), or the new ones just remapped.
      fresh_values.push_back(to_device(s.compensate_inputs, stream_));
      const int32_t* cols = fresh_values.back().as<int32_t>();
      fresh_values.push_back(to_device(s.compensate_means, stream_));
      compensate_bias_cuda(l.bias.as<float>(), v, (s.compensate_new_weights ? l.weight : old.weight).as<float>(),
                           s.compensate_new_weights, cols, fresh_values.back().as<double>(),
                           static_cast<int64_t>(s.compensate_inputs.size()), stream_);
    }
    // Unit statistics follow their units; new units take the host's (zeros).
    const std::vector<double>* host_stats[3] = {&s.mean_abs_activation, &s.mean_activation, &s.taylor};
    for (int k = 0; k < 3; ++k) {
      const double* fresh_stats = nullptr;
      if (fresh[i] && static_cast<int64_t>(host_stats[k]->size()) == l.units) {
        fresh_values.push_back(to_device(*host_stats[k], stream_));
        fresh_stats = fresh_values.back().as<double>();
      }
      remap_rows_f64_cuda(l.stat(k), old.stat(k), fresh_stats, v.row_source, l.units, stream_);
    }
    l.stats_updates = old.stats_updates;
    built.push_back(std::move(l));
  }
  // Every copy and kernel done (a failure shows here, with the model as it
  // was); only then do the kept layers move over, so no failure leaves one
  // behind half-moved.
  stream_.synchronize();
  for (size_t i = 0; i < layers.size(); ++i)
    if (layers[i].keep) built[i] = std::move(layers_[i]);
  swap_layers(std::move(built), step_);  // the old buffers may go now
}

}  // namespace np::cuda
