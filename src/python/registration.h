#pragma once
// The pieces of TORCH_LIBRARY(longseq) (src/python/library.cpp): the functional ops (ops.cpp) and
// the module classes that run registry mixers and whole models for Python (modules.cpp).
#include <torch/library.h>

namespace longseq::python {

void register_ops(torch::Library& m);
void register_modules(torch::Library& m);

}  // namespace longseq::python
