# libFuzzer targets (fuzz/, docs/fuzzing.md). Off by default; needs clang (Debian's clang-14):
#   CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
#     -DLONGSEQ_FUZZ=ON -DLONGSEQ_BUILD_TESTS=OFF -DLONGSEQ_BUILD_TOOLS=OFF \
#     -DLONGSEQ_BUILD_BENCHMARKS=OFF -DLONGSEQ_BUILD_PYTHON=OFF
# Included from the top-level CMakeLists.txt right after the `longseq` target is created. The
# library gets -fsanitize=fuzzer-no-link,address,undefined (coverage + ASan/UBSan on the code under
# test); the kernels object library is defined later in that file, so its flags and the fuzz
# executables are added by a deferred call that runs at the end of the top-level directory.
option(LONGSEQ_FUZZ "Build the libFuzzer targets in fuzz/ (clang only; instruments the library)" OFF)

if(LONGSEQ_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "LONGSEQ_FUZZ=ON needs clang (e.g. CC=clang-14 CXX=clang++-14), "
                        "not ${CMAKE_CXX_COMPILER_ID}")
  endif()
  set(LONGSEQ_FUZZ_COMPILE_FLAGS -fsanitize=fuzzer-no-link,address,undefined
      -fno-omit-frame-pointer -g)
  set(LONGSEQ_FUZZ_LINK_FLAGS -fsanitize=fuzzer,address,undefined)
  target_compile_options(longseq PRIVATE ${LONGSEQ_FUZZ_COMPILE_FLAGS})

  function(longseq_fuzz_finish)
    if(TARGET longseq_cpu_kernels)
      target_compile_options(longseq_cpu_kernels PRIVATE ${LONGSEQ_FUZZ_COMPILE_FLAGS})
    endif()
    foreach(name safetensors config checkpoint idx bytes listops)
      add_executable(fuzz_${name} ${PROJECT_SOURCE_DIR}/fuzz/fuzz_${name}.cpp)
      target_include_directories(fuzz_${name} PRIVATE ${PROJECT_SOURCE_DIR}/src)
      target_link_libraries(fuzz_${name} PRIVATE longseq ZLIB::ZLIB nlohmann_json::nlohmann_json)
      target_compile_options(fuzz_${name} PRIVATE ${LONGSEQ_FUZZ_COMPILE_FLAGS})
      target_link_options(fuzz_${name} PRIVATE ${LONGSEQ_FUZZ_LINK_FLAGS})
      set_target_properties(fuzz_${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/fuzz)
    endforeach()
    # Writes the seed corpora (fuzz/corpus/<target>/) with the project's own writers; a plain
    # program (no libFuzzer main), run by scripts/fuzz.sh --seeds.
    add_executable(fuzz_make_corpora ${PROJECT_SOURCE_DIR}/fuzz/make_corpora.cpp)
    target_include_directories(fuzz_make_corpora PRIVATE ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(fuzz_make_corpora PRIVATE longseq ZLIB::ZLIB)
    target_compile_options(fuzz_make_corpora PRIVATE ${LONGSEQ_FUZZ_COMPILE_FLAGS})
    # fuzzer-no-link at link time: the libFuzzer runtime without its main (the library's
    # coverage counters need it), the program keeps its own main.
    target_link_options(fuzz_make_corpora PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
    set_target_properties(fuzz_make_corpora PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/fuzz)
  endfunction()
  cmake_language(DEFER CALL longseq_fuzz_finish)
endif()
