# `longseq train` a tiny byte-level LM for 2 steps, then `longseq generate` from it with and
# without incremental state (greedy, so both must print the same text), and refuse a prompt the
# model cannot take.
file(REMOVE_RECURSE ${OUT})
execute_process(COMMAND ${EXE} train ${ARGS} --out ${OUT}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "training failed (${rc}):\n${out}\n${err}")
endif()
set(gen ${EXE} generate ${OUT} --prompt "GNU " --max-new 12 --temperature 0 --json)
execute_process(COMMAND ${gen} RESULT_VARIABLE rc OUTPUT_VARIABLE cached ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT cached MATCHES "\"cached\":true" OR NOT cached MATCHES "\"prompt_length\":4")
  message(FATAL_ERROR "generate failed (${rc}):\n${cached}\n${err}")
endif()
execute_process(COMMAND ${gen} --no-cache RESULT_VARIABLE rc OUTPUT_VARIABLE plain ERROR_VARIABLE err)
string(REGEX MATCH "\"tokens\":\\[[0-9,]+\\]" t_cached "${cached}")
string(REGEX MATCH "\"tokens\":\\[[0-9,]+\\]" t_plain "${plain}")
if(NOT rc EQUAL 0 OR NOT plain MATCHES "\"why_uncached\":\"caching turned off\""
   OR t_cached STREQUAL "" OR NOT t_cached STREQUAL t_plain)
  message(FATAL_ERROR "cached and recomputed generation differ (${rc}):\n${cached}\n${plain}\n${err}")
endif()
execute_process(COMMAND ${EXE} generate ${OUT} --prompt-ids 1,300
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "`--prompt-ids` entry 300 is outside the model's vocabulary \\[0, 256\\)")
  message(FATAL_ERROR "bad prompt ids not refused (${rc}):\n${out}\n${err}")
endif()
