set terminal svg size 1000,620 dynamic font 'sans,11'
set output 'time_infer_causal.svg'
set logscale xy
set grid
set key outside right
set xrange [*:524288]
set format x '%.0s%c'
set xlabel 'sequence length T'
set ylabel 'ms per iteration'
set title 'time vs T, inference (forward), causal; dashed: fitted tail (extrapolated); circles: crossover with exact' noenhanced
set label front at 939,13.6764 point pt 6 ps 1.6 lc 3 'performer' offset 0.6,0.6 font ',8'
set label front at 1878,36.4534 point pt 6 ps 1.6 lc 4 'reformer' offset 0.6,0.6 font ',8'
set label front at 1069,16.2875 point pt 6 ps 1.6 lc 5 'linear' offset 0.6,0.6 font ',8'
set label front at 2896,72.6764 point pt 6 ps 1.6 lc 6 'elman' offset 0.6,0.6 font ',8'
set label front at 57549,21808.9 point pt 6 ps 1.6 lc 7 'lstm' offset 0.6,0.6 font ',8'
set label front at 42495,11897.8 point pt 6 ps 1.6 lc 8 'gru' offset 0.6,0.6 font ',8'
set label front at 2896,72.6764 point pt 6 ps 1.6 lc 11 's6' offset 0.6,0.6 font ',8'
set label front at 16384,1780.49 point pt 6 ps 1.6 lc 13 'memory' offset 0.6,0.6 font ',8'
plot 'data/82.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 1 title 'exact', (x >= 8192 ? 13.9653 + 6.58083e-06*x**2 : 1/0) with lines dt 2 lw 1.5 lc 1 notitle, 'data/83.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 2 title 'longformer', (x >= 32768 ? 0 + 0.0108171*x**1 : 1/0) with lines dt 2 lw 1.5 lc 2 notitle, 'data/84.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 3 title 'performer', (x >= 32768 ? 0 + 0.0166388*x**1 : 1/0) with lines dt 2 lw 1.5 lc 3 notitle, 'data/85.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 4 title 'reformer', (x >= 16384 ? 1.32153 + 0.0180943*x**1 : 1/0) with lines dt 2 lw 1.5 lc 4 notitle, 'data/86.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 5 title 'linear', (x >= 65536 ? 0 + 0.00950347*x**1 : 1/0) with lines dt 2 lw 1.5 lc 5 notitle, 'data/87.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 6 title 'elman', (x >= 16384 ? 0 + 0.0248099*x**1 : 1/0) with lines dt 2 lw 1.5 lc 6 notitle, 'data/88.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 7 title 'lstm', (x >= 1024 ? 1.15541 + 0.371802*x**1 : 1/0) with lines dt 2 lw 1.5 lc 7 notitle, 'data/89.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 8 title 'gru', (x >= 2048 ? 0 + 0.279285*x**1 : 1/0) with lines dt 2 lw 1.5 lc 8 notitle, 'data/90.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 9 title 'mingru', (x >= 65536 ? 0 + 0.00556613*x**1 : 1/0) with lines dt 2 lw 1.5 lc 9 notitle, 'data/91.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 10 title 'minlstm', (x >= 65536 ? 18.9583 + 0.00732242*x**1 : 1/0) with lines dt 2 lw 1.5 lc 10 notitle, 'data/92.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 11 title 's6', (x >= 32768 ? 0 + 0.0268655*x**1 : 1/0) with lines dt 2 lw 1.5 lc 11 notitle, 'data/93.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 12 title 'lmu', (x >= 65536 ? 0 + 0.0117366*x**1 : 1/0) with lines dt 2 lw 1.5 lc 12 notitle, 'data/94.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 13 title 'memory', (x >= 8192 ? 0 + 0.105447*x**1 : 1/0) with lines dt 2 lw 1.5 lc 13 notitle
set terminal pngcairo size 1000,620 font 'sans,10'
set output 'time_infer_causal.png'
replot
