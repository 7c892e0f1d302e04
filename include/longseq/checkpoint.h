#pragma once
/// Training checkpoints: a directory per save, written atomically (a temporary directory whose
/// files are fsynced, then renamed into place), holding
///   model.safetensors      weights and buffers (standard layout, `__metadata__` format pt)
///   optimizer.safetensors  AdamW moments and step counts per parameter index
///   state.json             step, counters, the CPU RNG state and the resolved config
/// `out_dir/latest` names the newest one. Loading refuses a corrupt or mismatched checkpoint with
/// a message, before changing the trainer.

#include <longseq/train.h>

#include <string>

namespace longseq {

/// Saves into `out_dir/step_<step>` and updates `out_dir/latest`; keeps the newest `keep_last`
/// (0 = all). Returns the checkpoint directory.
std::string save_checkpoint(Trainer& trainer, const std::string& out_dir, int64_t keep_last = 3);

/// Throws naming the problem unless checkpoints can be saved into `out_dir` with `keep_last`:
/// keep_last >= 0, and out_dir is a writable directory (or can be created) that is not itself a
/// checkpoint. `longseq train` calls it before training, so a bad `--out` is not found at the end.
void check_checkpoint_dir(const std::string& out_dir, int64_t keep_last);

/// Removes `out_dir/step_*.tmp.<pid>` directories and `out_dir/latest.tmp.<pid>` files left by
/// saves that were killed (their process is gone); a save in progress in a live process is left
/// alone. Returns how many were removed.
int64_t clean_stale_checkpoint_temps(const std::string& out_dir);

/// `path` is a checkpoint directory or an out_dir (then its `latest` is used).
std::string resolve_checkpoint(const std::string& path);

/// The resolved config stored in a checkpoint.
TrainConfig checkpoint_config(const std::string& path);

/// Restores weights, optimizer state, step, counters and the RNG into `trainer`, whose config must
/// match the checkpoint's (else an error naming the first difference). All or nothing: every file
/// is read and checked first (state.json fields and RNG state, weights' names, shapes, dtypes and
/// finiteness, complete and finite optimizer moments with non-negative second moments and steps),
/// and a refused checkpoint leaves the trainer as it was.
void load_checkpoint(Trainer& trainer, const std::string& path);

}  // namespace longseq
