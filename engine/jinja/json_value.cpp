// JSON text -> template values (see parse_json_value in value.h).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "engine/jinja/value.h"

namespace gridlm::jinja {

namespace {

using ojson = nlohmann::ordered_json;  // keeps members in the order given, as Python's dict

Value to_value(const ojson& j) {
    switch (j.type()) {
        case ojson::value_t::null:
            return Value::none();
        case ojson::value_t::boolean:
            return Value(j.get<bool>());
        case ojson::value_t::number_integer:
            return Value(j.get<int64_t>());
        case ojson::value_t::number_unsigned: {
            const uint64_t u = j.get<uint64_t>();
            if (u <= static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<int64_t>(u));
            return Value(static_cast<double>(u));
        }
        case ojson::value_t::number_float:
            return Value(j.get<double>());
        case ojson::value_t::string:
            return Value(j.get<std::string>());
        case ojson::value_t::array: {
            ValueList items;
            items.reserve(j.size());
            for (const auto& x : j) items.push_back(to_value(x));
            return Value::list(std::move(items));
        }
        case ojson::value_t::object: {
            ValueDict entries;
            entries.reserve(j.size());
            for (const auto& [k, x] : j.items()) {
                Value key(k);
                bool replaced = false;  // a repeated member keeps its first place, the last value
                for (auto& [ek, ev] : entries) {
                    if (ek.as_string() == k) {
                        ev = to_value(x);
                        replaced = true;
                    }
                }
                if (!replaced) entries.emplace_back(std::move(key), to_value(x));
            }
            return Value::dict(std::move(entries));
        }
        default:
            throw std::invalid_argument("unsupported JSON value");
    }
}

}  // namespace

Value parse_json_value(std::string_view text) {
    try {
        return to_value(ojson::parse(text));
    } catch (const ojson::exception& e) {
        throw std::invalid_argument(e.what());
    }
}

}  // namespace gridlm::jinja
