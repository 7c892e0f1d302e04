set terminal svg size 1000,620 dynamic font 'sans,11'
set output 'time_infer.svg'
set logscale xy
set grid
set key outside right
set xrange [*:524288]
set format x '%.0s%c'
set xlabel 'sequence length T'
set ylabel 'ms per iteration'
set title 'time vs T, inference (forward), non-causal; dashed: fitted tail (extrapolated); circles: crossover with exact' noenhanced
set label front at 558,7.76071 point pt 6 ps 1.6 lc 2 'linformer' offset 0.6,0.6 font ',8'
set label front at 664,10.1417 point pt 6 ps 1.6 lc 4 'performer' offset 0.6,0.6 font ',8'
set label front at 756,12.3827 point pt 6 ps 1.6 lc 5 'reformer' offset 0.6,0.6 font ',8'
set label front at 1722,42.9403 point pt 6 ps 1.6 lc 7 'elman' offset 0.6,0.6 font ',8'
set label front at 37316,14534.3 point pt 6 ps 1.6 lc 8 'lstm' offset 0.6,0.6 font ',8'
set label front at 27554,7930.05 point pt 6 ps 1.6 lc 9 'gru' offset 0.6,0.6 font ',8'
set label front at 1878,48.8814 point pt 6 ps 1.6 lc 12 's6' offset 0.6,0.6 font ',8'
set label front at 10624,1189.29 point pt 6 ps 1.6 lc 14 'memory' offset 0.6,0.6 font ',8'
plot 'data/54.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 1 title 'exact', (x >= 8192 ? 12.187 + 1.04289e-05*x**2 : 1/0) with lines dt 2 lw 1.5 lc 1 notitle, 'data/55.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 2 title 'linformer', (x >= 32768 ? 0 + 0.0127975*x**1 : 1/0) with lines dt 2 lw 1.5 lc 2 notitle, 'data/56.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 3 title 'longformer', (x >= 32768 ? 0 + 0.0120606*x**1 : 1/0) with lines dt 2 lw 1.5 lc 3 notitle, 'data/57.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 4 title 'performer', (x >= 32768 ? 7.77928 + 0.0141577*x**1 : 1/0) with lines dt 2 lw 1.5 lc 4 notitle, 'data/58.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 5 title 'reformer', (x >= 32768 ? 0 + 0.017308*x**1 : 1/0) with lines dt 2 lw 1.5 lc 5 notitle, 'data/59.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 6 title 'linear', (x >= 32768 ? 0 + 0.0104732*x**1 : 1/0) with lines dt 2 lw 1.5 lc 6 notitle, 'data/60.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 7 title 'elman', (x >= 16384 ? 26.211 + 0.0229211*x**1 : 1/0) with lines dt 2 lw 1.5 lc 7 notitle, 'data/61.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 8 title 'lstm', (x >= 1024 ? 0 + 0.383261*x**1 : 1/0) with lines dt 2 lw 1.5 lc 8 notitle, 'data/62.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 9 title 'gru', (x >= 2048 ? 9.16776 + 0.285654*x**1 : 1/0) with lines dt 2 lw 1.5 lc 9 notitle, 'data/63.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 10 title 'mingru', (x >= 65536 ? 0 + 0.00587165*x**1 : 1/0) with lines dt 2 lw 1.5 lc 10 notitle, 'data/64.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 11 title 'minlstm', (x >= 65536 ? 0 + 0.00722846*x**1 : 1/0) with lines dt 2 lw 1.5 lc 11 notitle, 'data/65.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 12 title 's6', (x >= 16384 ? 17.4247 + 0.0253188*x**1 : 1/0) with lines dt 2 lw 1.5 lc 12 notitle, 'data/66.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 13 title 'lmu', (x >= 65536 ? 28.8121 + 0.0118686*x**1 : 1/0) with lines dt 2 lw 1.5 lc 13 notitle, 'data/67.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 14 title 'memory', (x >= 8192 ? 0 + 0.110754*x**1 : 1/0) with lines dt 2 lw 1.5 lc 14 notitle
set terminal pngcairo size 1000,620 font 'sans,10'
set output 'time_infer.png'
replot
