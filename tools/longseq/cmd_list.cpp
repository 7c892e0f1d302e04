// `longseq list`: every registered mixer with its options, defaults and description.
#include "commands.h"

#include <longseq/registry.h>

#include <fmt/core.h>

namespace longseq::cli {
namespace {

void print_option(const OptionSpec& o) {
  std::string def = o.default_value.empty() ? "(none)" : o.default_value;
  std::string help = o.help;
  if (!o.choices.empty()) {
    std::string c;
    for (const auto& s : o.choices) c += (c.empty() ? "" : "|") + s;
    help += " {" + c + "}";
  }
  fmt::print("    {:<18} {:<9} {:<10} {}\n", o.name, option_kind_name(o.kind), def, help);
}

}  // namespace

Runner add_list_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("list", "list every mixer with its options and defaults");
  auto json = std::make_shared<bool>(false);
  auto markdown = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "machine-readable output");
  cmd->add_flag("--markdown", *markdown,
                "the option tables of docs/mixers.md (paste between its BEGIN/END options marks)");
  return [json, markdown] {
    if (*markdown) {
      fmt::print("{}", mixer_options_markdown());
      return;
    }
    if (*json) {
      fmt::print("{}\n", mixer_registry_json());
      return;
    }
    fmt::print("Options every mixer takes (name, type, default, meaning):\n");
    for (const auto& o : common_option_specs()) print_option(o);
    fmt::print("\nMixers (set mechanism options with --opt MIXER.KEY=VALUE):\n");
    for (const auto& m : mixer_registry()) {
      fmt::print("\n  {:<11} {}{}\n", m.name, m.description,
                 m.supports_causal ? "" : " [non-causal only]");
      for (const auto& o : m.options) print_option(o);
    }
  };
}

}  // namespace longseq::cli
