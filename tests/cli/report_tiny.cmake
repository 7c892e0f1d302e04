# A tiny `longseq report` writes every file and a report.json that follows docs/report.md's
# schema; `recommend` ranks from it, and refuses an impossible budget saying what would fit.
file(REMOVE_RECURSE ${OUT})
execute_process(COMMAND ${EXE} --threads 2 report --out ${OUT} --mixers exact,performer,longformer,mingru
  --budget-minutes 0.3 --t-max 2048 --heads 2 --head-dim 16 --memory-budgets 64M,1G
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "open ${OUT}/index.html")
  message(FATAL_ERROR "report failed (${rc}):\n${out}\n${err}")
endif()
foreach(f report.json report.md index.html time_train.svg time_train.png memory_train.svg
    memory_train.png time_infer_causal.svg memory_infer_causal.png error.svg error.png)
  if(NOT EXISTS ${OUT}/${f})
    message(FATAL_ERROR "report did not write ${f}:\n${out}\n${err}")
  endif()
endforeach()
file(READ ${OUT}/report.json json)
string(JSON schema GET "${json}" schema)
if(NOT schema STREQUAL "longseq-report/1")
  message(FATAL_ERROR "schema '${schema}'")
endif()
foreach(key machine settings series crossovers memory_budget_lengths errors quality)
  string(JSON type ERROR_VARIABLE e TYPE "${json}" ${key})
  if(e)
    message(FATAL_ERROR "report.json lacks `${key}`: ${e}")
  endif()
endforeach()
string(JSON n LENGTH "${json}" series)
if(NOT n EQUAL 16)  # 4 mixers x 2 modes x causal or not
  message(FATAL_ERROR "expected 16 series, got ${n}")
endif()
math(EXPR last "${n} - 1")
foreach(i RANGE ${last})
  foreach(key mixer causal mode stop_reason points time_fit memory_fit time_tail memory_tail)
    string(JSON v ERROR_VARIABLE e GET "${json}" series ${i} ${key})
    if(e)
      message(FATAL_ERROR "series[${i}] lacks `${key}`")
    endif()
  endforeach()
  foreach(key t ms ms_min ms_max bytes)
    string(JSON v ERROR_VARIABLE e GET "${json}" series ${i} points 0 ${key})
    if(e)
      message(FATAL_ERROR "series[${i}].points[0] lacks `${key}`")
    endif()
  endforeach()
  string(JSON v GET "${json}" series ${i} time_fit exponent)
endforeach()
string(JSON v GET "${json}" crossovers 0 quantity)
string(JSON v GET "${json}" memory_budget_lengths 0 budget_bytes)
string(JSON v GET "${json}" errors inputs)
string(JSON v GET "${json}" machine blas core)

execute_process(COMMAND ${EXE} recommend --from ${OUT}/report.json --seq-len 65536 --causal --memory 4G
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "rank +mixer" OR NOT out MATCHES "1 +[a-z]+ +yes")
  message(FATAL_ERROR "recommend failed (${rc}):\n${out}\n${err}")
endif()
execute_process(COMMAND ${EXE} recommend --from ${OUT}/report.json --seq-len 65536 --memory 1K --json
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "error: recommend: no mixer fits" OR NOT err MATCHES "Raise the budget to about")
  message(FATAL_ERROR "an impossible budget was not refused clearly (${rc}):\n${out}\n${err}")
endif()
string(JSON first GET "${out}" ranking 0 mixer)

# Errors on a trained model's activations: a 2-step exact model on the copy task.
execute_process(COMMAND ${EXE} --threads 2 train --set task.name=copy --set task.options.blanks=10
  --set model.dim=16 --set model.heads=2 --set model.layers=1 --set model.causal=true
  --set train.batch_size=4 --set train.steps=2 --set train.eval_every=0 --out ${OUT}/ckpt
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "training the checkpoint failed (${rc}):\n${out}\n${err}")
endif()
execute_process(COMMAND ${EXE} --threads 2 report --out ${OUT}/from_ckpt --mixers exact,performer,longformer
  --budget-minutes 0.1 --t-max 512 --heads 2 --head-dim 8 --from-checkpoint ${OUT}/ckpt
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT EXISTS ${OUT}/from_ckpt/error.png)
  message(FATAL_ERROR "report --from-checkpoint failed (${rc}):\n${out}\n${err}")
endif()
file(READ ${OUT}/from_ckpt/report.json json)
string(JSON inputs GET "${json}" errors inputs)
string(JSON n LENGTH "${json}" errors points)
if(NOT inputs MATCHES "activations of checkpoint" OR n LESS 6)
  message(FATAL_ERROR "errors not from the checkpoint's activations (${n} points): ${inputs}")
endif()
