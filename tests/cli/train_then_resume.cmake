# `longseq train` for 3 steps with --out, then --resume to 5 steps: the second run must start at
# step 3 and end with a checkpoint at step 5.
file(REMOVE_RECURSE ${OUT})
execute_process(COMMAND ${EXE} train ${ARGS} --set train.steps=3 --out ${OUT}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT EXISTS ${OUT}/step_00000003/model.safetensors)
  message(FATAL_ERROR "first run failed (${rc}):\n${out}\n${err}")
endif()
execute_process(COMMAND ${EXE} train --resume ${OUT} --set train.steps=5
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "resumed from [^\n]*step_00000003 at step 3"
   OR NOT out MATCHES "after 5 steps" OR NOT EXISTS ${OUT}/step_00000005/state.json)
  message(FATAL_ERROR "resume failed (${rc}):\n${out}\n${err}")
endif()
execute_process(COMMAND ${EXE} eval ${OUT} --split validation --max-batches 2
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "step_00000005 at step 5 on copy validation: loss [0-9.]+ accuracy")
  message(FATAL_ERROR "eval failed (${rc}):\n${out}\n${err}")
endif()
