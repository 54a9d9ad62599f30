#include "binding/workers.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>

#include "binding/args.h"
#include "binding/errors.h"
#include "kernels/thread_pool.h"

namespace npb {

ModelWorker::ModelWorker(Napi::Env env, ModelWrap* wrap, const char* operation)
    : Napi::AsyncWorker(env, operation),
      wrap_(wrap),
      model_(wrap->model()),
      wrap_ref_(Napi::Persistent(wrap->Value())),
      deferred_(Napi::Promise::Deferred::New(env)) {
  wrap->claim(env, operation);
}

void ModelWorker::Execute() {
  try {
    Run();
  } catch (const np::Error& e) {
    error_kind_ = e.kind();
    error_message_ = e.what();
    SetError(error_message_);
  } catch (const std::bad_alloc&) {
    error_message_ = "out of memory";
    SetError(error_message_);
  } catch (const std::exception& e) {
    error_message_ = e.what();
    SetError(error_message_);
  }
}

void ModelWorker::OnOK() {
  wrap_->release();
  Napi::HandleScope scope(Env());
  deferred_.Resolve(Result(Env()));
}

void ModelWorker::OnError(const Napi::Error& e) {
  wrap_->release();
  Napi::HandleScope scope(Env());
  deferred_.Reject(make_error(Env(), error_kind_, error_message_.empty() ? e.Message() : error_message_).Value());
}

namespace {

Napi::Object stats_object(Napi::Env env, const np::BatchStats& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("lossSum", s.loss_sum);
  o.Set("correct", static_cast<double>(s.correct));
  o.Set("samples", static_cast<double>(s.samples));
  return o;
}

}  // namespace

namespace {

// Index of the first NaN or infinity in v, or -1. The exponent test on the
// bits vectorises (std::isfinite in a loop with an early exit does not).
int64_t first_non_finite(const float* v, int64_t n) {
  const int64_t block = 4096;
  for (int64_t b = 0; b < n; b += block) {
    const int64_t e = std::min(n, b + block);
    uint32_t any = 0;
    for (int64_t i = b; i < e; ++i) {
      uint32_t bits;
      std::memcpy(&bits, v + i, sizeof bits);
      any |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
    }
    if (!any) continue;
    for (int64_t i = b; i < e; ++i)
      if (!std::isfinite(v[i])) return i;
  }
  return -1;
}

std::string describe_float(float v) { return std::isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity"; }

}  // namespace

std::shared_ptr<Dataset> read_dataset(const Napi::CallbackInfo& info, const np::Model& model, size_t x_index,
                                      int targets_index, std::shared_ptr<Dataset> reuse) {
  Napi::Env env = info.Env();
  // Refilling a previous fit's buffers (same capacity) skips fresh page faults.
  auto d = reuse ? std::move(reuse) : std::make_shared<Dataset>();
  auto x = typed_arg<float>(info, x_index, "x", -1, napi_float32_array, "Float32Array");
  const int64_t in = model.input_size();
  const int64_t len = static_cast<int64_t>(x.ElementLength());
  check(len % in == 0, env, "x has " + std::to_string(len) + " elements, not a multiple of inputSize " + std::to_string(in));
  d->n = len / in;
  check(d->n > 0, env, "x must hold at least one sample");
  if (targets_index >= 0) {
    const size_t ti = static_cast<size_t>(targets_index);
    if (info.Length() <= ti || !info[ti].IsTypedArray()) throw Napi::TypeError::New(env, "y must be an Int32Array or Float32Array");
    auto t = info[ti].As<Napi::TypedArray>();
    if (t.TypedArrayType() == napi_int32_array) {
      auto labels = t.As<Napi::Int32Array>();
      check(static_cast<int64_t>(labels.ElementLength()) == d->n, env,
            "y has " + std::to_string(labels.ElementLength()) + " labels for " + std::to_string(d->n) + " samples");
      d->labels.assign(labels.Data(), labels.Data() + labels.ElementLength());
      d->values.clear();
    } else if (t.TypedArrayType() == napi_float32_array) {
      auto values = t.As<Napi::Float32Array>();
      const int64_t want = d->n * model.output_size();
      check(static_cast<int64_t>(values.ElementLength()) == want, env,
            "y has " + std::to_string(values.ElementLength()) + " values, expected " + std::to_string(want) +
                " (samples x outputs)");
      d->values.assign(values.Data(), values.Data() + values.ElementLength());
      d->labels.clear();
    } else {
      throw Napi::TypeError::New(env, "y must be an Int32Array or Float32Array");
    }
  }
  d->x.assign(x.Data(), x.Data() + len);
  // Finite inputs only: checked here, in the copy's pass over the data, rather
  // than by a second (slower) scan in JS.
  const int64_t bad = first_non_finite(d->x.data(), len);
  if (bad >= 0) {
    throw Napi::RangeError::New(env, "x[" + std::to_string(bad) + "] (sample " + std::to_string(bad / in) + ", feature " +
                                         std::to_string(bad % in) + ") is " + describe_float(d->x[bad]) +
                                         "; inputs must be finite");
  }
  const int64_t bad_target = first_non_finite(d->values.data(), static_cast<int64_t>(d->values.size()));
  if (bad_target >= 0)
    throw Napi::RangeError::New(env, "y[" + std::to_string(bad_target) + "] is " + describe_float(d->values[bad_target]) +
                                         "; targets must be finite");
  return d;
}

namespace {


// ---- training --------------------------------------------------------------

struct Progress {
  int64_t batches_done;
  double loss_sum;
  int64_t correct;
  int64_t samples;
};

class TrainWorker : public ModelWorker {
 public:
  TrainWorker(Napi::Env env, ModelWrap* wrap, DatasetPtr data, std::vector<int32_t> order, int64_t first,
              int64_t count, int64_t batch_size)
      : ModelWorker(env, wrap, "fit"),
        data_(std::move(data)),
        order_(std::move(order)),
        first_(first),
        count_(count),
        batch_size_(batch_size) {}

