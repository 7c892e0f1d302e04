set terminal svg size 1000,620 dynamic font 'sans,11'
set output 'time_train_causal.svg'
set logscale xy
set grid
set key outside right
set xrange [*:524288]
set format x '%.0s%c'
set xlabel 'sequence length T'
set ylabel 'ms per iteration'
set title 'time vs T, training (forward + backward), causal; dashed: fitted tail (extrapolated); circles: crossover with exact' noenhanced
set label front at 664,24.0796 point pt 6 ps 1.6 lc 2 'longformer' offset 0.6,0.6 font ',8'
set label front at 1218,53.194 point pt 6 ps 1.6 lc 3 'performer' offset 0.6,0.6 font ',8'
set label front at 1649,82.8296 point pt 6 ps 1.6 lc 4 'reformer' offset 0.6,0.6 font ',8'
set label front at 583,20.4811 point pt 6 ps 1.6 lc 5 'linear' offset 0.6,0.6 font ',8'
set label front at 1798,93.9942 point pt 6 ps 1.6 lc 6 'elman' offset 0.6,0.6 font ',8'
set label front at 34219,23436.3 point pt 6 ps 1.6 lc 7 'lstm' offset 0.6,0.6 font ',8'
set label front at 18658,6982.53 point pt 6 ps 1.6 lc 8 'gru' offset 0.6,0.6 font ',8'
set label front at 4871,495.675 point pt 6 ps 1.6 lc 11 's6' offset 0.6,0.6 font ',8'
set label front at 279,8.96607 point pt 6 ps 1.6 lc 12 'lmu' offset 0.6,0.6 font ',8'
set label front at 30048,18076 point pt 6 ps 1.6 lc 13 'memory' offset 0.6,0.6 font ',8'
plot 'data/28.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 1 title 'exact', (x >= 4096 ? 21.218 + 1.99968e-05*x**2 : 1/0) with lines dt 2 lw 1.5 lc 1 notitle, 'data/29.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 2 title 'longformer', (x >= 16384 ? 11.6939 + 0.0304917*x**1 : 1/0) with lines dt 2 lw 1.5 lc 2 notitle, 'data/30.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 3 title 'performer', (x >= 8192 ? 0 + 0.0438782*x**1 : 1/0) with lines dt 2 lw 1.5 lc 3 notitle, 'data/31.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 4 title 'reformer', (x >= 8192 ? 10.8486 + 0.0411575*x**1 : 1/0) with lines dt 2 lw 1.5 lc 4 notitle, 'data/32.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 5 title 'linear', (x >= 16384 ? 17.3492 + 0.0277782*x**1 : 1/0) with lines dt 2 lw 1.5 lc 5 notitle, 'data/33.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 6 title 'elman', (x >= 8192 ? 0 + 0.0503385*x**1 : 1/0) with lines dt 2 lw 1.5 lc 6 notitle, 'data/34.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 7 title 'lstm', (x >= 1024 ? 0 + 0.682409*x**1 : 1/0) with lines dt 2 lw 1.5 lc 7 notitle, 'data/35.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 8 title 'gru', (x >= 1024 ? 0 + 0.3602*x**1 : 1/0) with lines dt 2 lw 1.5 lc 8 notitle, 'data/36.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 9 title 'mingru', (x >= 32768 ? 2.34415 + 0.0173773*x**1 : 1/0) with lines dt 2 lw 1.5 lc 9 notitle, 'data/37.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 10 title 'minlstm', (x >= 16384 ? 6.02672 + 0.0238833*x**1 : 1/0) with lines dt 2 lw 1.5 lc 10 notitle, 'data/38.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 11 title 's6', (x >= 8192 ? 3.05823 + 0.098678*x**1 : 1/0) with lines dt 2 lw 1.5 lc 11 notitle, 'data/39.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 12 title 'lmu', (x >= 32768 ? 0 + 0.0245336*x**1 : 1/0) with lines dt 2 lw 1.5 lc 12 notitle, 'data/40.dat' using 1:($2*1) with linespoints lw 2 pt 7 ps 0.6 lc 13 title 'memory', (x >= 1024 ? 0 + 0.577884*x**1 : 1/0) with lines dt 2 lw 1.5 lc 13 notitle
set terminal pngcairo size 1000,620 font 'sans,10'
set output 'time_train_causal.png'
replot
