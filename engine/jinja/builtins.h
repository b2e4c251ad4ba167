// Operators, filters, tests, attribute access and methods of template values (internal to
// engine/jinja). Semantics are Python's and jinja2 3.1's builtins
// (https://jinja.palletsprojects.com/en/3.1.x/templates/#list-of-builtin-filters), with
// ImmutableSandboxedEnvironment's refusal of mutating methods. Errors are thrown as
// std::runtime_error with Python-like messages; the interpreter adds the template line.
#pragma once

#include <string>

#include "engine/jinja/value.h"

namespace gridlm::jinja {

// Throws the error an undefined value raises when used ("'foo' is undefined").
[[noreturn]] void undefined_error(const Value& v);

// obj.name: dict key (or dict method), string/list method bound to obj; undefined when absent.
Value get_attr(const Value& obj, const std::string& name);
// obj[key]: list/string index (negative from the end), dict key; undefined when absent.
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step] on a list or string; absent parts are undefined values.
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

// Python binary operator op ("+", "-", "*", "/", "//", "%", "**", "~").
Value binary_op(const std::string& op, const Value& a, const Value& b);
// Python comparison ("==", "!=", "<", "<=", ">", ">=", "in", "notin").
bool compare_op(const std::string& op, const Value& a, const Value& b);
// Unary "-" / "+".
Value unary_op(const std::string& op, const Value& a);

// The items a for loop visits: list items, dict keys, string characters; undefined: none.
ValueList iterate(const Value& v);

// Applies a filter / test by name. Throws for an unknown name.
Value apply_filter(const std::string& name, const Value& input, const CallArgs& args);
bool apply_test(const std::string& name, const Value& input, const CallArgs& args);
bool has_filter(const std::string& name);
bool has_test(const std::string& name);

// Unicode code points of a UTF-8 string, as Python's len() / indexing see them.
size_t char_length(const std::string& s);

// d.name for a dict method (items, keys, values, get, copy) bound to d; undefined otherwise.
Value dict_method(const Value& d, const std::string& name);

}  // namespace gridlm::jinja
