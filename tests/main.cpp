// The test binary's main: OpenBLAS at the CPU's core first (re-executing once if needed, as the
// tool does; longseq/machine.h), then GoogleTest.
#include <longseq/machine.h>

#include <gtest/gtest.h>

int main(int argc, char** argv) {
  longseq::fix_blas_core_and_reexec(argv);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
