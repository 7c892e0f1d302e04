set terminal svg size 1000,620 dynamic font 'sans,11'
set output 'memory_train_causal.svg'
set logscale xy
set grid
set key outside right
set xrange [*:524288]
set format x '%.0s%c'
set xlabel 'sequence length T'
set ylabel 'peak memory, MiB (inputs and weights included)'
set title 'memory vs T, training (forward + backward), causal; dashed: fitted tail (extrapolated); circles: crossover with exact' noenhanced
set label front at 16384,389.5 point pt 6 ps 1.6 lc 2 'longformer' offset 0.6,0.6 font ',8'
set label front at 8555,205.769 point pt 6 ps 1.6 lc 8 'gru' offset 0.6,0.6 font ',8'
set label front at 347,13.3259 point pt 6 ps 1.6 lc 10 'minlstm' offset 0.6,0.6 font ',8'
plot 'data/41.dat' using 1:($3*9.5367431640625e-07) with linespoints lw 2 pt 7 ps 0.6 lc 1 title 'exact', (x >= 4096 ? 5 + 0.023468*x**1 : 1/0) with lines dt 2 lw 1.5 lc 1 notitle, 'data/42.dat' using 1:($3*9.5367431640625e-07) with linespoints lw 2 pt 7 ps 0.6 lc 2 title 'longformer', (x >= 16384 ? 5 + 0.023468*x**1 : 1/0) with lines dt 2 lw 1.5 lc 2 notitle, 'data/43.dat' using 1:($3*9.5367431640625e-07) with linespoints lw 2 pt 7 ps 0.6 lc 3 title 'performer', (x >= 8192 ? 5.06252 + 0.0508423*x**1 : 1/0) with lines dt 2 lw 1.5 lc 3 notitle, 'data/44.dat' using 1:($3*9.5367431640625e-07) with linespoints lw 2 pt 7 ps 0.6 lc 4 title 'reformer', (x >= 8192 ? 4.00783 + 0.0258484*x**1 : 1/0) with lines dt 2 lw 1.5 lc 4 notitle, 'data/45.dat' using 1:($3*9.5367431640625e-07) with linespoints lw 2 pt 7 ps 0.6 lc 5 title 'linear', (x >= 16384 ? 5 + 0.0273743*x**1 : 1/0) with lines dt 2 lw 1.5 lc 5 notitle, 'data/46.dat' using 1:($3*9.5367431640625e-07) with linespoints lw 2 pt 7 ps 0.6 lc 6 title 'elman', (x >= 8192 ? 5.00977 + 0.0136719*x**1 : 1/0) with lines dt 2 lw 1.5 lc 6 notitle, 'data/47.dat' using 1:($3*9.5367431640625e-07) with linespoints lw 2 pt 7 ps 0.6 lc 7 title 'lstm', (x >= 1024 ? 15.2252 + 0.0258551*x**1 : 1/0) with lines dt 2 lw 1.5 lc 7 notitle, 'data/48.dat' using 1:($3*9.5367431640625e-07) with linespoints lw 2 pt 7 ps 0.6 lc 8 title 'gru', (x >= 1024 ? 11.6334 + 0.0226761*x**1 : 1/0) with lines dt 2 lw 1.5 lc 8 notitle, 'data/49.dat' using 1:($3*9.5367431640625e-07) with linespoints lw 2 pt 7 ps 0.6 lc 9 title 'mingru', (x >= 32768 ? 4.00586 + 0.0175781*x**1 : 1/0) with lines dt 2 lw 1.5 lc 9 notitle, 'data/50.dat' using 1:($3*9.5367431640625e-07) with linespoints lw 2 pt 7 ps 0.6 lc 10 title 'minlstm', (x >= 16384 ? 5.00781 + 0.0214844*x**1 : 1/0) with lines dt 2 lw 1.5 lc 10 notitle, 'data/51.dat' using 1:($3*9.5367431640625e-07) with linespoints lw 2 pt 7 ps 0.6 lc 11 title 's6', (x >= 8192 ? 8.66406 + 0.0570068*x**1 : 1/0) with lines dt 2 lw 1.5 lc 11 notitle, 'data/52.dat' using 1:($3*9.5367431640625e-07) with linespoints lw 2 pt 7 ps 0.6 lc 12 title 'lmu', (x >= 32768 ? 5.03641 + 0.0177002*x**1 : 1/0) with lines dt 2 lw 1.5 lc 12 notitle, 'data/53.dat' using 1:($3*9.5367431640625e-07) with linespoints lw 2 pt 7 ps 0.6 lc 13 title 'memory', (x >= 1024 ? 1.92336 + 0.0300646*x**1 : 1/0) with lines dt 2 lw 1.5 lc 13 notitle
set terminal pngcairo size 1000,620 font 'sans,10'
set output 'memory_train_causal.png'
replot
