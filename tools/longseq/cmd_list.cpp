// `longseq list`: every registered mixer with its options, defaults and description.
#include "commands.h"

#include <longseq/registry.h>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

namespace longseq::cli {
namespace {

nlohmann::json option_json(const OptionSpec& o) {
  nlohmann::json j = {{"name", o.name},
                      {"type", option_kind_name(o.kind)},
                      {"default", o.default_value},
                      {"help", o.help}};
  if (!o.choices.empty()) j["choices"] = o.choices;
  if (!o.range.text().empty()) j["range"] = o.range.text();
  if (!o.rule_text.empty()) j["rule"] = o.rule_text;
  return j;
}

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
      nlohmann::json out;
      for (const auto& o : common_option_specs()) out["common_options"].push_back(option_json(o));
      for (const auto& m : mixer_registry()) {
        nlohmann::json j = {{"name", m.name},
                            {"description", m.description},
                            {"supports_causal", m.supports_causal},
                            {"memory_exponent", m.memory_exponent},
                            {"options", nlohmann::json::array()}};
        for (const auto& o : m.options) j["options"].push_back(option_json(o));
        out["mixers"].push_back(j);
      }
      fmt::print("{}\n", out.dump(2));
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
