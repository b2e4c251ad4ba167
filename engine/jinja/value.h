// The values a chat template computes with, with Python's semantics (HF renders chat templates
// with Python jinja2, so a template sees Python str/int/float/list/dict/None objects): printing
// follows str(), repr() and json.dumps(); equality, ordering and truth follow Python; `undefined`
// follows jinja2's default Undefined (prints as nothing, is false, fails on attribute access).
//
// Lists and dicts are shared by reference, as in Python; templates cannot mutate them (jinja2's
// ImmutableSandboxedEnvironment refuses list.append, dict.update...), so sharing is safe. Only
// the interpreter updates two kinds in place, as jinja2 does: namespace() objects
// (`{% set ns.x = ... %}`) and a for loop's `loop`. Dicts keep insertion order (Python 3.7+),
// which tojson output depends on.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gridlm::jinja {

class Value;
struct CallArgs;

using ValueList = std::vector<Value>;
// Python dict: keys in insertion order; lookup is linear (chat template dicts are small).
using ValueDict = std::vector<std::pair<Value, Value>>;
// A callable: macro, global function (range, namespace...) or bound method ("x".strip).
using Function = std::function<Value(CallArgs&)>;

class Value {
public:
    enum class Type : uint8_t { undefined, none, boolean, integer, number, string, list, dict, function };

    Value() = default;  // undefined
    static Value undefined(std::string hint = {});
    static Value none();
    Value(bool b);
    Value(int v) : Value(static_cast<int64_t>(v)) {}
    Value(int64_t v);
    Value(double v);
    Value(std::string s);
    Value(std::string_view s) : Value(std::string(s)) {}
    Value(const char* s) : Value(std::string(s)) {}
    static Value list(ValueList items = {}, bool tuple = false);
    static Value dict(ValueDict items = {});
    // jinja2 namespace(): a dict whose keys `{% set ns.key = v %}` may rebind.
    static Value namespace_object(ValueDict items = {});
    static Value function(Function f, std::string name);

    Type type() const { return type_; }
    bool is_undefined() const { return type_ == Type::undefined; }
    bool is_none() const { return type_ == Type::none; }
    bool is_bool() const { return type_ == Type::boolean; }
    bool is_int() const { return type_ == Type::integer; }    // bool is not counted here
    bool is_number() const { return type_ == Type::number; }  // float
    bool is_numeric() const { return is_int() || is_number() || is_bool(); }
    bool is_string() const { return type_ == Type::string; }
    bool is_list() const { return type_ == Type::list; }
    bool is_dict() const { return type_ == Type::dict; }
    bool is_function() const { return type_ == Type::function; }
    bool is_tuple() const { return is_list() && tuple_; }
    bool is_namespace() const { return is_dict() && namespace_; }

    bool as_bool() const { return b_; }
    int64_t as_int() const { return i_; }
    double as_double() const;  // int, bool or float, as Python float()
    const std::string& as_string() const { return s_; }
    const ValueList& items() const { return *list_; }
    const ValueDict& entries() const { return *dict_; }
    // For the interpreter only: `{% set ns.x = ... %}` on a namespace, and the loop object.
    ValueDict& mutable_entries() { return *dict_; }
    const Function& callable() const { return *fn_; }
    // Undefined: why (for messages: "'foo' is undefined"); function: its name.
    const std::string& hint() const { return s_; }

    // Dict lookup by Python equality; nullptr when absent.
    const Value* find(const Value& key) const;
    const Value* find(std::string_view key) const;
    const Value* find(const std::string& key) const { return find(std::string_view(key)); }
    const Value* find(const char* key) const { return find(std::string_view(key)); }

    // Python truth: empty, zero, None and undefined are false.
    bool truthy() const;
    // Python type name for messages ("str", "int", "list", "dict", "NoneType", "undefined").
    const char* type_name() const;

private:
    Type type_ = Type::undefined;
    bool b_ = false;
    bool tuple_ = false;
    bool namespace_ = false;
    int64_t i_ = 0;
    double d_ = 0.0;
    std::string s_;
    std::shared_ptr<ValueList> list_;
    std::shared_ptr<ValueDict> dict_;
    std::shared_ptr<Function> fn_;
};

// Positional and keyword arguments of a call.
struct CallArgs {
    ValueList positional;
    std::vector<std::pair<std::string, Value>> keyword;

    // The argument at `pos` or named `name`; undefined when given neither way.
    Value get(size_t pos, std::string_view name) const;
    bool has(size_t pos, std::string_view name) const;
};

// Python str(v); undefined prints as "".
std::string to_str(const Value& v);
// Python repr(v).
std::string to_repr(const Value& v);
// Python float repr: shortest round-trip digits, "1.0", "1e-05", "inf", "nan".
std::string float_repr(double d);

// json.dumps(v, ensure_ascii, indent, separators, sort_keys) as HF's tojson filter calls it.
// indent < 0: none (one line). item_sep/key_sep: the separators (Python's defaults: ", " and ": "
// without indent, "," and ": " with one). Throws std::invalid_argument for undefined or a function.
struct JsonStyle {
    int indent = -1;
    std::string indent_text;  // indent given as a string (indent="\t"); used when not empty
    std::string item_sep = ", ";
    std::string key_sep = ": ";
    bool ensure_ascii = false;
    bool sort_keys = false;

    // separators=(",", ":"): the shortest form, for JSON passed between programs.
    static JsonStyle compact() {
        JsonStyle st;
        st.item_sep = ",";
        st.key_sep = ":";
        return st;
    }
};
std::string to_json(const Value& v, const JsonStyle& style);

// A JSON text as Python's json.loads gives it to a template: objects keep their member order,
// integers stay integers. Throws std::invalid_argument for malformed JSON.
Value parse_json_value(std::string_view text);

// Python ==.
bool equal(const Value& a, const Value& b);
// Python <: numbers, strings (code point order), lists (element-wise). Throws std::invalid_argument
// for other pairs ("'<' not supported between instances of 'dict' and 'int'").
bool less(const Value& a, const Value& b);

}  // namespace gridlm::jinja
