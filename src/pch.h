// Precompiled header for the library, the tool and the tests: LibTorch's headers are the bulk of
// every translation unit's compile time. Sources still include what they use.
#pragma once
#include <torch/torch.h>
