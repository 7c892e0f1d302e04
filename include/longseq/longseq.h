#pragma once
/// Umbrella header: the mixer interface, the registry, the functional cores and every mixer.
#include <longseq/atomic_file.h>
#include <longseq/attention.h>
#include <longseq/mixer.h>
#include <longseq/mixers/exact.h>
#include <longseq/mixers/linformer.h>
#include <longseq/mixers/longformer.h>
#include <longseq/mixers/performer.h>
#include <longseq/mixers/reformer.h>
#include <longseq/model.h>
#include <longseq/registry.h>
#include <longseq/safetensors.h>
#include <longseq/tasks.h>
#include <longseq/train.h>
#include <longseq/config.h>
#include <longseq/generate.h>
#include <longseq/version.h>
