set terminal svg size 1000,620 dynamic font 'sans,11'
set output 'time_train.svg'
set logscale xy
set grid
set key outside right
set xrange [*:524288]
set format x '%.0s%c'
set xlabel 'sequence length T'
set ylabel 'ms per iteration'
set title 'time vs T, training (forward + backward), non-causal; dashed: fitted tail (extrapolated); circles: crossover with exact' noenhanced
set label front at 583,23.6079 point pt 6 ps 1.6 lc 2 'linformer' offset 0.6,0.6 font ',8'
set label front at 412,15.0405 point pt 6 ps 1.6 lc 3 'longformer' offset 0.6,0.6 font ',8'
set label front at 756,34.1385 point pt 6 ps 1.6 lc 4 'performer' offset 0.6,0.6 font ',8'
set label front at 724,32.1058 point pt 6 ps 1.6 lc 5 'reformer' offset 0.6,0.6 font ',8'
set label front at 318,10.9478 point pt 6 ps 1.6 lc 6 'linear' offset 0.6,0.6 font ',8'
set label front at 1166,65.5486 point pt 6 ps 1.6 lc 7 'elman' offset 0.6,0.6 font ',8'
set label front at 18658,13163.3 point pt 6 ps 1.6 lc 8 'lstm' offset 0.6,0.6 font ',8'
set label front at 9742,3598.04 point pt 6 ps 1.6 lc 9 'gru' offset 0.6,0.6 font ',8'
set label front at 2435,238.814 point pt 6 ps 1.6 lc 12 's6' offset 0.6,0.6 font ',8'
set label front at 15689,9311.11 point pt 6 ps 1.6 lc 14 'memory' offset 0.6,0.6 font ',8'
plot 'data/0.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 1 title 'exact', (x >= 4096 ? 12.9132 + 3.77753e-05*x**2 : 1/0) with lines dt 2 lw 1.5 lc 1 notitle, 'data/1.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 2 title 'linformer', (x >= 8192 ? 4.40264 + 0.0355105*x**1 : 1/0) with lines dt 2 lw 1.5 lc 2 notitle, 'data/2.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 3 title 'longformer', (x >= 16384 ? 9.00697 + 0.0306272*x**1 : 1/0) with lines dt 2 lw 1.5 lc 3 notitle, 'data/3.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 4 title 'performer', (x >= 8192 ? 0 + 0.0370207*x**1 : 1/0) with lines dt 2 lw 1.5 lc 4 notitle, 'data/4.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 5 title 'reformer', (x >= 8192 ? 0 + 0.0445247*x**1 : 1/0) with lines dt 2 lw 1.5 lc 5 notitle, 'data/5.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 6 title 'linear', (x >= 16384 ? 11.388 + 0.0270457*x**1 : 1/0) with lines dt 2 lw 1.5 lc 6 notitle, 'data/6.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 7 title 'elman', (x >= 8192 ? 14.4298 + 0.0463131*x**1 : 1/0) with lines dt 2 lw 1.5 lc 7 notitle, 'data/7.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 8 title 'lstm', (x >= 512 ? 9.79379 + 0.69938*x**1 : 1/0) with lines dt 2 lw 1.5 lc 8 notitle, 'data/8.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 9 title 'gru', (x >= 1024 ? 12.6807 + 0.352825*x**1 : 1/0) with lines dt 2 lw 1.5 lc 9 notitle, 'data/9.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 10 title 'mingru', (x >= 32768 ? 7.73403 + 0.0174895*x**1 : 1/0) with lines dt 2 lw 1.5 lc 10 notitle, 'data/10.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 11 title 'minlstm', (x >= 16384 ? 0 + 0.0246134*x**1 : 1/0) with lines dt 2 lw 1.5 lc 11 notitle, 'data/11.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 12 title 's6', (x >= 8192 ? 0 + 0.0994402*x**1 : 1/0) with lines dt 2 lw 1.5 lc 12 notitle, 'data/12.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 13 title 'lmu', (x >= 32768 ? 1.20014 + 0.0248674*x**1 : 1/0) with lines dt 2 lw 1.5 lc 13 notitle, 'data/13.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 14 title 'memory', (x >= 1024 ? 0 + 0.570394*x**1 : 1/0) with lines dt 2 lw 1.5 lc 14 notitle
set terminal pngcairo size 1000,620 font 'sans,10'
set output 'time_train.png'
replot
