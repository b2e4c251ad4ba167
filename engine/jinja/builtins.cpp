// Attribute and item access, operators and iteration with Python / jinja2 semantics (see
// builtins.h); the filters are in filters.cpp, the tests in tests.cpp, str methods in python.cpp.
#include "engine/jinja/builtins.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>

#include "engine/core/error.h"
#include "engine/jinja/python.h"
#include "engine/tokenizer/utf8.h"

namespace gridlm::jinja {

using std::runtime_error;

namespace {

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
    if (a.is_undefined()) undefined_error(a);
    if (b.is_undefined()) undefined_error(b);
    throw runtime_error("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" + b.type_name() +
                        "'");
}

const char* const mutating_methods[] = {"append",  "extend", "insert",     "pop",     "remove", "clear",  "sort",
                                        "reverse", "update", "setdefault", "popitem", "add",    "discard"};

bool is_mutating(const std::string& name) {
    for (const char* m : mutating_methods) {
        if (name == m) return true;
    }
    return false;
}

Value unsafe(const Value& obj, const std::string& name) {
    return Value::undefined("access to attribute '" + name + "' of '" + obj.type_name() +
                            "' object is unsafe (templates render in an immutable sandbox, as in HF transformers)");
}

}  // namespace

Value dict_method(const Value& obj, const std::string& name) {
    if (name == "items") {
        return bound(obj, name, [](const Value& d, CallArgs&) {
            ValueList out;
            for (const auto& [k, v] : d.entries()) out.push_back(Value::list({k, v}, true));
            return Value::list(std::move(out));
        });
    }
    if (name == "keys" || name == "values") {
        const bool keys = name == "keys";
        return bound(obj, name, [keys](const Value& d, CallArgs&) {
            ValueList out;
            for (const auto& [k, v] : d.entries()) out.push_back(keys ? k : v);
            return Value::list(std::move(out));
        });
    }
    if (name == "get") {
        return bound(obj, name, [](const Value& d, CallArgs& a) {
            const Value* v = d.find(a.get(0, "key"));
            if (v) return *v;
            const Value dflt = a.get(1, "default");
            return dflt.is_undefined() ? Value::none() : dflt;
        });
    }
    if (name == "copy") return bound(obj, name, [](const Value& d, CallArgs&) { return Value::dict(d.entries()); });
    return Value();
}

namespace {

Value list_method(const Value& obj, const std::string& name) {
    if (name == "index") {
        return bound(obj, name, [](const Value& l, CallArgs& a) {
            const Value x = a.get(0, "value");
            for (size_t i = 0; i < l.items().size(); ++i) {
                if (equal(l.items()[i], x)) return Value(static_cast<int64_t>(i));
            }
            throw runtime_error(to_repr(x) + " is not in list");
        });
    }
    if (name == "count") {
        return bound(obj, name, [](const Value& l, CallArgs& a) {
            const Value x = a.get(0, "value");
            int64_t n = 0;
            for (const Value& v : l.items()) n += equal(v, x);
            return Value(n);
        });
    }
    if (name == "copy") return bound(obj, name, [](const Value& l, CallArgs&) { return Value::list(l.items()); });
    return Value();
}

// Results of * on sequences and of range() stay below this many bytes / items: a template's
// typo must not exhaust a rank's memory.
constexpr int64_t max_repeat = int64_t{1} << 24;

// 64-bit int arithmetic; Python's ints are unbounded, so an overflow here is an error.
[[noreturn]] void overflow() { throw runtime_error("integer overflow (values beyond 64 bits are not supported)"); }
int64_t add_checked(int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) overflow();
    return r;
}
int64_t sub_checked(int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r)) overflow();
    return r;
}
int64_t mul_checked(int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r)) overflow();
    return r;
}

Value repeat(const Value& seq, int64_t n) {
    const int64_t unit =
        seq.is_string() ? static_cast<int64_t>(seq.as_string().size()) : static_cast<int64_t>(seq.items().size());
    if (n > 0 && unit > 0 && n > max_repeat / unit) throw runtime_error("sequence repetition of over 16 Mi items");
    if (seq.is_string()) {
        std::string out;
        for (int64_t i = 0; i < n; ++i) out += seq.as_string();
        return Value(out);
    }
    ValueList out;
    for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.items().begin(), seq.items().end());
    return Value::list(std::move(out), seq.is_tuple());
}

}  // namespace

size_t char_length(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xc0) != 0x80;
    return n;
}

void undefined_error(const Value& v) {
    throw runtime_error(v.hint().empty() ? std::string("undefined value used") : v.hint());
}

