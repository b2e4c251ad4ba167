// Python behaviour of strings and numbers that templates call on (internal to engine/jinja):
// str methods, split/strip/replace rules, %-formatting and str.format, floor division and
// modulo with Python's signs. Errors are std::runtime_error with Python-like messages.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/jinja/value.h"

namespace gridlm::jinja {

// A UTF-8 string's characters (code points), each as its bytes.
std::vector<std::string> chars_of(const std::string& s);
bool is_py_space(char c);
bool is_alpha(char c);  // ASCII letters
std::string ascii_lower(std::string s);
std::string ascii_upper(std::string s);
std::string py_capitalize(const std::string& s);  // str.capitalize()
std::string py_title(const std::string& s);       // str.title()
// str.strip / lstrip / rstrip; chars undefined or None: whitespace.
std::string py_strip(const std::string& s, const Value& chars, bool left, bool right);
// str.split / rsplit (sep None: runs of whitespace); maxsplit undefined: no limit.
Value py_split(const std::string& s, const Value& sep, const Value& maxsplit, bool from_right);
std::string py_replace(const std::string& s, const std::string& from, const std::string& to, int64_t count);
// An int (or bool) index; throws naming `what` otherwise.
int64_t to_index(const Value& v, const char* what);
// str.format: {} {0} {name} fields, .attr / [key] lookups, !r / !s, format specs (format.cpp).
std::string py_format(const std::string& fmt, const CallArgs& args);
// printf-style `fmt % args`: %s %r %d %i %f %% with width and precision (format.cpp).
std::string percent_format(const std::string& fmt, const ValueList& args);
int64_t floor_div(int64_t a, int64_t b);  // Python //
int64_t py_mod(int64_t a, int64_t b);     // Python %, the sign of b

// A method bound to obj: calling the Value calls fn(obj, args).
Value bound(const Value& obj, const std::string& name, std::function<Value(const Value&, CallArgs&)> fn);
// "abc".name as a bound method; undefined when str has no such method.
Value string_method(const Value& obj, const std::string& name);

}  // namespace gridlm::jinja
