// The tiny trainer whose checkpoint is fuzz_checkpoint's template and fuzz_make_corpora's
// checkpoint seed: both must build the same model, so it is written once, here.
#pragma once

#include <longseq/train.h>

namespace longseq_fuzz {

// Task copy (blanks 10), 2 causal exact layers, dim 16, heads 2, seed 5.
inline longseq::TrainConfig tiny_trainer_config() {
  longseq::TrainConfig c;
  c.task = "copy";
  c.task_options = {{"blanks", "10"}};
  c.model.layers = 2;
  c.model.mixers = {"exact"};
  c.model.mixer.dim = 16;
  c.model.mixer.heads = 2;
  c.model.mixer.causal = true;
  c.model.ffn_mult = 2;
  c.steps = 8;
  c.batch_size = 2;
  c.warmup = 2;
  c.eval_every = 0;
  c.seed = 5;
  return c;
}

}  // namespace longseq_fuzz