Value get_attr(const Value& obj, const std::string& name) {
    if (obj.is_undefined()) undefined_error(obj);
    if (!name.empty() && name[0] == '_') return unsafe(obj, name);
    if (obj.is_dict()) {
        if (!obj.is_namespace()) {
            Value m = dict_method(obj, name);
            if (!m.is_undefined()) return m;
            if (is_mutating(name)) return unsafe(obj, name);
        }
        if (const Value* v = obj.find(name)) return *v;
        return Value::undefined(
            str("'", obj.is_namespace() ? "Namespace" : "dict object", "' has no attribute '", name, "'"));
    }
    if (obj.is_string()) return string_method(obj, name);
    if (obj.is_list()) {
        Value m = list_method(obj, name);
        if (!m.is_undefined()) return m;
        if (is_mutating(name)) return unsafe(obj, name);
        return Value::undefined("'list object' has no attribute '" + name + "'");
    }
    return Value::undefined(str("'", to_str(obj), "' has no attribute '", name, "'"));
}

Value get_item(const Value& obj, const Value& key) {
    if (obj.is_undefined()) undefined_error(obj);
    if (obj.is_dict()) {
        if (const Value* v = obj.find(key)) return *v;
        if (key.is_string()) {
            if (obj.is_namespace()) return Value::undefined("'Namespace' has no attribute '" + key.as_string() + "'");
            Value m = dict_method(obj, key.as_string());
            if (!m.is_undefined()) return m;
        }
        return Value::undefined("'dict object' has no attribute " + to_repr(key));
    }
    if (obj.is_list() || obj.is_string()) {
        if (key.is_string()) return get_attr(obj, key.as_string());
        if (!key.is_int() && !key.is_bool()) {
            return Value::undefined(std::string(obj.type_name()) + " indices must be integers, not " + key.type_name());
        }
        int64_t i = key.as_int();
        if (obj.is_list()) {
            const int64_t n = static_cast<int64_t>(obj.items().size());
            if (i < 0) i += n;
            if (i < 0 || i >= n) return Value::undefined("list object has no element " + std::to_string(key.as_int()));
            return obj.items()[static_cast<size_t>(i)];
        }
        const std::vector<std::string> cs = chars_of(obj.as_string());
        const int64_t n = static_cast<int64_t>(cs.size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) return Value::undefined("str object has no element " + std::to_string(key.as_int()));
        return Value(cs[static_cast<size_t>(i)]);
    }
    if (key.is_string()) return get_attr(obj, key.as_string());
    return Value::undefined(str("'", obj.type_name(), "' object is not subscriptable"));
}

Value get_slice(const Value& obj, const Value& start_v, const Value& stop_v, const Value& step_v) {
    if (obj.is_undefined()) undefined_error(obj);
    auto opt = [](const Value& v) -> std::optional<int64_t> {
        if (v.is_undefined() || v.is_none()) return std::nullopt;
        return to_index(v, "slice");
    };
    const std::optional<int64_t> start_o = opt(start_v), stop_o = opt(stop_v), step_o = opt(step_v);
    const int64_t step = step_o.value_or(1);
    if (step == 0) throw runtime_error("slice step cannot be zero");
    std::vector<std::string> cs;
    int64_t n;
    if (obj.is_string()) {
        cs = chars_of(obj.as_string());
        n = static_cast<int64_t>(cs.size());
    } else if (obj.is_list()) {
        n = static_cast<int64_t>(obj.items().size());
    } else {
        throw runtime_error(std::string("'") + obj.type_name() + "' object is not subscriptable");
    }
    // Python's slice.indices().
    auto clamp = [&](std::optional<int64_t> v, int64_t dflt) {
        if (!v) return dflt;
        int64_t x = *v;
        if (x < 0) {
            x += n;
            if (x < 0) x = step < 0 ? -1 : 0;
        } else if (x >= n) {
            x = step < 0 ? n - 1 : n;
        }
        return x;
    };
    const int64_t start = clamp(start_o, step < 0 ? n - 1 : 0);
    const int64_t stop = clamp(stop_o, step < 0 ? -1 : n);
    std::vector<size_t> idx;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) idx.push_back(static_cast<size_t>(i));
    if (obj.is_string()) {
        std::string out;
        for (size_t i : idx) out += cs[i];
        return Value(out);
    }
    ValueList out;
    for (size_t i : idx) out.push_back(obj.items()[i]);
    return Value::list(std::move(out), obj.is_tuple());
}

namespace {

// Strings a template builds stay below this size (see max_output_bytes in template.cpp).
constexpr size_t max_string_bytes = size_t{64} << 20;

Value sized(std::string s) {
    if (s.size() > max_string_bytes) throw runtime_error("a string of more than 64 MiB");
    return Value(std::move(s));
}

}  // namespace

