// Python semantics of template values (see value.h).
#include "engine/jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "engine/tokenizer/utf8.h"

namespace gridlm::jinja {

Value Value::undefined(std::string hint) {
    Value v;
    v.s_ = std::move(hint);
    return v;
}

Value Value::none() {
    Value v;
    v.type_ = Type::none;
    return v;
}

Value::Value(bool b) : type_(Type::boolean), b_(b), i_(b ? 1 : 0) {}
Value::Value(int64_t v) : type_(Type::integer), i_(v) {}
Value::Value(double v) : type_(Type::number), d_(v) {}
Value::Value(std::string s) : type_(Type::string), s_(std::move(s)) {}

Value Value::list(ValueList items, bool tuple) {
    Value v;
    v.type_ = Type::list;
    v.tuple_ = tuple;
    v.list_ = std::make_shared<ValueList>(std::move(items));
    return v;
}

Value Value::dict(ValueDict items) {
    Value v;
    v.type_ = Type::dict;
    v.dict_ = std::make_shared<ValueDict>(std::move(items));
    return v;
}

Value Value::namespace_object(ValueDict items) {
    Value v = dict(std::move(items));
    v.namespace_ = true;
    return v;
}

Value Value::function(Function f, std::string name) {
    Value v;
    v.type_ = Type::function;
    v.s_ = std::move(name);
    v.fn_ = std::make_shared<Function>(std::move(f));
    return v;
}

double Value::as_double() const {
    if (type_ == Type::number) return d_;
    return static_cast<double>(i_);
}

const Value* Value::find(const Value& key) const {
    if (!is_dict()) return nullptr;
    for (const auto& [k, v] : *dict_) {
        if (equal(k, key)) return &v;
    }
    return nullptr;
}

const Value* Value::find(std::string_view key) const {
    if (!is_dict()) return nullptr;
    for (const auto& [k, v] : *dict_) {
        if (k.is_string() && k.as_string() == key) return &v;
    }
    return nullptr;
}

bool Value::truthy() const {
    switch (type_) {
        case Type::undefined:
        case Type::none:
            return false;
        case Type::boolean:
            return b_;
        case Type::integer:
            return i_ != 0;
        case Type::number:
            return d_ != 0.0;
        case Type::string:
            return !s_.empty();
        case Type::list:
            return !list_->empty();
        case Type::dict:
            return !dict_->empty();
        case Type::function:
            return true;
    }
    return false;
}

const char* Value::type_name() const {
    switch (type_) {
        case Type::undefined:
            return "undefined";
        case Type::none:
            return "NoneType";
        case Type::boolean:
            return "bool";
        case Type::integer:
            return "int";
        case Type::number:
            return "float";
        case Type::string:
            return "str";
        case Type::list:
            return tuple_ ? "tuple" : "list";
        case Type::dict:
            return namespace_ ? "Namespace" : "dict";
        case Type::function:
            return "function";
    }
    return "?";
}

Value CallArgs::get(size_t pos, std::string_view name) const {
    for (const auto& [k, v] : keyword) {
        if (k == name) return v;
    }
    if (pos < positional.size()) return positional[pos];
    return Value();
}

bool CallArgs::has(size_t pos, std::string_view name) const {
    if (pos < positional.size()) return true;
    for (const auto& [k, v] : keyword) {
        if (k == name) return true;
    }
    return false;
}

std::string float_repr(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
    if (d == 0.0) return std::signbit(d) ? "-0.0" : "0.0";
    // Shortest round-trip digits, then Python's layout: fixed for 1e-4 <= |d| < 1e16.
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
    std::string sci(buf, res.ptr);
    std::string out;
    size_t pos = 0;
    if (sci[0] == '-') {
        out = "-";
        pos = 1;
    }
    const size_t e = sci.find('e');
    std::string digits;
    for (size_t i = pos; i < e; ++i) {
        if (sci[i] != '.') digits += sci[i];
    }
    const int exp = std::stoi(sci.substr(e + 1));
    if (exp >= -5 && exp < 16) {
        if (exp < 0) {
            out += "0.";
            out.append(static_cast<size_t>(-exp - 1), '0');
            out += digits;
        } else if (static_cast<size_t>(exp) + 1 >= digits.size()) {
            out += digits;
            out.append(static_cast<size_t>(exp) + 1 - digits.size(), '0');
            out += ".0";
        } else {
            out += digits.substr(0, static_cast<size_t>(exp) + 1);
            out += '.';
            out += digits.substr(static_cast<size_t>(exp) + 1);
        }
        // Python switches to exponent form below 1e-4.
        if (exp == -5) {
            out.resize(out[0] == '-' ? 1 : 0);
        } else {
            return out;
        }
    }
    out += digits.substr(0, 1);
    if (digits.size() > 1) {
        out += '.';
        out += digits.substr(1);
    }
    char ebuf[16];
    std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    return out + ebuf;
}

namespace {

std::string repr_string(const std::string& s) {
    const bool has_single = s.find('\'') != std::string::npos;
    const bool has_double = s.find('"') != std::string::npos;
    const char quote = has_single && !has_double ? '"' : '\'';
    std::string out(1, quote);
    for (unsigned char c : s) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == static_cast<unsigned char>(quote)) {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\x%02x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    out += quote;
    return out;
}

void append_json_string(std::string& out, const std::string& s, bool ensure_ascii) {
    out += '"';
    for (size_t i = 0; i < s.size();) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c >= 0x80 && ensure_ascii) {
            uint32_t cp = 0xfffd;
            size_t len = utf8::sequence_length(s, i);
            if (len == 0) {
                len = 1;
            } else {
                size_t at = i;
                cp = utf8::next_codepoint(s, at);
            }
            char buf[16];
            if (cp >= 0x10000) {
                const uint32_t v = cp - 0x10000;
                std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
            } else {
                std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
            }
            out += buf;
            i += len;
            continue;
        }
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof(buf), "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
        ++i;
    }
    out += '"';
}

