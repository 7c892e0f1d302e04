#pragma once
/// Gradient-flow diagnostics: how the gradient of a task loss reaches each step of each layer's
/// input (vanishing / exploding gradients through time), and the largest singular value of the
/// one-step state Jacobian ∂s_{t+1}/∂s_t of recurrent layers.

#include <longseq/model.h>
#include <longseq/tasks.h>

#include <string>
#include <vector>

namespace longseq {

struct LayerGradientProfile {
  int64_t layer = 0;  ///< 0 .. layers − 1; `layers` is the stream after the last block
  std::string mixer;  ///< "" for the final stream
  std::vector<double> grad_norm;  ///< [T] ‖∂L/∂x_t‖ of the layer's input stream, mean over batch
  /// exp(−slope) of the least-squares line through log ‖∂L/∂x_t‖ against t: the factor by which
  /// the gradient is multiplied per step back in time (< 1 vanishing, > 1 exploding).
  double backward_factor = 0;
  /// (t, σ_max(∂s_{t+1}/∂s_t)) at probe steps, by power iteration, for mixers with a fixed-size
  /// state; empty otherwise, with the reason in `sigma_note`.
  std::vector<std::pair<int64_t, double>> sigma_max;
  std::string sigma_note;
};

struct GradientProfile {
  double loss = 0;
  int64_t seq_len = 0;
  std::vector<LayerGradientProfile> layers;
};

/// Runs the model on `batch`, backpropagates the task loss and profiles every layer. Probe steps
/// default to T/4, T/2, 3T/4. `loss_last` > 0 counts the loss of per-position tasks on the last
/// `loss_last` positions only, so ∂L/∂x_t at earlier t is purely what travels back through time
/// (the copy task's recall positions: 10). Does not change the parameters (.grad is zeroed after).
GradientProfile diagnose_gradients(SequenceModel& model, const TaskInfo& info, Batch batch,
                                   int64_t power_iterations = 20,
                                   std::vector<int64_t> probe_steps = {}, int64_t loss_last = 0);

/// The profile as JSON text.
std::string gradient_profile_json(const GradientProfile& p);

}  // namespace longseq
