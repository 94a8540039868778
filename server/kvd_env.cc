#include "server/kvd_env.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <memory>
#include <vector>

namespace kv::server {
namespace {

// The default TOML/INI reader, minus the lines whose option is set from the
// environment.
class EnvFirstConfig final : public CLI::ConfigTOML {
 public:
  explicit EnvFirstConfig(const CLI::App* app) : app_(app) {}

  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    std::vector<CLI::ConfigItem> items = CLI::ConfigTOML::from_config(input);
    std::erase_if(items, [this](const CLI::ConfigItem& item) {
      if (!item.parents.empty()) return false;
      const CLI::Option* opt = app_->get_option_no_throw("--" + item.name);
      if (opt == nullptr) opt = app_->get_option_no_throw(item.name);
      if (opt == nullptr || opt->get_envname().empty()) return false;
      const char* value = std::getenv(opt->get_envname().c_str());
      return value != nullptr && *value != '\0';
    });
    return items;
  }

 private:
  const CLI::App* const app_;
};

}  // namespace

std::string EnvName(const std::string& prefix, const std::string& long_name) {
  std::string env = prefix;
  for (char c : long_name) {
    env += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return env;
}

void UseEnvironment(CLI::App& app, const std::string& prefix) {
  for (CLI::Option* opt : app.get_options()) {
    if (opt->get_lnames().empty()) continue;
    const std::string& name = opt->get_lnames().front();
    if (name == "help" || name == "version") continue;
    opt->envname(EnvName(prefix, name));
  }
  app.config_formatter(std::make_shared<EnvFirstConfig>(&app));
  // CLI11 2.1 does not read the config option's own variable: make it the
  // default file, which must then exist (--config still wins).
  if (CLI::Option* config = app.get_config_ptr(); config != nullptr) {
    const char* file = std::getenv(config->get_envname().c_str());
    if (file != nullptr && *file != '\0') config->default_str(file)->required();
  }
}

}  // namespace kv::server
