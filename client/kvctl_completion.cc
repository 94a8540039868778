#include "client/kvctl_completion.h"

#include <algorithm>
#include <map>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace kv::client {
namespace {

// Safe to write unquoted in a bash word list and inside a "..." pattern.
bool PlainWord(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ||
           c == '.';
  });
}

void AddUnique(std::vector<std::string>* words, const std::string& w) {
  if (PlainWord(w) && std::find(words->begin(), words->end(), w) == words->end()) {
    words->push_back(w);
  }
}

// The choices of an IsMember check: CLI11 appends each validator's
// description to the type name ("TEXT:{text,json}").
std::vector<std::string> Choices(const CLI::Option& opt) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(opt.get_type_name(), ':')) {
    if (part.size() < 2 || part.front() != '{' || part.back() != '}') continue;
    for (absl::string_view c : absl::StrSplit(part.substr(1, part.size() - 2), ',')) {
      AddUnique(&out, std::string(c));
    }
  }
  return out;
}

std::vector<std::string> OptionNames(const CLI::Option& opt) {
  std::vector<std::string> out;
  for (const std::string& n : opt.get_lnames()) out.push_back(absl::StrCat("--", n));
  for (const std::string& n : opt.get_snames()) out.push_back(absl::StrCat("-", n));
  return out;
}

// What one subcommand path ("kvctl", "kvctl members", ...) completes to.
struct Level {
  std::string path;
  std::vector<std::string> options;  // Its own first, then its parents'.
  std::vector<std::string> words;    // Subcommands and positional choices.
};

struct Tree {
  std::vector<Level> levels;  // Parents before children.
  // Options that take a value, by name, with their choices (maybe none).
  std::map<std::string, std::vector<std::string>> value_options;
};

// The options of `app` and of its unnamed option groups.
void CollectOptions(const CLI::App& app, Level* level, Tree* tree) {
  for (const CLI::Option* opt : app.get_options()) {
    const std::vector<std::string> names = OptionNames(*opt);
    if (names.empty()) {  // A positional.
      for (const std::string& c : Choices(*opt)) AddUnique(&level->words, c);
      continue;
    }
    const bool takes_value = opt->get_expected_max() > 0;  // Flags expect 0.
    for (const std::string& n : names) {
      if (!PlainWord(n)) continue;
      AddUnique(&level->options, n);
      if (takes_value) {
        std::vector<std::string>& choices = tree->value_options[n];
        for (const std::string& c : Choices(*opt)) AddUnique(&choices, c);
      }
    }
  }
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (sub->get_name().empty()) CollectOptions(*sub, level, tree);
  }
}

void Walk(const CLI::App& app, const std::string& path,
          const std::vector<std::string>& inherited, Tree* tree) {
  Level level;
  level.path = path;
  CollectOptions(app, &level, tree);
  for (const std::string& o : inherited) AddUnique(&level.options, o);
  std::vector<const CLI::App*> children;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (sub->get_name().empty() || !PlainWord(sub->get_name())) continue;
    children.push_back(sub);
    AddUnique(&level.words, sub->get_name());
  }
  const std::vector<std::string> options = level.options;
  tree->levels.push_back(std::move(level));
  for (const CLI::App* sub : children) {
    Walk(*sub, absl::StrCat(path, " ", sub->get_name()), options, tree);
  }
}

std::string CaseArm(absl::string_view pattern, const std::vector<std::string>& words) {
  return absl::StrCat("      ", pattern, ") words=\"", absl::StrJoin(words, " "), "\" ;;\n");
}

}  // namespace

std::string BashCompletion(const CLI::App& app, absl::string_view program) {
  Tree tree;
  Walk(app, std::string(program), {}, &tree);
  const std::string fn =
      absl::StrCat("_", absl::StrReplaceAll(program, {{"-", "_"}, {".", "_"}}));

  std::vector<std::string> value_names;
  std::string value_choices;
  for (const auto& [name, choices] : tree.value_options) {
    value_names.push_back(name);
    if (!choices.empty()) value_choices += CaseArm(name, choices);
  }
  std::vector<std::string> paths;
  std::string option_arms, word_arms;
  for (const Level& l : tree.levels) {
    const std::string pattern = absl::StrCat("\"", l.path, "\"");
    if (l.path != program) paths.push_back(pattern);
    if (!l.options.empty()) option_arms += CaseArm(pattern, l.options);
    if (!l.words.empty()) word_arms += CaseArm(pattern, l.words);
  }

  std::string s = absl::StrCat(
      "# bash completion for ", program, ", made by `", program,
      " completion bash` from its own command tree.\n"
      "# Use: source <(", program, " completion bash), or save the output as\n"
      "# /etc/bash_completion.d/", program,
      " or ~/.local/share/bash-completion/completions/", program, ".\n",
      fn, "() {\n"
      "  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
      "  local path=", program, " skip=0 words= i w\n"
      "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
      "    w=${COMP_WORDS[i]}\n"
      "    if ((skip)); then skip=0; continue; fi\n");
  if (!value_names.empty()) {
    absl::StrAppend(&s, "    case \"$w\" in\n      ", absl::StrJoin(value_names, "|"),
                    ") skip=1; continue ;;\n    esac\n");
  }
  if (!paths.empty()) {
    absl::StrAppend(&s, "    case \"$path $w\" in\n      ", absl::StrJoin(paths, "|"),
                    ") path=\"$path $w\" ;;\n    esac\n");
  }
  absl::StrAppend(&s, "  done\n  if ((skip)); then\n");
  if (!value_choices.empty()) {
    absl::StrAppend(&s, "    case \"$prev\" in\n", value_choices, "    esac\n");
  } else {
    s += "    :\n";
  }
  s += "  elif [[ $cur == -* ]]; then\n";
  if (!option_arms.empty()) {
    absl::StrAppend(&s, "    case \"$path\" in\n", option_arms, "    esac\n");
  } else {
    s += "    :\n";
  }
  s += "  else\n";
  if (!word_arms.empty()) {
    absl::StrAppend(&s, "    case \"$path\" in\n", word_arms, "    esac\n");
  } else {
    s += "    :\n";
  }
  absl::StrAppend(&s,
                  "  fi\n"
                  "  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
                  "  return 0\n"
                  "}\n"
                  "complete -o default -F ",
                  fn, " ", program, "\n");
  return s;
}

}  // namespace kv::client
