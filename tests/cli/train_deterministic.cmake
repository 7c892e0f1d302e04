# Bit-exact training with a fixed thread count: `longseq train` twice on the same config gives
# identical JSONL losses and gradient norms, and a run resumed from its step-3 checkpoint continues
# with exactly the steps (and final evaluation) of the uninterrupted run. EXE, OUT, ARGS (a list:
# the config and the thread count).
file(REMOVE_RECURSE ${OUT})
file(MAKE_DIRECTORY ${OUT})

# The lines of a metrics file without the wall-clock and memory fields, kind step/final only.
function(read_metrics path outvar)
  file(STRINGS ${path} lines)
  set(kept "")
  foreach(line IN LISTS lines)
    if(line MATCHES "\"kind\":\"(step|final)\"")
      string(REGEX REPLACE ",?\"(tokens_per_s|elapsed_s)\":[^,}]*" "" line "${line}")
      string(REGEX REPLACE ",?\"peak_rss_mib\":\\[[-0-9.,e+ ]*\\]" "" line "${line}")
      list(APPEND kept "${line}")
    endif()
  endforeach()
  set(${outvar} "${kept}" PARENT_SCOPE)
endfunction()

foreach(run a b)
  execute_process(COMMAND ${EXE} train ${ARGS} --set train.steps=6 --save-every 3 --keep 0
    --out ${OUT}/${run} --metrics ${OUT}/${run}.jsonl
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "run ${run} failed (${rc}):\n${out}\n${err}")
  endif()
endforeach()
read_metrics(${OUT}/a.jsonl a)
read_metrics(${OUT}/b.jsonl b)
list(LENGTH a n)
if(NOT n EQUAL 7)
  message(FATAL_ERROR "expected 6 step lines and 1 final line, got ${n}:\n${a}")
endif()
if(NOT a STREQUAL b)
  string(REPLACE ";" "\n" a "${a}")
  string(REPLACE ";" "\n" b "${b}")
  message(FATAL_ERROR "two runs of the same config differ:\n${a}\n---\n${b}")
endif()

# Resume from the step-3 checkpoint of run a in a fresh directory.
file(COPY ${OUT}/a/step_00000003 DESTINATION ${OUT}/c)
file(WRITE ${OUT}/c/latest "step_00000003\n")
string(REGEX MATCH "--threads;[0-9]+" threads "${ARGS}")
execute_process(COMMAND ${EXE} train --resume ${OUT}/c ${threads} --metrics ${OUT}/c.jsonl
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "resumed from [^\n]*step_00000003 at step 3")
  message(FATAL_ERROR "resume failed (${rc}):\n${out}\n${err}")
endif()
read_metrics(${OUT}/c.jsonl c)
list(SUBLIST a 3 4 a_tail)
if(NOT a_tail STREQUAL c)
  string(REPLACE ";" "\n" a_tail "${a_tail}")
  string(REPLACE ";" "\n" c "${c}")
  message(FATAL_ERROR "the resumed run differs from the uninterrupted one:\n${a_tail}\n---\n${c}")
endif()
