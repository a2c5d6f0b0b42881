// Trainer: the JS handle over a native training step. It holds references to the caller's
// weight arrays (a model's layer kernels and biases), which each step updates in place.
#include <string>
#include <vector>

#include "addon.h"
#include "args.h"
#include "maas/train.h"
#include "typed.h"

namespace maas::binding {

namespace {

float NumberOr(Napi::Object o, const char* key, float fallback) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? static_cast<float>(v.As<Napi::Number>().DoubleValue()) : fallback;
}

class TrainerWrap : public Napi::ObjectWrap<TrainerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Trainer",
                       {
                           InstanceMethod<&TrainerWrap::SetOptimizer>("setOptimizer"),
                           InstanceMethod<&TrainerWrap::Step>("step"),
                           InstanceMethod<&TrainerWrap::Gradients>("gradients"),
                           InstanceMethod<&TrainerWrap::Evaluate>("evaluate"),
                           InstanceMethod<&TrainerWrap::Dispose>("dispose"),
                           InstanceAccessor<&TrainerWrap::Steps>("steps"),
                       });
  }

  // new Trainer(specs, kernels, biases, regularizers: {l1, l2}[], loss, precision?: 'fp32' | 'bf16'):
  // 'bf16' runs the forward and backward products on this thread's bf16 kernel (operands rounded
  // to bf16, sums in fp32); the weights, gradients and updates stay fp32.
  explicit TrainerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainerWrap>(info) {
    Napi::Env env = info.Env();
    addon_ = env.GetInstanceData<MaasAddon>();
    if (!info[0].IsArray() || !info[1].IsArray() || !info[2].IsArray() || !info[3].IsArray()) {
      ThrowCoded(env, "MAAS_ERR_ARG_TYPE", "Trainer: expected arrays of specs, kernels, biases and regularizers", true);
    }
    Napi::Array specs = info[0].As<Napi::Array>(), kernels = info[1].As<Napi::Array>();
    Napi::Array biases = info[2].As<Napi::Array>(), regs = info[3].As<Napi::Array>();
    const uint32_t count = specs.Length();
    if (count == 0 || kernels.Length() != count || biases.Length() != count || regs.Length() != count) {
      ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "Trainer: expected one kernel, bias and regularizer per layer", true);
    }
    std::vector<TrainLayer> layers(count);
    refs_ = Napi::Persistent(Napi::Array::New(env));
    for (uint32_t i = 0; i < count; ++i) {
      Napi::Object s = specs.Get(i).As<Napi::Object>();
      TrainLayer& l = layers[i];
      l.spec = DenseLayerSpec{static_cast<uint32_t>(NumberOr(s, "in", 0)), static_cast<uint32_t>(NumberOr(s, "out", 0)),
                              static_cast<Activation>(static_cast<uint32_t>(NumberOr(s, "activation", 0))),
                              NumberOr(s, "alpha", 0), s.Get("hasBias").ToBoolean().Value()};
      if (static_cast<uint32_t>(l.spec.act) >= kActivationCount)
        ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "Trainer: activation out of range", true);
      const ActivationParams p = ParseActivationParams(env, s, l.spec.act, "Trainer: layer " + std::to_string(i));
      l.spec.max_value = p.max_value;
      l.spec.threshold = p.threshold;
      Napi::Value k = kernels.Get(i), b = biases.Get(i);
      if (!k.IsTypedArray() || k.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
          k.As<Napi::TypedArray>().ElementLength() != static_cast<size_t>(l.spec.in) * l.spec.out) {
        ThrowCoded(env, "MAAS_ERR_ARG_RANGE",
                   "Trainer: layer " + std::to_string(i) + " kernel must be a Float32Array of in*out", true);
      }
      l.kernel = k.As<Napi::Float32Array>().Data();
      refs_.Value().Set(refs_.Value().Length(), k);
      if (l.spec.has_bias) {
        if (!b.IsTypedArray() || b.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
            b.As<Napi::TypedArray>().ElementLength() != l.spec.out) {
          ThrowCoded(env, "MAAS_ERR_ARG_RANGE",
                     "Trainer: layer " + std::to_string(i) + " bias must be a Float32Array of out", true);
        }
        l.bias = b.As<Napi::Float32Array>().Data();
        refs_.Value().Set(refs_.Value().Length(), b);
      } else {
        l.bias = nullptr;
      }
      Napi::Object r = regs.Get(i).IsObject() ? regs.Get(i).As<Napi::Object>() : Napi::Object::New(env);
      l.l1 = NumberOr(r, "l1", 0);
      l.l2 = NumberOr(r, "l2", 0);
    }
    const double loss = info[4].IsNumber() ? info[4].As<Napi::Number>().DoubleValue() : -1;
    if (!(loss >= 0 && loss < kLossCount))
      ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "Trainer: loss code out of range", true);
    sparse_loss_ = static_cast<Loss>(static_cast<uint32_t>(loss)) == Loss::kSparseCategoricalCrossentropy;
    WeightFormat products = WeightFormat::kF32;
    if (info.Length() > 5 && info[5].IsString()) {
      const std::string name = info[5].As<Napi::String>();
      if (!ParseWeightFormat(name.c_str(), &products))
        ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "Trainer: unknown precision '" + name + "'", true);
    }
    trainer_ = std::make_unique<Trainer>(std::move(layers), static_cast<Loss>(static_cast<uint32_t>(loss)),
                                         *SelectF32Gemm(addon_->isa_cap(), products));
    const Status s = trainer_->Check();
    if (s != Status::kOk) {
      ThrowCoded(env, "MAAS_ERR_LOSS_OUTPUT_MISMATCH",
                 "Trainer: the loss does not fit the output layer (categorical losses need a softmax output; "
                 "binaryCrossentropy cannot follow softmax)",
                 true);
    }
  }

 private:
  void CheckLive(Napi::Env env) {
    if (!trainer_) ThrowCoded(env, "MAAS_ERR_MODEL_DISPOSED", "Trainer: the trainer was disposed");
  }

  Napi::Value SetOptimizer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckLive(env);
    if (!info[0].IsObject()) ThrowCoded(env, "MAAS_ERR_ARG_TYPE", "setOptimizer: expected an options object", true);
    Napi::Object o = info[0].As<Napi::Object>();
    OptimizerConfig c;
    const float kind = NumberOr(o, "kind", -1);
    if (!(kind >= 0 && kind < kOptimizerCount))
      ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "setOptimizer: kind out of range", true);
    c.kind = static_cast<OptimizerKind>(static_cast<uint32_t>(kind));
    c.learning_rate = NumberOr(o, "learningRate", c.learning_rate);
    c.momentum = NumberOr(o, "momentum", c.momentum);
    c.nesterov = o.Get("nesterov").ToBoolean().Value();
    c.beta1 = NumberOr(o, "beta1", c.beta1);
    c.beta2 = NumberOr(o, "beta2", c.beta2);
    c.epsilon = NumberOr(o, "epsilon", c.epsilon);
    c.rho = NumberOr(o, "rho", c.rho);
    c.weight_decay = NumberOr(o, "weightDecay", c.weight_decay);
    c.clip_norm = NumberOr(o, "clipNorm", c.clip_norm);
    trainer_->set_optimizer(c);
    return env.Undefined();
  }

  struct BatchArgs {
    const float* x;
    const float* y;
    size_t batch;
    float* predictions;  // optional: batch×out
  };

  BatchArgs ReadBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckLive(env);
    size_t xl = 0, yl = 0;
    const float* x = ArgTypedData<float>(info, 0, "x", napi_float32_array, &xl);
    const float* y = ArgTypedData<float>(info, 1, "y", napi_float32_array, &yl);
    const size_t batch = ArgSize(info, 2, "batch");
    const TrainLayer& first = trainer_->layer(0);
    const TrainLayer& last = trainer_->layer(trainer_->layer_count() - 1);
    const size_t y_width = sparse_loss_ ? 1 : last.spec.out;
    if (batch == 0 || xl != batch * first.spec.in || yl != batch * y_width) {
      ThrowCoded(env, "MAAS_ERR_SHAPE_MISMATCH",
                 "expected x of " + std::to_string(batch * first.spec.in) + " and y of " +
                     std::to_string(batch * y_width) + " floats for batch " + std::to_string(batch) + " but received " +
                     std::to_string(xl) + " and " + std::to_string(yl),
                 true);
    }
    float* preds = nullptr;
    if (info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsNull()) {
      size_t pl = 0;
      preds = ArgTypedData<float>(info, 3, "predictions", napi_float32_array, &pl);
      if (pl != batch * last.spec.out)
        ThrowCoded(env, "MAAS_ERR_SHAPE_MISMATCH", "predictions must hold batch*out floats", true);
    }
    return BatchArgs{x, y, batch, preds};
  }

  Napi::Value Result(Napi::Env env, const BatchArgs& b, const StepResult& r) {
    if (b.predictions) {
      const size_t n = b.batch * trainer_->layer(trainer_->layer_count() - 1).spec.out;
      std::copy(trainer_->predictions(), trainer_->predictions() + n, b.predictions);
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("loss", r.loss);
    out.Set("penalty", r.penalty);
    if (r.grad_norm >= 0) out.Set("gradNorm", r.grad_norm);
    return out;
  }

  // step(x, y, batch, predictions?) -> { loss, penalty, gradNorm (with clipNorm set) }
  Napi::Value Step(const Napi::CallbackInfo& info) {
    const BatchArgs b = ReadBatch(info);
    StepResult r;
    const Status s = trainer_->Step(b.x, b.y, b.batch, &addon_->pool(), addon_->threads(), &r);
    if (s != Status::kOk) ThrowStatus(info.Env(), s, "step: invalid targets or arguments");
    return Result(info.Env(), b, r);
  }

  // gradients(x, y, batch) -> { loss, kernels: Float32Array[], biases: Float32Array[] } (no update)
  Napi::Value Gradients(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const BatchArgs b = ReadBatch(info);
    StepResult r;
    const Status s = trainer_->Gradients(b.x, b.y, b.batch, &addon_->pool(), addon_->threads(), &r);
    if (s != Status::kOk) ThrowStatus(env, s, "gradients: invalid targets or arguments");
    Napi::Object out = Result(env, b, r).As<Napi::Object>();
    Napi::Array kernels = Napi::Array::New(env), biases = Napi::Array::New(env);
    for (size_t l = 0; l < trainer_->layer_count(); ++l) {
      const TrainLayer& layer = trainer_->layer(l);
      const size_t kn = static_cast<size_t>(layer.spec.in) * layer.spec.out;
      Napi::Float32Array k = Napi::Float32Array::New(env, kn);
      std::copy(trainer_->kernel_grad(l), trainer_->kernel_grad(l) + kn, k.Data());
      Napi::Float32Array bb = Napi::Float32Array::New(env, layer.spec.out);
      std::copy(trainer_->bias_grad(l), trainer_->bias_grad(l) + layer.spec.out, bb.Data());
      kernels.Set(static_cast<uint32_t>(l), k);
      biases.Set(static_cast<uint32_t>(l), bb);
    }
    out.Set("kernels", kernels);
    out.Set("biases", biases);
    return out;
  }

  // evaluate(x, y, batch, predictions?) -> data loss
  Napi::Value Evaluate(const Napi::CallbackInfo& info) {
    const BatchArgs b = ReadBatch(info);
    double loss = 0;
    const Status s = trainer_->EvaluateLoss(b.x, b.y, b.batch, &addon_->pool(), addon_->threads(), &loss);
    if (s != Status::kOk) ThrowStatus(info.Env(), s, "evaluate: invalid targets or arguments");
    StepResult r;
    r.loss = loss;
    return Result(info.Env(), b, r);
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    trainer_.reset();
    if (!refs_.IsEmpty()) refs_.Reset();
    return info.Env().Undefined();
  }

  Napi::Value Steps(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), trainer_ ? static_cast<double>(trainer_->steps()) : 0);
  }

  MaasAddon* addon_ = nullptr;
  std::unique_ptr<Trainer> trainer_;
  Napi::Reference<Napi::Array> refs_;
  bool sparse_loss_ = false;
};

}  // namespace

void RegisterTrainer(Napi::Env env, Napi::Object exports) { exports.Set("Trainer", TrainerWrap::Define(env)); }

}  // namespace maas::binding
