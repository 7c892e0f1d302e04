#pragma once
/// Experiment configs: one JSON file per experiment (see configs/), plus `--set key=value`
/// overrides by dotted path. Unknown keys and out-of-range values are errors naming the valid
/// choices.

#include <longseq/train.h>

#include <string>
#include <vector>

namespace longseq {

/// Parses a config document (JSON text) with overrides ("train.lr=3e-4",
/// "model.mixers=exact,performer",
/// "task.options.length=256") into a validated TrainConfig. `source` names the text in errors.
TrainConfig parse_train_config(const std::string& json_text,
                               const std::vector<std::string>& overrides,
                               const std::string& source = "config");
/// Reads `path` and parses it (an empty path means the built-in defaults).
TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides);
/// The resolved config as JSON text (saved beside checkpoints; parse_train_config reads it back).
std::string train_config_to_json(const TrainConfig& config);

}  // namespace longseq