// json.dumps turns keys into strings: str as is, int as str(), float as repr, bool/None as JSON.
std::string json_key(const Value& k) {
    switch (k.type()) {
        case Value::Type::string:
            return k.as_string();
        case Value::Type::integer:
            return std::to_string(k.as_int());
        case Value::Type::boolean:
            return k.as_bool() ? "true" : "false";
        case Value::Type::number:
            return float_repr(k.as_double());
        case Value::Type::none:
            return "null";
        default:
            throw std::invalid_argument(std::string("keys must be str, int, float, bool or None, not ") +
                                        k.type_name());
    }
}

void append_json(std::string& out, const Value& v, const JsonStyle& st, int level) {
    const bool pretty = st.indent >= 0 || !st.indent_text.empty();
    auto newline = [&](int lvl) {
        out += '\n';
        if (!st.indent_text.empty()) {
            for (int i = 0; i < lvl; ++i) out += st.indent_text;
        } else {
            out.append(static_cast<size_t>(st.indent * lvl), ' ');
        }
    };
    switch (v.type()) {
        case Value::Type::none:
            out += "null";
            return;
        case Value::Type::boolean:
            out += v.as_bool() ? "true" : "false";
            return;
        case Value::Type::integer:
            out += std::to_string(v.as_int());
            return;
        case Value::Type::number: {
            const double d = v.as_double();
            if (std::isnan(d)) {
                out += "NaN";
            } else if (std::isinf(d)) {
                out += d < 0 ? "-Infinity" : "Infinity";
            } else {
                out += float_repr(d);
            }
            return;
        }
        case Value::Type::string:
            append_json_string(out, v.as_string(), st.ensure_ascii);
            return;
        case Value::Type::list: {
            if (v.items().empty()) {
                out += "[]";
                return;
            }
            out += '[';
            bool first = true;
            for (const Value& item : v.items()) {
                if (!first) out += st.item_sep;
                first = false;
                if (pretty) newline(level + 1);
                append_json(out, item, st, level + 1);
            }
            if (pretty) newline(level);
            out += ']';
            return;
        }
        case Value::Type::dict: {
            if (v.entries().empty()) {
                out += "{}";
                return;
            }
            std::vector<const std::pair<Value, Value>*> order;
            for (const auto& e : v.entries()) order.push_back(&e);
            if (st.sort_keys) {
                std::stable_sort(order.begin(), order.end(),
                                 [](const auto* a, const auto* b) { return json_key(a->first) < json_key(b->first); });
            }
            out += '{';
            bool first = true;
            for (const auto* e : order) {
                if (!first) out += st.item_sep;
                first = false;
                if (pretty) newline(level + 1);
                append_json_string(out, json_key(e->first), st.ensure_ascii);
                out += st.key_sep;
                append_json(out, e->second, st, level + 1);
            }
            if (pretty) newline(level);
            out += '}';
            return;
        }
        case Value::Type::undefined:
            throw std::invalid_argument("Object of type Undefined is not JSON serializable");
        case Value::Type::function:
            throw std::invalid_argument("Object of type function is not JSON serializable");
    }
}