  void set_progress(Napi::ThreadSafeFunction tsfn) {
    tsfn_ = tsfn;
    has_progress_ = true;
  }

 protected:
  void Run() override {
    // Release the progress function however Run ends.
    struct ReleaseGuard {
      TrainWorker* w;
      ~ReleaseGuard() {
        if (w->has_progress_) w->tsfn_.Release();
      }
    } guard{this};
    using clock = std::chrono::steady_clock;
    auto last_report = clock::now();
    np::ThreadPool* pool = &np::default_pool();
    const np::Targets targets = data_->targets();
    for (int64_t b = first_; b < first_ + count_; ++b) {
      if (model_.abort_requested.exchange(false)) {
        aborted_ = true;
        break;
      }
      // order_ holds just this call's batches, starting at batch first_.
      const int64_t start = (b - first_) * batch_size_;
      const int64_t size = std::min(batch_size_, data_->n - b * batch_size_);
      // Growth signals (RigL, GradMax) are read after a native call: only its
      // last batch needs to be kept.
      model_.set_batch_may_be_kept(b + 1 == first_ + count_);
      np::BatchStats s = model_.train_batch(data_->x.data(), targets, order_.data() + start, size, pool);
      total_.loss_sum += s.loss_sum;
      total_.correct += s.correct;
      total_.samples += s.samples;
      ++steps_;
      // Progress at most every 50 ms: a tiny model runs thousands of steps a
      // second and would flood the event loop otherwise.
      const auto now = clock::now();
      if (has_progress_ && now - last_report >= std::chrono::milliseconds(50)) {
        last_report = now;
        auto* p = new Progress{steps_, total_.loss_sum, total_.correct, total_.samples};
        napi_status st = tsfn_.NonBlockingCall(p, [](Napi::Env env, Napi::Function fn, Progress* p) {
          std::unique_ptr<Progress> owned(p);
          if (env != nullptr && fn != nullptr)
            fn.Call({Napi::Number::New(env, static_cast<double>(p->batches_done)), Napi::Number::New(env, p->loss_sum),
                     Napi::Number::New(env, static_cast<double>(p->correct)),
                     Napi::Number::New(env, static_cast<double>(p->samples))});
        });
        if (st != napi_ok) delete p;
      }
    }
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = stats_object(env, total_);
    o.Set("steps", static_cast<double>(steps_));
    o.Set("aborted", aborted_);
    return o;
  }

 private:
  DatasetPtr data_;
  std::vector<int32_t> order_;
  int64_t first_, count_, batch_size_;
  Napi::ThreadSafeFunction tsfn_;
  bool has_progress_ = false;
  np::BatchStats total_;
  int64_t steps_ = 0;
  bool aborted_ = false;
};

class EvaluateWorker : public ModelWorker {
 public:
  EvaluateWorker(Napi::Env env, ModelWrap* wrap, DatasetPtr data, int64_t batch_size, bool gradients)
      : ModelWorker(env, wrap, gradients ? "computeGradients" : "evaluate"),
        data_(std::move(data)),
        batch_size_(batch_size),
        gradients_(gradients) {}

 protected:
  void Run() override {
    np::ThreadPool* pool = &np::default_pool();
    stats_ = gradients_ ? model_.compute_gradients(data_->x.data(), data_->targets(), data_->n, pool)
                        : model_.evaluate(data_->x.data(), data_->targets(), data_->n, batch_size_, pool);
  }
  Napi::Value Result(Napi::Env env) override { return stats_object(env, stats_); }

 private:
  DatasetPtr data_;
  int64_t batch_size_;
  bool gradients_;
  np::BatchStats stats_;
};

class PredictWorker : public ModelWorker {
 public:
  PredictWorker(Napi::Env env, ModelWrap* wrap, DatasetPtr data, int64_t batch_size)
      : ModelWorker(env, wrap, "predict"), data_(std::move(data)), batch_size_(batch_size) {}