Value binary_op(const std::string& op, const Value& a, const Value& b) {
    if (op == "~") return sized(to_str(a) + to_str(b));
    const bool nums = a.is_numeric() && b.is_numeric();
    const bool ints = nums && !a.is_number() && !b.is_number();
    if (op == "+") {
        if (ints) return Value(add_checked(a.as_int(), b.as_int()));
        if (nums) return Value(a.as_double() + b.as_double());
        if (a.is_string() && b.is_string()) return sized(a.as_string() + b.as_string());
        if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
            if (a.items().size() + b.items().size() > static_cast<size_t>(max_repeat))
                throw runtime_error("a list of over 16 Mi items");
            ValueList out = a.items();
            out.insert(out.end(), b.items().begin(), b.items().end());
            return Value::list(std::move(out), a.is_tuple());
        }
        unsupported(op, a, b);
    }
    if (op == "-") {
        if (ints) return Value(sub_checked(a.as_int(), b.as_int()));
        if (nums) return Value(a.as_double() - b.as_double());
        unsupported(op, a, b);
    }
    if (op == "*") {
        if (ints) return Value(mul_checked(a.as_int(), b.as_int()));
        if (nums) return Value(a.as_double() * b.as_double());
        if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) return repeat(a, b.as_int());
        if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return repeat(b, a.as_int());
        unsupported(op, a, b);
    }
    if (op == "/") {
        if (!nums) unsupported(op, a, b);
        if (b.as_double() == 0.0) throw runtime_error("division by zero");
        return Value(a.as_double() / b.as_double());
    }
    if (op == "//") {
        if (!nums) unsupported(op, a, b);
        if (b.as_double() == 0.0) throw runtime_error("integer division or modulo by zero");
        if (ints) return Value(floor_div(a.as_int(), b.as_int()));
        return Value(std::floor(a.as_double() / b.as_double()));
    }
    if (op == "%") {
        if (a.is_string()) {
            return Value(percent_format(a.as_string(), b.is_tuple() ? b.items() : ValueList{b}));
        }
        if (!nums) unsupported(op, a, b);
        if (b.as_double() == 0.0) throw runtime_error("integer division or modulo by zero");
        if (ints) return Value(py_mod(a.as_int(), b.as_int()));
        double r = std::fmod(a.as_double(), b.as_double());
        if (r != 0.0 && ((r < 0) != (b.as_double() < 0))) r += b.as_double();
        return Value(r);
    }
    if (op == "**") {
        if (!nums) unsupported(op, a, b);
        if (ints && b.as_int() >= 0) {
            int64_t r = 1;
            for (int64_t i = 0; i < b.as_int(); ++i) {
                r = mul_checked(r, a.as_int());
                if (r == 0 || r == 1) break;  // 0 and 1 stay; -1 alternates (checked below)
            }
            if (a.as_int() == -1) r = (b.as_int() % 2) ? -1 : 1;
            return Value(r);
        }
        return Value(std::pow(a.as_double(), b.as_double()));
    }
    throw runtime_error("unknown operator " + op);
}

bool compare_op(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return equal(a, b);
    if (op == "!=") return !equal(a, b);
    if (op == "in" || op == "notin") {
        bool found = false;
        if (b.is_string()) {
            if (!a.is_string()) {
                if (a.is_undefined()) undefined_error(a);
                throw runtime_error(std::string("'in <string>' requires string as left operand, not ") + a.type_name());
            }
            found = b.as_string().find(a.as_string()) != std::string::npos;
        } else if (b.is_list()) {
            found = std::any_of(b.items().begin(), b.items().end(), [&](const Value& x) { return equal(x, a); });
        } else if (b.is_dict()) {
            found = b.find(a) != nullptr;
        } else if (!b.is_undefined()) {
            throw runtime_error(std::string("argument of type '") + b.type_name() + "' is not iterable");
        }
        return op == "in" ? found : !found;
    }
    if (a.is_undefined()) undefined_error(a);
    if (b.is_undefined()) undefined_error(b);
    if (op == "<") return less(a, b);
    if (op == ">") return less(b, a);
    if (op == "<=") return !less(b, a);
    if (op == ">=") return !less(a, b);
    throw runtime_error("unknown comparison " + op);
}

Value unary_op(const std::string& op, const Value& a) {
    if (a.is_undefined()) undefined_error(a);
    if (!a.is_numeric()) throw runtime_error("bad operand type for unary " + op + ": '" + a.type_name() + "'");
    if (op == "+") return a.is_number() ? Value(a.as_double()) : Value(a.as_int());
    return a.is_number() ? Value(-a.as_double()) : Value(sub_checked(0, a.as_int()));
}

ValueList iterate(const Value& v) {
    switch (v.type()) {
        case Value::Type::undefined:
            return {};
        case Value::Type::list:
            return v.items();
        case Value::Type::dict: {
            ValueList keys;
            for (const auto& [k, x] : v.entries()) keys.push_back(k);
            return keys;
        }
        case Value::Type::string: {
            ValueList out;
            for (std::string& c : chars_of(v.as_string())) out.push_back(Value(std::move(c)));
            return out;
        }
        default:
            throw runtime_error(std::string("'") + v.type_name() + "' object is not iterable");
    }
}

}  // namespace gridlm::jinja