int compare_numbers(const Value& a, const Value& b) {
    if (!a.is_number() && !b.is_number()) return a.as_int() < b.as_int() ? -1 : (a.as_int() > b.as_int() ? 1 : 0);
    const double x = a.as_double(), y = b.as_double();
    return x < y ? -1 : (x > y ? 1 : 0);
}

}  // namespace

std::string to_str(const Value& v) {
    switch (v.type()) {
        case Value::Type::undefined:
            return "";
        case Value::Type::none:
            return "None";
        case Value::Type::boolean:
            return v.as_bool() ? "True" : "False";
        case Value::Type::integer:
            return std::to_string(v.as_int());
        case Value::Type::number:
            return float_repr(v.as_double());
        case Value::Type::string:
            return v.as_string();
        default:
            return to_repr(v);
    }
}

std::string to_repr(const Value& v) {
    switch (v.type()) {
        case Value::Type::string:
            return repr_string(v.as_string());
        case Value::Type::list: {
            std::string out(1, v.is_tuple() ? '(' : '[');
            bool first = true;
            for (const Value& item : v.items()) {
                if (!first) out += ", ";
                first = false;
                out += to_repr(item);
            }
            if (v.is_tuple() && v.items().size() == 1) out += ',';
            out += v.is_tuple() ? ')' : ']';
            return out;
        }
        case Value::Type::dict: {
            std::string out = v.is_namespace() ? "<Namespace {" : "{";
            bool first = true;
            for (const auto& [k, item] : v.entries()) {
                if (!first) out += ", ";
                first = false;
                out += to_repr(k);
                out += ": ";
                out += to_repr(item);
            }
            out += v.is_namespace() ? "}>" : "}";
            return out;
        }
        case Value::Type::function:
            return "<function " + v.hint() + ">";
        default:
            return to_str(v);
    }
}

std::string to_json(const Value& v, const JsonStyle& style) {
    std::string out;
    append_json(out, v, style, 0);
    return out;
}

bool equal(const Value& a, const Value& b) {
    using T = Value::Type;
    if (a.is_numeric() && b.is_numeric()) return compare_numbers(a, b) == 0;
    if (a.type() != b.type()) return false;
    switch (a.type()) {
        case T::undefined:
        case T::none:
            return true;
        case T::string:
            return a.as_string() == b.as_string();
        case T::list: {
            if (a.is_tuple() != b.is_tuple() || a.items().size() != b.items().size()) return false;
            for (size_t i = 0; i < a.items().size(); ++i) {
                if (!equal(a.items()[i], b.items()[i])) return false;
            }
            return true;
        }
        case T::dict: {
            if (a.entries().size() != b.entries().size()) return false;
            for (const auto& [k, v] : a.entries()) {
                const Value* other = b.find(k);
                if (!other || !equal(v, *other)) return false;
            }
            return true;
        }
        case T::function:
            return &a.callable() == &b.callable();
        default:
            return false;
    }
}

bool less(const Value& a, const Value& b) {
    if (a.is_numeric() && b.is_numeric()) return compare_numbers(a, b) < 0;
    if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
        const auto& x = a.items();
        const auto& y = b.items();
        for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
            if (!equal(x[i], y[i])) return less(x[i], y[i]);
        }
        return x.size() < y.size();
    }
    throw std::invalid_argument(std::string("'<' not supported between instances of '") + a.type_name() + "' and '" +
                                b.type_name() + "'");
}

}  // namespace gridlm::jinja
