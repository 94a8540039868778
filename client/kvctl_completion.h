// `kvctl completion bash`: a bash completion script made from the CLI11 command
// tree itself (subcommands, options, which options take a value, and the
// choices of IsMember-checked options and positionals), so it follows every
// flag added to kvctl without being edited. No I/O; thread-compatible (reads
// `app`).
#ifndef KV_CLIENT_KVCTL_COMPLETION_H_
#define KV_CLIENT_KVCTL_COMPLETION_H_

#include <CLI/CLI.hpp>
#include <string>

#include "absl/strings/string_view.h"

namespace kv::client {

// A bash script that defines the function _<program> (with '-' as '_') and
// registers it with `complete -o default -F _<program> <program>`. What it
// completes, for the words before the cursor:
//   - the subcommand path: each word naming a subcommand of the current one
//     descends into it; the word after an option that takes a value is
//     skipped (an option of any level: kvctl's options fall through);
//   - after an option that takes a value: its choices ({a,b} of an
//     IsMember check), or nothing (bash then completes file names);
//   - a word starting with '-': the options of the current subcommand and of
//     its parents;
//   - otherwise the current subcommand's subcommands and the choices of its
//     positionals; nothing (file names) when it has neither.
// Names that are not plain words ([A-Za-z0-9_.-]) are left out.
std::string BashCompletion(const CLI::App& app, absl::string_view program);

}  // namespace kv::client

#endif  // KV_CLIENT_KVCTL_COMPLETION_H_
