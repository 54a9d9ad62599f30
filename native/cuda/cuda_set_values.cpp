// CudaModel::set_values (cuda_model.h): numbers the host changed over an
// unchanged structure (setWeights, a lottery-ticket rewind) go to the device
// as they are, instead of a whole load() that rebuilds every layer and W^T.
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/cuda_model.h"

namespace np::cuda {

namespace {

[[noreturn]] void bad(size_t layer, const std::string& what) {
  throw std::invalid_argument("CudaModel.setValues: layer " + std::to_string(layer) + ": " + what);
}

void check_size(size_t layer, const std::optional<std::vector<float>>& v, int64_t want, const char* what) {
  if (v && static_cast<int64_t>(v->size()) != want)
    bad(layer, std::string(what) + " has " + std::to_string(v->size()) + " entries, expected " + std::to_string(want));
}

}  // namespace

void CudaModel::set_values(const std::vector<CudaLayerValues>& layers) {
  ensure_usable();
  if (layers.size() != layers_.size())
    throw std::invalid_argument("CudaModel.setValues: " + std::to_string(layers.size()) + " layers given, the model has " +
                                std::to_string(layers_.size()));
  const size_t moments = static_cast<size_t>(moment_slots());
  for (size_t i = 0; i < layers.size(); ++i) {
    const CudaLayerValues& v = layers[i];
    const Layer& l = layers_[i];
    check_size(i, v.weight, l.count, "weight");
    check_size(i, v.bias, l.units, "bias");
    if (!v.weight_moments.empty() && v.weight_moments.size() != moments)
      bad(i, std::to_string(v.weight_moments.size()) + " weight optimizer slots given, the optimizer uses " + std::to_string(moments));
    if (!v.bias_moments.empty() && v.bias_moments.size() != moments)
      bad(i, std::to_string(v.bias_moments.size()) + " bias optimizer slots given, the optimizer uses " + std::to_string(moments));
    for (const auto& m : v.weight_moments)
      if (static_cast<int64_t>(m.size()) != l.count) bad(i, "a weight optimizer slot has the wrong size");
    for (const auto& m : v.bias_moments)
      if (static_cast<int64_t>(m.size()) != l.units) bad(i, "a bias optimizer slot has the wrong size");
  }
  set_device(config_.device);
  for (size_t i = 0; i < layers.size(); ++i) {
    const CudaLayerValues& v = layers[i];
    Layer& l = layers_[i];
    auto upload = [&](DeviceBuffer& to, const std::vector<float>& from) {
      if (!from.empty()) to.upload(from.data(), from.size() * sizeof(float), stream_);
    };
    // A dense layer with spare capacity takes its used rows at its row pitch (the spare columns stay zero).
    auto upload_weights = [&](DeviceBuffer& to, const std::vector<float>& from) {
      if (!l.strided()) return upload(to, from);
      std::vector<float> padded(static_cast<size_t>(l.units * l.stride), 0.0f);
      for (int64_t r = 0; r < l.units; ++r) std::copy(from.begin() + r * l.inputs, from.begin() + (r + 1) * l.inputs, padded.begin() + r * l.stride);
      upload(to, padded);
    };
    if (v.weight) upload_weights(l.weight, *v.weight);
    if (v.bias) upload(l.bias, *v.bias);
    for (size_t m = 0; m < v.weight_moments.size(); ++m) upload_weights(l.weight_moments[m], v.weight_moments[m]);
    for (size_t m = 0; m < v.bias_moments.size(); ++m) upload(l.bias_moments[m], v.bias_moments[m]);
  }
  stream_.synchronize();  // a copy that failed says so here, not in the next step
}

}  // namespace np::cuda
