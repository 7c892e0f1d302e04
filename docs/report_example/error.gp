set terminal svg size 1000,620 dynamic font 'sans,11'
set output 'error.svg'
set logscale xy
set grid
set key outside right
set xlabel 'sequence length T'
set ylabel '||y - y_exact|| / ||y_exact||'
set title 'approximation error against exact attention (non-causal; x ~ N(0, 2.5^2) of shape [1, T, 512] (attention logits of std ~2), default initialisation, the same Q/K/V/output weights for exact and the approximation, eval mode; 8 heads of 64)' noenhanced
plot 'data/error_0.dat' using 1:2 with linespoints lw 2 pt 7 lc 1 title 'linformer proj_len=128', 'data/error_1.dat' using 1:2 with linespoints lw 2 pt 7 lc 2 title 'linformer proj_len=256', 'data/error_2.dat' using 1:2 with linespoints lw 2 pt 7 lc 3 title 'linformer proj_len=64', 'data/error_3.dat' using 1:2 with linespoints lw 2 pt 7 lc 4 title 'longformer window=128', 'data/error_4.dat' using 1:2 with linespoints lw 2 pt 7 lc 5 title 'longformer window=256', 'data/error_5.dat' using 1:2 with linespoints lw 2 pt 7 lc 6 title 'longformer window=64', 'data/error_6.dat' using 1:2 with linespoints lw 2 pt 7 lc 7 title 'performer features=128', 'data/error_7.dat' using 1:2 with linespoints lw 2 pt 7 lc 8 title 'performer features=256', 'data/error_8.dat' using 1:2 with linespoints lw 2 pt 7 lc 9 title 'performer features=64', 'data/error_9.dat' using 1:2 with linespoints lw 2 pt 7 lc 10 title 'reformer n_hashes=1', 'data/error_10.dat' using 1:2 with linespoints lw 2 pt 7 lc 11 title 'reformer n_hashes=2', 'data/error_11.dat' using 1:2 with linespoints lw 2 pt 7 lc 12 title 'reformer n_hashes=4'
set terminal pngcairo size 1000,620 font 'sans,10'
set output 'error.png'
replot