 protected:
  // The output is allocated here, on the worker thread, so running out of
  // memory rejects the promise (and releases the model) like any other failure.
  void Run() override {
    out_.resize(static_cast<size_t>(data_->n * model_.output_size()));
    model_.predict(data_->x.data(), data_->n, out_.data(), batch_size_, &np::default_pool());
  }
  Napi::Value Result(Napi::Env env) override {
    auto arr = Napi::Float32Array::New(env, out_.size());
    std::copy(out_.begin(), out_.end(), arr.Data());
    return arr;
  }

 private:
  DatasetPtr data_;
  int64_t batch_size_;
  std::vector<float> out_;
};

}  // namespace

// createDataset(x, y) -> a handle (a number) fit() trains from: the data copied
// once and owned by the model until releaseDataset(handle), so the epochs'
// async calls never read JS memory.
Napi::Value create_dataset(const Napi::CallbackInfo& info, ModelWrap* wrap) {
  return Napi::Number::New(info.Env(),
                           static_cast<double>(wrap->keep_dataset(read_dataset(info, wrap->model(), 0, 1, wrap->take_spare_dataset()))));
}

// trainBatches(dataset, order, firstBatch, batchCount, batchSize, progress?)
Napi::Value start_train(const Napi::CallbackInfo& info, ModelWrap* wrap) {
  Napi::Env env = info.Env();
  np::Model& model = wrap->model();
  if (!model.compiled()) throw Napi::Error::New(env, "the model must be compiled before fit()");
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "dataset must be a handle from createDataset()");
  DatasetPtr data = wrap->dataset(static_cast<int64_t>(info[0].As<Napi::Number>().DoubleValue()));
  if (!data) throw Napi::RangeError::New(env, "dataset is not a live handle from createDataset() on this model");
  if (data->x.size() != static_cast<size_t>(data->n * model.input_size()) ||
      (!data->values.empty() && data->values.size() != static_cast<size_t>(data->n * model.output_size())))
    throw Napi::RangeError::New(env, "dataset was made for a model of another shape");
  auto order = typed_arg<int32_t>(info, 1, "order", data->n, napi_int32_array, "Int32Array");
  const int32_t* o = order.Data();
  for (int64_t i = 0; i < data->n; ++i)
    check(o[i] >= 0 && o[i] < data->n, env, "order[" + std::to_string(i) + "] is out of range");
  const int64_t batch_size = int_arg(info, 4, "batchSize", 1, 1 << 30);
  const int64_t batches = (data->n + batch_size - 1) / batch_size;
  const int64_t first = int_arg(info, 2, "firstBatch", 0, batches);
  const int64_t count = int_arg(info, 3, "batchCount", 0, batches - first);
  // Only the slice of the order these batches use.
  const int64_t begin = first * batch_size, end = std::min(data->n, (first + count) * batch_size);
  std::vector<int32_t> slice(o + begin, o + std::max(begin, end));
  // The worker claims the model; if making the progress callback fails (out
  // of memory), the worker never runs, so the claim is dropped with it.
  std::unique_ptr<TrainWorker> worker(new TrainWorker(env, wrap, std::move(data), std::move(slice), first, count, batch_size));
  if (info.Length() > 5 && info[5].IsFunction()) {
    try {
      worker->set_progress(Napi::ThreadSafeFunction::New(env, info[5].As<Napi::Function>(), "neuroplastic.progress", 0, 1));
    } catch (...) {
      wrap->release();
      throw;
    }
  }
  Napi::Promise p = worker->promise();
  worker.release()->Queue();  // napi owns it from here and deletes it when done
  return p;
}

Napi::Value start_evaluate(const Napi::CallbackInfo& info, ModelWrap* wrap) {
  DatasetPtr data = read_dataset(info, wrap->model(), 0, 1);
  const int64_t batch_size = int_arg(info, 2, "batchSize", 1, 1 << 30);
  auto* worker = new EvaluateWorker(info.Env(), wrap, std::move(data), batch_size, false);
  Napi::Promise p = worker->promise();
  worker->Queue();
  return p;
}

Napi::Value start_gradients(const Napi::CallbackInfo& info, ModelWrap* wrap) {
  DatasetPtr data = read_dataset(info, wrap->model(), 0, 1);
  auto* worker = new EvaluateWorker(info.Env(), wrap, std::move(data), 0, true);
  Napi::Promise p = worker->promise();
  worker->Queue();
  return p;
}

Napi::Value start_predict(const Napi::CallbackInfo& info, ModelWrap* wrap) {
  DatasetPtr data = read_dataset(info, wrap->model(), 0, -1);
  const int64_t batch_size = int_arg(info, 1, "batchSize", 1, 1 << 30);
  // The n x outputs result exists twice for a moment: here and in the Float32Array.
  np::check_fits_in_memory(2.0 * sizeof(float) * static_cast<double>(data->n) * static_cast<double>(wrap->model().output_size()),
                           "predict() of " + std::to_string(data->n) + " samples x " +
                               std::to_string(wrap->model().output_size()) + " outputs");
  auto* worker = new PredictWorker(info.Env(), wrap, std::move(data), batch_size);
  Napi::Promise p = worker->promise();
  worker->Queue();
  return p;
}

}  // namespace npb
