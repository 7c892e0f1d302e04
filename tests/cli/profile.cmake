# `longseq bench --profile` and `longseq train --profile-steps`: each prints the op table (a fused
# kernel among its rows, the share of the limit in the header), writes a chrome trace that parses
# as {"traceEvents": [...]}, and bench's JSON carries every row's share of the limit and its ops.
file(REMOVE_RECURSE ${OUT})

function(check_trace path)
  if(NOT EXISTS ${path})
    message(FATAL_ERROR "no trace at ${path}")
  endif()
  file(READ ${path} trace)
  string(JSON n ERROR_VARIABLE bad LENGTH "${trace}" traceEvents)
  if(bad OR n LESS 1)
    message(FATAL_ERROR "${path} is not a chrome trace with events: ${bad}")
  endif()
  string(JSON first GET "${trace}" traceEvents 0 ph)
  if(NOT first STREQUAL "X")
    message(FATAL_ERROR "${path}: the first event's phase is '${first}', expected X")
  endif()
endfunction()

# Every op listed (--profile-top 1000): which ops make a short list depends on their timings.
file(REMOVE_RECURSE ${OUT})
execute_process(COMMAND ${EXE} bench --mixers exact,performer --seq-lens 64 --heads 2 --head-dim 16
    --repeats 1 --warmup 0 --threads 1 --profile --profile-top 1000 --trace-dir ${OUT}/traces
    --json ${OUT}/bench.json
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "%limit"
   OR NOT out MATCHES "longseq::flash_attention_backward"
   OR NOT out MATCHES "longseq::performer_(features|causal|)_?(forward|backward)"
   OR NOT out MATCHES "# profile: [0-9.]+ ms by the clock")
  message(FATAL_ERROR "bench --profile failed (${rc}):\n${out}\n${err}")
endif()
check_trace(${OUT}/traces/exact_T64_fwd_bwd.trace.json)
check_trace(${OUT}/traces/performer_T64_fwd_bwd.trace.json)
file(READ ${OUT}/bench.json json)
foreach(i 0 1)
  string(JSON pct GET "${json}" rows ${i} pct_of_limit)
  string(JSON flops GET "${json}" rows ${i} flops)
  string(JSON bound GET "${json}" rows ${i} bound)
  string(JSON ops LENGTH "${json}" rows ${i} profile ops)
  if(pct LESS_EQUAL 0 OR flops LESS_EQUAL 0 OR NOT bound MATCHES "^(flops|bytes)$" OR ops LESS 3)
    message(FATAL_ERROR "row ${i} of bench.json lacks its limit or profile: pct ${pct}, "
                        "flops ${flops}, bound ${bound}, ${ops} ops")
  endif()
endforeach()

execute_process(COMMAND ${EXE} train ${ARGS} --set train.steps=4 --profile-steps 2
    --profile-dir ${OUT}/train_profile --profile-top 1000 --threads 1
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "profile of training steps 1\\.\\.2"
   OR NOT out MATCHES "counted limit [0-9.]+ ms per step"
   OR NOT out MATCHES "aten::(addmm|mm|bmm|matmul)" OR NOT out MATCHES "nothing was saved")
  message(FATAL_ERROR "train --profile-steps failed (${rc}):\n${out}\n${err}")
endif()
check_trace(${OUT}/train_profile/trace.json)
file(READ ${OUT}/train_profile/profile.json json)
string(JSON steps GET "${json}" steps)
string(JSON wall GET "${json}" wall_ms)
if(NOT steps EQUAL 2 OR wall LESS_EQUAL 0 OR NOT EXISTS ${OUT}/train_profile/profile.txt)
  message(FATAL_ERROR "profile.json: steps ${steps}, wall_ms ${wall}")
endif()
