// jinja2's builtin tests (`x is defined`, `x is string`...; see builtins.h).
#include <functional>
#include <map>
#include <stdexcept>

#include "engine/jinja/builtins.h"
#include "engine/jinja/python.h"

namespace gridlm::jinja {

using std::runtime_error;

namespace {

using TestFn = std::function<bool(const Value&, const CallArgs&)>;

bool is_iterable(const Value& v) { return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined(); }

const std::map<std::string, TestFn>& tests() {
    static const std::map<std::string, TestFn> table = [] {
        std::map<std::string, TestFn> t;
        t["boolean"] = [](const Value& v, const CallArgs&) { return v.is_bool(); };
        t["callable"] = [](const Value& v, const CallArgs&) { return v.is_function(); };
        t["defined"] = [](const Value& v, const CallArgs&) { return !v.is_undefined(); };
        t["undefined"] = [](const Value& v, const CallArgs&) { return v.is_undefined(); };
        t["divisibleby"] = [](const Value& v, const CallArgs& a) {
            const int64_t n = to_index(a.get(0, "num"), "divisibleby");
            if (n == 0) throw runtime_error("integer division or modulo by zero");
            return py_mod(to_index(v, "divisibleby"), n) == 0;
        };
        t["eq"] = [](const Value& v, const CallArgs& a) { return equal(v, a.get(0, "other")); };
        t["equalto"] = t["eq"];
        t["=="] = t["eq"];
        t["ne"] = [](const Value& v, const CallArgs& a) { return !equal(v, a.get(0, "other")); };
        t["!="] = t["ne"];
        t["lt"] = [](const Value& v, const CallArgs& a) { return less(v, a.get(0, "other")); };
        t["lessthan"] = t["lt"];
        t["<"] = t["lt"];
        t["le"] = [](const Value& v, const CallArgs& a) { return !less(a.get(0, "other"), v); };
        t["<="] = t["le"];
        t["gt"] = [](const Value& v, const CallArgs& a) { return less(a.get(0, "other"), v); };
        t["greaterthan"] = t["gt"];
        t[">"] = t["gt"];
        t["ge"] = [](const Value& v, const CallArgs& a) { return !less(v, a.get(0, "other")); };
        t[">="] = t["ge"];
        t["escaped"] = [](const Value&, const CallArgs&) { return false; };
        t["even"] = [](const Value& v, const CallArgs&) { return py_mod(to_index(v, "even"), 2) == 0; };
        t["odd"] = [](const Value& v, const CallArgs&) { return py_mod(to_index(v, "odd"), 2) == 1; };
        t["false"] = [](const Value& v, const CallArgs&) { return v.is_bool() && !v.as_bool(); };
        t["true"] = [](const Value& v, const CallArgs&) { return v.is_bool() && v.as_bool(); };
        t["filter"] = [](const Value& v, const CallArgs&) { return v.is_string() && has_filter(v.as_string()); };
        t["test"] = [](const Value& v, const CallArgs&) { return v.is_string() && has_test(v.as_string()); };
        t["float"] = [](const Value& v, const CallArgs&) { return v.is_number(); };
        t["integer"] = [](const Value& v, const CallArgs&) { return v.is_int(); };
        t["number"] = [](const Value& v, const CallArgs&) { return v.is_numeric(); };
        t["in"] = [](const Value& v, const CallArgs& a) { return compare_op("in", v, a.get(0, "seq")); };
        t["iterable"] = [](const Value& v, const CallArgs&) { return is_iterable(v); };
        t["sequence"] = [](const Value& v, const CallArgs&) { return v.is_string() || v.is_list() || v.is_dict(); };
        t["mapping"] = [](const Value& v, const CallArgs&) { return v.is_dict() && !v.is_namespace(); };
        t["none"] = [](const Value& v, const CallArgs&) { return v.is_none(); };
        t["string"] = [](const Value& v, const CallArgs&) { return v.is_string(); };
        t["lower"] = [](const Value& v, const CallArgs&) {
            return v.is_string() && ascii_lower(v.as_string()) == v.as_string();
        };
        t["upper"] = [](const Value& v, const CallArgs&) {
            return v.is_string() && ascii_upper(v.as_string()) == v.as_string();
        };
        t["sameas"] = [](const Value& v, const CallArgs& a) {
            const Value o = a.get(0, "other");
            if (v.type() != o.type()) return false;
            if (v.is_none() || v.is_undefined()) return true;
            if (v.is_bool()) return v.as_bool() == o.as_bool();
            if (v.is_int()) return v.as_int() == o.as_int() && v.as_int() >= -5 && v.as_int() <= 256;
            if (v.is_list()) return &v.items() == &o.items();
            if (v.is_dict()) return &v.entries() == &o.entries();
            return false;
        };
        return t;
    }();
    return table;
}

}  // namespace

bool apply_test(const std::string& name, const Value& input, const CallArgs& args) {
    const auto& table = tests();
    auto it = table.find(name);
    if (it == table.end()) throw runtime_error("no test named '" + name + "'");
    return it->second(input, args);
}

bool has_test(const std::string& name) { return tests().count(name) != 0; }

}  // namespace gridlm::jinja
