// kvd's options from the environment: every option with a long name also
// reads KVD_<NAME> (--data-dir: KVD_DATA_DIR), with the precedence
// command-line flag > environment > config file (--config) > default.
// CLI11 alone lets a config file win over the environment; the config
// reader installed here drops a config file line whose option's variable is
// set (non-empty), so the environment wins.
//
// Thread safety: call from main() before parsing; not thread-safe.
#ifndef KV_SERVER_KVD_ENV_H_
#define KV_SERVER_KVD_ENV_H_

#include <CLI/CLI.hpp>
#include <string>

namespace kv::server {

// Gives every option of `app` with a long name (but --help and --version)
// the environment variable `prefix` + the name upper-cased, '-' as '_'
// (shown in --help as "(Env:KVD_LISTEN)"), and installs the config reader
// above. An empty variable counts as unset; a flag takes true/false/1/0.
// REQUIRES: every option is added and set_config was called; `app` outlives
// the parse.
void UseEnvironment(CLI::App& app, const std::string& prefix);

// The variable UseEnvironment gives --`long_name`: EnvName("KVD_",
// "data-dir") == "KVD_DATA_DIR".
std::string EnvName(const std::string& prefix, const std::string& long_name);

}  // namespace kv::server

#endif  // KV_SERVER_KVD_ENV_H_
