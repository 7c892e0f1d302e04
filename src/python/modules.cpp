// Registry mixers and whole models for Python, as TorchScript custom classes
// (torch.classes.longseq.Mixer / .Model). Python's longseq.nn modules hold one each and register
// the C++ module's own parameter and buffer tensors as theirs: the same tensors, not copies, so
// the C++ forward reads what the Python optimizer updates, gradients land on the tensors Python
// sees, and `.to()` / `.double()` (which replace a tensor's data in place) reach the C++ module.
// No mixer or model math exists on the Python side.
#include "python/registration.h"

#include <longseq/checkpoint.h>
#include <longseq/config.h>
#include <longseq/generate.h>
#include <longseq/registry.h>
#include <longseq/safetensors.h>
#include <longseq/train.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/custom_class.h>

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>
#include <tuple>

namespace longseq::python {
namespace {

using OptTensor = c10::optional<at::Tensor>;
using TensorDict = c10::Dict<std::string, at::Tensor>;

at::Tensor value_or_undefined(const OptTensor& t) { return t.has_value() ? *t : at::Tensor(); }

TensorDict parameters_of(const torch::nn::Module& m) {
  TensorDict d;
  for (const auto& p : m.named_parameters()) d.insert(p.key(), p.value());
  return d;
}

TensorDict buffers_of(const torch::nn::Module& m) {
  TensorDict d;
  for (const auto& b : m.named_buffers()) d.insert(b.key(), b.value());
  return d;
}

// {"key": "value", ...} with string values (Python formats them from the registry's types).
std::map<std::string, std::string> string_map(const std::string& owner, const std::string& text) {
  std::map<std::string, std::string> out;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, owner, ": options are not valid JSON: ", e.what());
  }
  TORCH_CHECK(j.is_object(), owner, ": expected the options as a JSON object, got ", j.dump());
  for (const auto& [k, v] : j.items()) {
    TORCH_CHECK(v.is_string(), owner, ": option `", k, "` must be passed as text, got ", v.dump());
    out[k] = v.get<std::string>();
  }
  return out;
}

Split split_of(const std::string& name) {
  if (name == "train") return Split::kTrain;
  if (name == "validation") return Split::kValidation;
  TORCH_CHECK(name == "test", "longseq.Model: expected `split` train, validation or test, got '",
              name, "'");
  return Split::kTest;
}

// One registry mixer, built once from its name and options.
class Mixer : public torch::CustomClassHolder {
 public:
  Mixer(std::string name, std::string options_json)
      : mixer_(make_mixer(name, MixerConfig{}, string_map(name, options_json))) {}

  TensorDict parameters() const { return parameters_of(*mixer_); }
  TensorDict buffers() const { return buffers_of(*mixer_); }

  at::Tensor forward(const at::Tensor& x, const OptTensor& key_padding, bool training) {
    mixer_->train(training);
    return mixer_->forward(x, value_or_undefined(key_padding));  // [B, T, C]
  }

  std::string step_unsupported() const { return mixer_->step_unsupported(); }
  void reset_state() { state_ = DecodeState{}; }
  /// x [B, n, C]: the next n positions of the sequence begun after the last reset_state().
  at::Tensor step(const at::Tensor& x) {
    const std::string why = mixer_->step_unsupported();
    TORCH_CHECK(why.empty(), mixer_->name(), ": step() is not supported: ", why);
    mixer_->eval();
    auto y = mixer_->step(x, state_);  // [B, n, C]
    return y;
  }
  int64_t position() const { return state_.position; }

 private:
  SequenceMixer mixer_;
  DecodeState state_;
};

// A whole model with its task and training config, as `longseq train` builds it (Trainer), so
// that checkpoints, batches and evaluation are the CLI's own.
class Model : public torch::CustomClassHolder {
 public:
  /// `config_json`: a training config (the JSON of `longseq train --config`); or, with
  /// `checkpoint` set, empty: the checkpoint's own config, and its weights are loaded.
  Model(std::string config_json, std::string checkpoint) {
    if (checkpoint.empty()) {
      trainer_ = std::make_unique<Trainer>(parse_train_config(config_json, {}, "config"));
      return;
    }
    const std::string dir = resolve_checkpoint(checkpoint);
    trainer_ = std::make_unique<Trainer>(checkpoint_config(dir));
    load(dir);
  }

  std::string config_json() const { return train_config_to_json(trainer_->config()); }
  TensorDict parameters() const { return parameters_of(*trainer_->model()); }
  TensorDict buffers() const { return buffers_of(*trainer_->model()); }

  at::Tensor forward(const at::Tensor& input, const OptTensor& key_padding, bool training) {
    trainer_->model()->train(training);
    return trainer_->model()->forward(input, value_or_undefined(key_padding));
  }

