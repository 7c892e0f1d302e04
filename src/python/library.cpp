// The one TORCH_LIBRARY block of the `longseq` namespace: Python loads liblongseq_torch.so with
// torch.ops.load_library and finds the ops under torch.ops.longseq and the classes under
// torch.classes.longseq.
#include "python/registration.h"

TORCH_LIBRARY(longseq, m) {
  longseq::python::register_ops(m);
  longseq::python::register_modules(m);
}
