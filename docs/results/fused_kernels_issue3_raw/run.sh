#!/usr/bin/env bash
# Issue 3/5 measurements, frozen binaries of commit $(cat /tmp/frozen2/COMMIT), quiet machine.
set -u
F=/tmp/frozen2; O=/tmp/meas
cd /work/main
lscpu | grep -E "Model name|^CPU\(s\)|Flags" | cut -c1-200 > $O/cpu.txt
echo "commit $(cat $F/COMMIT)" > $O/meta.txt
date >> $O/meta.txt
( time $F/longseq_bench_flash --threads=2 --benchmark_filter='sgemm|exact/.*/fwd\+bwd/4096' --benchmark_min_time=1 ) > $O/flash.txt 2>&1
( time $F/longseq_bench_attention --threads=2 --benchmark_min_time=0.5 ) > $O/attention.txt 2>&1
( time $F/longseq_bench_flash --threads=2 --benchmark_filter='sgemm' --benchmark_min_time=1 ) > $O/sgemm_after.txt 2>&1
( time $F/longseq bench --mixers linformer,longformer,performer,reformer --seq-lens 1024,2048,4096,8192,16384,32768,65536 --repeats 3 --warmup 1 --json $O/scaling.json ) > $O/scaling.txt 2>&1
( time $F/longseq bench --causal --mixers longformer,performer,reformer --seq-lens 1024,2048,4096,8192,16384,32768,65536 --repeats 3 --warmup 1 --json $O/scaling_causal.json ) > $O/scaling_causal.txt 2>&1
( time $F/longseq bench --mixers linformer,longformer,performer,reformer --seq-lens 262144 --repeats 1 --warmup 0 --json $O/t262144.json ) > $O/t262144.txt 2>&1
( time $F/longseq bench --causal --mixers longformer,performer,reformer --seq-lens 262144 --repeats 1 --warmup 0 --json $O/t262144_causal.json ) > $O/t262144_causal.txt 2>&1
( time $F/longseq bench --mixers mingru,lstm,gru --seq-lens 1024,4096 --batch 8 --heads 4 --head-dim 64 --repeats 3 --warmup 1 ) > $O/rnn_fused.txt 2>&1
( time $F/longseq bench --mixers lstm,gru --seq-lens 1024,4096 --batch 8 --heads 4 --head-dim 64 --repeats 3 --warmup 1 --impl composite ) > $O/rnn_composite.txt 2>&1
( time $F/longseq_tests --gtest_filter='FlashAttentionSlow.*' ) > $O/exact_65536.txt 2>&1
date >> $O/meta.txt
echo DONE >> $O/meta.txt