  /// Batch `index` of `split` as the CLI sees it: (inputs, targets, loss_mask, key_padding);
  /// an absent mask is None in Python.
  std::tuple<at::Tensor, at::Tensor, OptTensor, OptTensor> batch(const std::string& split,
                                                                 int64_t index,
                                                                 int64_t batch_size) const {
    TORCH_CHECK(index >= 0, "longseq.Model.batch: expected `index` >= 0, got ", index);
    TORCH_CHECK(batch_size > 0, "longseq.Model.batch: expected `batch_size` > 0, got ", batch_size);
    const auto b = trainer_->task().batch(split_of(split), index, batch_size);
    auto opt = [](const at::Tensor& t) { return t.defined() ? OptTensor(t) : OptTensor(); };
    return {b.inputs, b.targets, opt(b.loss_mask), opt(b.key_padding)};
  }

  /// (loss, accuracy (-1 for mse), count) over `split`, as `longseq eval` computes it.
  std::tuple<double, double, int64_t> evaluate(const std::string& split, int64_t batch_size,
                                               int64_t max_batches) {
    const auto r =
        longseq::evaluate(trainer_->model(), trainer_->task(), split_of(split),
                          batch_size > 0 ? batch_size : trainer_->config().batch_size, max_batches);
    return {r.loss, r.accuracy, r.count};
  }

  at::Tensor generate(const at::Tensor& prompt, int64_t max_new, double temperature, int64_t top_k,
                      int64_t seed, bool use_cache) {
    TORCH_CHECK(seed >= 0, "longseq.Model.generate: expected `seed` >= 0, got ", seed);
    GenerateOptions o;
    o.max_new = max_new;
    o.temperature = temperature;
    o.top_k = top_k;
    o.seed = static_cast<uint64_t>(seed);
    o.use_cache = use_cache;
    o.validate();
    return longseq::generate(trainer_->model(), prompt, o).tokens;  // [B, P + max_new]
  }

  std::string step_unsupported() const { return trainer_->model()->step_unsupported(); }
  void reset_state() { state_ = ModelDecodeState{}; }
  /// tokens [B, n]: outputs [B, n, ·] for the next n positions after the last reset_state().
  at::Tensor step(const at::Tensor& tokens) {
    const std::string why = trainer_->model()->step_unsupported();
    TORCH_CHECK(why.empty(), "longseq.Model.step: not supported: ", why);
    trainer_->model()->eval();
    return trainer_->model()->step(tokens, state_);
  }

  /// Writes a checkpoint that `longseq eval`, `generate` and `train --resume` read: the current
  /// weights, labelled `step` (which must be within the config's train.steps), with an empty
  /// optimizer state (Python trains with its own optimizer).
  std::string save(const std::string& out_dir, int64_t step, int64_t keep_last) {
    TORCH_CHECK(step >= 0 && step <= trainer_->config().steps,
                "longseq.Model.save_checkpoint: expected `step` in [0, train.steps = ",
                trainer_->config().steps, "], got ", step,
                " (raise train.steps in the config to label more steps)");
    trainer_->optimizer().state().clear();
    trainer_->restore_counters(step, 0, 0);
    return save_checkpoint(*trainer_, out_dir, keep_last);
  }

  /// Loads a checkpoint of the same model and task config into these tensors (in place). The
  /// process's global RNG, which a training resume restores, is left as it was.
  void load(const std::string& path) {
    auto gen = at::detail::getDefaultCPUGenerator();
    const auto rng = gen.get_state();
    try {
      load_checkpoint(*trainer_, path);
    } catch (...) {
      gen.set_state(rng);
      throw;
    }
    gen.set_state(rng);
  }

 private:
  std::unique_ptr<Trainer> trainer_;
  ModelDecodeState state_;
};

}  // namespace

void register_modules(torch::Library& m) {
  m.class_<Mixer>("Mixer")
      .def(torch::init<std::string, std::string>())
      .def("parameters", &Mixer::parameters)
      .def("buffers", &Mixer::buffers)
      .def("forward", &Mixer::forward)
      .def("step_unsupported", &Mixer::step_unsupported)
      .def("reset_state", &Mixer::reset_state)
      .def("step", &Mixer::step)
      .def("position", &Mixer::position);
  m.class_<Model>("Model")
      .def(torch::init<std::string, std::string>())
      .def("config_json", &Model::config_json)
      .def("parameters", &Model::parameters)
      .def("buffers", &Model::buffers)
      .def("forward", &Model::forward)
      .def("batch", &Model::batch)
      .def("evaluate", &Model::evaluate)
      .def("generate", &Model::generate)
      .def("step_unsupported", &Model::step_unsupported)
      .def("reset_state", &Model::reset_state)
      .def("step", &Model::step)
      .def("save", &Model::save)
      .def("load", &Model::load);
  // The registry as `longseq list --json` prints it: what longseq.nn builds its classes from.
  m.def("registry_json() -> str", [] { return mixer_registry_json(); });
  m.def("load_safetensors(str path) -> Dict(str, Tensor)", [](const std::string& path) {
    c10::Dict<std::string, at::Tensor> d;
    for (auto& [name, t] : load_safetensors(path)) d.insert(name, t);
    return d;
  });
}

}  // namespace longseq::python
