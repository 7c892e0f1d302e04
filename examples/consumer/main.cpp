// Builds a mixer by name from the registry and runs it on a padded batch.
#include <longseq/longseq.h>

#include <torch/torch.h>

#include <iostream>

int main() {
  longseq::MixerConfig config;
  config.dim = 64;
  config.heads = 4;
  config.causal = true;
  auto mixer = longseq::make_mixer("performer", config, {{"features", "32"}});
  auto x = torch::randn({2, 16, 64});                                             // [B, T, C]
  auto padding = longseq::padding_mask_from_lengths(torch::tensor({16, 9}), 16);  // [B, T]
  auto y = mixer->forward(x, padding);                                            // [B, T, C]
  std::cout << "mixer " << mixer->mixer_name() << " output " << y.sizes() << "\n";
  return 0;
}
