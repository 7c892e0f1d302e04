#pragma once
// gnuplot, run without a shell: an argument vector, in the output's directory, so no path is ever
// interpolated into a command line or a script.
#include <string>

namespace longseq::cli {

/// Runs `gnuplot SCRIPT` with `dir` as its working directory (SCRIPT is a file name inside it) and
/// waits. Throws naming `what` (the subcommand) and the script when gnuplot is missing or fails.
void run_gnuplot(const std::string& dir, const std::string& script, const std::string& what);

/// `text` as a gnuplot single-quoted string literal, quotes included: gnuplot substitutes
/// backquoted commands everywhere but inside single quotes, where only '' (a quote) is special.
/// Newlines become spaces.
std::string gnuplot_quoted(const std::string& text);

}  // namespace longseq::cli
