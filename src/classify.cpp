#include "rebound/classify.hpp"

namespace rebound {

std::string_view to_string(verdict_kind k) noexcept {
  switch (k) {
    case verdict_kind::success:
      return "success";
    case verdict_kind::transient:
      return "transient";
    case verdict_kind::permanent:
      return "permanent";
    case verdict_kind::overloaded:
      return "overloaded";
  }
  return "unknown";
}

std::optional<verdict> classifier::match_exception(const std::exception_ptr& e) const {
  if (!has_exception_rules_) return std::nullopt;
  for (const rule& r : *rules_) {
    if (r.ch != channel::exception) continue;
    if (auto answer = (*static_cast<const exception_fn*>(r.fn.get()))(e)) return answer;
  }
  return std::nullopt;
}

verdict classifier::classify_exception(const std::exception_ptr& e) const {
  if (!has_exception_rules_) return verdict::transient();
  return match_exception(e).value_or(verdict::permanent());
}

void classifier::add_exception(exception_fn fn) {
  add_typed(channel::exception, typeid(void), std::make_shared<const exception_fn>(std::move(fn)));
}

void classifier::add_typed(channel ch, const std::type_info& type, std::shared_ptr<const void> fn) {
  // Copy on write: other copies of this classifier keep their rules.
  auto rules =
      rules_ ? std::make_shared<std::vector<rule>>(*rules_) : std::make_shared<std::vector<rule>>();
  rules->push_back(rule{ch, std::type_index(type), std::move(fn)});
  rules_ = std::move(rules);
  has_exception_rules_ |= ch == channel::exception;
  has_result_rules_ |= ch == channel::result;
  has_error_rules_ |= ch == channel::error;
}

bool operator==(const classifier& a, const classifier& b) noexcept {
  if (a.empty() && b.empty()) return true;
  if (a.empty() != b.empty() || a.rules_->size() != b.rules_->size()) return false;
  for (std::size_t i = 0; i < a.rules_->size(); ++i) {
    if ((*a.rules_)[i].fn != (*b.rules_)[i].fn) return false;
  }
  return true;
}

}  // namespace rebound
