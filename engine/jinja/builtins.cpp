// Operators, filters, tests and methods with Python / jinja2 semantics (see builtins.h).
#include "engine/jinja/builtins.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>

#include "engine/tokenizer/utf8.h"

namespace gridlm::jinja {

namespace {

using std::runtime_error;

// ---- strings as code points ------------------------------------------------------------------

std::vector<std::string> chars_of(const std::string& s) {
    std::vector<std::string> out;
    for (size_t i = 0; i < s.size();) {
        size_t n = utf8::sequence_length(s, i);
        if (n == 0) n = 1;
        out.push_back(s.substr(i, n));
        i += n;
    }
    return out;
}

bool is_py_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::string ascii_lower(std::string s) {
    for (char& c : s) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return s;
}

std::string ascii_upper(std::string s) {
    for (char& c : s) {
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
    return s;
}

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::string py_capitalize(const std::string& s) {
    std::string out = ascii_lower(s);
    if (!out.empty()) out[0] = ascii_upper(out.substr(0, 1))[0];
    return out;
}

// Python str.title(): a letter after a non-letter is upper-cased, other letters lower-cased.
std::string py_title(const std::string& s) {
    std::string out = s;
    bool prev_alpha = false;
    for (char& c : out) {
        const bool alpha = is_alpha(c) || static_cast<unsigned char>(c) >= 0x80;
        if (is_alpha(c)) c = prev_alpha ? ascii_lower(std::string(1, c))[0] : ascii_upper(std::string(1, c))[0];
        prev_alpha = alpha;
    }
    return out;
}

// strip/lstrip/rstrip: `chars` undefined or None means whitespace.
std::string py_strip(const std::string& s, const Value& chars, bool left, bool right) {
    std::function<bool(const std::string&)> strip_it;
    std::vector<std::string> set;
    if (chars.is_string()) {
        set = chars_of(chars.as_string());
        strip_it = [&](const std::string& ch) { return std::find(set.begin(), set.end(), ch) != set.end(); };
    } else if (chars.is_undefined() || chars.is_none()) {
        strip_it = [](const std::string& ch) { return ch.size() == 1 && is_py_space(ch[0]); };
    } else {
        throw runtime_error(std::string("strip arg must be None or str, not ") + chars.type_name());
    }
    std::vector<std::string> cs = chars_of(s);
    size_t b = 0, e = cs.size();
    if (left) {
        while (b < e && strip_it(cs[b])) ++b;
    }
    if (right) {
        while (e > b && strip_it(cs[e - 1])) --e;
    }
    std::string out;
    for (size_t i = b; i < e; ++i) out += cs[i];
    return out;
}

Value py_split(const std::string& s, const Value& sep, const Value& maxsplit_v, bool from_right) {
    int64_t maxsplit = maxsplit_v.is_int() ? maxsplit_v.as_int() : -1;
    ValueList parts;
    if (sep.is_undefined() || sep.is_none()) {
        // Runs of whitespace separate; leading/trailing whitespace yields no empty parts.
        std::vector<std::pair<size_t, size_t>> words;
        size_t i = 0;
        while (i < s.size()) {
            while (i < s.size() && is_py_space(s[i])) ++i;
            if (i >= s.size()) break;
            size_t j = i;
            while (j < s.size() && !is_py_space(s[j])) ++j;
            words.emplace_back(i, j);
            i = j;
        }
        if (maxsplit >= 0 && static_cast<int64_t>(words.size()) > maxsplit + 1) {
            if (from_right) {
                const size_t keep = static_cast<size_t>(maxsplit);
                const size_t first = words.size() - keep;
                size_t end = words[first - 1].second;
                parts.push_back(Value(s.substr(0, end).substr(words[0].first)));
                for (size_t k = first; k < words.size(); ++k)
                    parts.push_back(Value(s.substr(words[k].first, words[k].second - words[k].first)));
            } else {
                for (int64_t k = 0; k < maxsplit; ++k)
                    parts.push_back(Value(s.substr(words[k].first, words[k].second - words[k].first)));
                std::string rest = s.substr(words[static_cast<size_t>(maxsplit)].first);
                while (!rest.empty() && is_py_space(rest.back())) rest.pop_back();
                parts.push_back(Value(rest));
            }
        } else {
            for (auto [a, b] : words) parts.push_back(Value(s.substr(a, b - a)));
        }
        return Value::list(std::move(parts));
    }
    if (!sep.is_string()) throw runtime_error(std::string("must be str or None, not ") + sep.type_name());
    const std::string& d = sep.as_string();
    if (d.empty()) throw runtime_error("empty separator");
    std::vector<std::string> out;
    if (!from_right) {
        size_t start = 0;
        int64_t n = 0;
        for (;;) {
            const size_t at = (maxsplit < 0 || n < maxsplit) ? s.find(d, start) : std::string::npos;
            if (at == std::string::npos) {
                out.push_back(s.substr(start));
                break;
            }
            out.push_back(s.substr(start, at - start));
            start = at + d.size();
            ++n;
        }
    } else {
        size_t end = s.size();
        int64_t n = 0;
        for (;;) {
            size_t at = std::string::npos;
            if ((maxsplit < 0 || n < maxsplit) && end >= d.size()) at = s.rfind(d, end - d.size());
            if (at == std::string::npos) {
                out.insert(out.begin(), s.substr(0, end));
                break;
            }
            out.insert(out.begin(), s.substr(at + d.size(), end - at - d.size()));
            end = at;
            ++n;
        }
    }
    for (auto& p : out) parts.push_back(Value(std::move(p)));
    return Value::list(std::move(parts));
}

std::string py_replace(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
    if (count == 0) return s;
    std::string out;
    if (from.empty()) {
        // Python inserts `to` between characters and at both ends.
        int64_t n = 0;
        for (const std::string& ch : chars_of(s)) {
            if (count < 0 || n < count) {
                out += to;
                ++n;
            }
            out += ch;
        }
        if (count < 0 || n < count) out += to;
        return out;
    }
    size_t start = 0;
    int64_t n = 0;
    for (;;) {
        const size_t at = (count < 0 || n < count) ? s.find(from, start) : std::string::npos;
        if (at == std::string::npos) break;
        out.append(s, start, at - start);
        out += to;
        start = at + from.size();
        ++n;
    }
    out.append(s, start, std::string::npos);
    return out;
}

bool starts_or_ends(const std::string& s, const Value& what, bool ends) {
    auto one = [&](const Value& p) {
        if (!p.is_string())
            throw runtime_error(std::string(ends ? "endswith" : "startswith") +
                                " first arg must be str or a tuple of str, not " + p.type_name());
        const std::string& x = p.as_string();
        if (x.size() > s.size()) return false;
        return ends ? s.compare(s.size() - x.size(), x.size(), x) == 0 : s.compare(0, x.size(), x) == 0;
    };
    if (what.is_list()) {
        for (const Value& p : what.items()) {
            if (one(p)) return true;
        }
        return false;
    }
    return one(what);
}

int64_t to_index(const Value& v, const char* what) {
    if (v.is_int() || v.is_bool()) return v.as_int();
    throw runtime_error(std::string(what) + " indices must be integers, not " + v.type_name());
}

// Python's str.format for the forms templates use: {} {0} {name}, with {{ and }} escapes.
std::string py_format(const std::string& fmt, const CallArgs& args) {
    std::string out;
    size_t auto_index = 0;
    for (size_t i = 0; i < fmt.size(); ++i) {
        const char c = fmt[i];
        if (c == '{' && i + 1 < fmt.size() && fmt[i + 1] == '{') {
            out += '{';
            ++i;
        } else if (c == '}' && i + 1 < fmt.size() && fmt[i + 1] == '}') {
            out += '}';
            ++i;
        } else if (c == '{') {
            const size_t close = fmt.find('}', i);
            if (close == std::string::npos) throw runtime_error("Single '{' encountered in format string");
            std::string field = fmt.substr(i + 1, close - i - 1);
            const size_t colon = field.find_first_of(":!");
            if (colon != std::string::npos) field = field.substr(0, colon);
            Value v;
            if (field.empty()) {
                v = args.get(auto_index++, "\x01");
            } else if (std::isdigit(static_cast<unsigned char>(field[0]))) {
                v = args.get(static_cast<size_t>(std::stoul(field)), "\x01");
            } else {
                v = args.get(static_cast<size_t>(-1), field);
            }
            if (v.is_undefined()) throw runtime_error("format: no argument for field '{" + field + "}'");
            out += to_str(v);
            i = close;
        } else {
            out += c;
        }
    }
    return out;
}

// printf-style `fmt % args` (the format filter): %s %r %d %i %f %% with an optional precision.
std::string percent_format(const std::string& fmt, const ValueList& args) {
    std::string out;
    size_t k = 0;
    for (size_t i = 0; i < fmt.size(); ++i) {
        if (fmt[i] != '%') {
            out += fmt[i];
            continue;
        }
        if (i + 1 < fmt.size() && fmt[i + 1] == '%') {
            out += '%';
            ++i;
            continue;
        }
        size_t j = i + 1;
        std::string spec = "%";
        while (j < fmt.size() && (std::isdigit(static_cast<unsigned char>(fmt[j])) || fmt[j] == '.' || fmt[j] == '-'))
            spec += fmt[j++];
        if (j >= fmt.size()) throw runtime_error("incomplete format");
        const char conv = fmt[j];
        if (k >= args.size()) throw runtime_error("not enough arguments for format string");
        const Value& a = args[k++];
        char buf[128];
        if (conv == 's') {
            out += to_str(a);
        } else if (conv == 'r') {
            out += to_repr(a);
        } else if (conv == 'd' || conv == 'i') {
            if (!a.is_numeric())
                throw runtime_error(std::string("%d format: a real number is required, not ") + a.type_name());
            std::snprintf(buf, sizeof(buf), (spec + "lld").c_str(),
                          static_cast<long long>(a.is_number() ? std::trunc(a.as_double()) : a.as_int()));
            out += buf;
        } else if (conv == 'f') {
            if (!a.is_numeric()) throw runtime_error(std::string("must be real number, not ") + a.type_name());
            std::snprintf(buf, sizeof(buf), (spec + "f").c_str(), a.as_double());
            out += buf;
        } else {
            throw runtime_error(std::string("unsupported format character '") + conv + "'");
        }
        i = j;
    }
    if (k < args.size()) throw runtime_error("not all arguments converted during string formatting");
    return out;
}

Value bound(const Value& obj, const std::string& name, std::function<Value(const Value&, CallArgs&)> fn) {
    return Value::function([obj, fn](CallArgs& args) { return fn(obj, args); }, name);
}

Value string_method(const Value& obj, const std::string& name) {
    static const std::map<std::string, std::function<Value(const Value&, CallArgs&)>> methods = {
        {"strip",
         [](const Value& s, CallArgs& a) { return Value(py_strip(s.as_string(), a.get(0, "chars"), true, true)); }},
        {"lstrip",
         [](const Value& s, CallArgs& a) { return Value(py_strip(s.as_string(), a.get(0, "chars"), true, false)); }},
        {"rstrip",
         [](const Value& s, CallArgs& a) { return Value(py_strip(s.as_string(), a.get(0, "chars"), false, true)); }},
        {"split", [](const Value& s,
                     CallArgs& a) { return py_split(s.as_string(), a.get(0, "sep"), a.get(1, "maxsplit"), false); }},
        {"rsplit", [](const Value& s,
                      CallArgs& a) { return py_split(s.as_string(), a.get(0, "sep"), a.get(1, "maxsplit"), true); }},
        {"splitlines",
         [](const Value& s, CallArgs&) {
             ValueList out;
             const std::string& x = s.as_string();
             size_t start = 0;
             for (size_t i = 0; i < x.size(); ++i) {
                 if (x[i] == '\n' || x[i] == '\r') {
                     out.push_back(Value(x.substr(start, i - start)));
                     if (x[i] == '\r' && i + 1 < x.size() && x[i + 1] == '\n') ++i;
                     start = i + 1;
                 }
             }
             if (start < x.size()) out.push_back(Value(x.substr(start)));
             return Value::list(std::move(out));
         }},
        {"startswith",
         [](const Value& s, CallArgs& a) { return Value(starts_or_ends(s.as_string(), a.get(0, "prefix"), false)); }},
        {"endswith",
         [](const Value& s, CallArgs& a) { return Value(starts_or_ends(s.as_string(), a.get(0, "suffix"), true)); }},
        {"upper", [](const Value& s, CallArgs&) { return Value(ascii_upper(s.as_string())); }},
        {"lower", [](const Value& s, CallArgs&) { return Value(ascii_lower(s.as_string())); }},
        {"title", [](const Value& s, CallArgs&) { return Value(py_title(s.as_string())); }},
        {"capitalize", [](const Value& s, CallArgs&) { return Value(py_capitalize(s.as_string())); }},
        {"replace",
         [](const Value& s, CallArgs& a) {
             const Value from = a.get(0, "old"), to = a.get(1, "new"), count = a.get(2, "count");
             if (!from.is_string() || !to.is_string()) throw runtime_error("replace() arguments must be str");
             return Value(
                 py_replace(s.as_string(), from.as_string(), to.as_string(), count.is_int() ? count.as_int() : -1));
         }},
        {"find",
         [](const Value& s, CallArgs& a) {
             const Value sub = a.get(0, "sub");
             if (!sub.is_string()) throw runtime_error("find() argument must be str");
             const size_t at = s.as_string().find(sub.as_string());
             return Value(at == std::string::npos ? int64_t{-1}
                                                  : static_cast<int64_t>(char_length(s.as_string().substr(0, at))));
         }},
        {"rfind",
         [](const Value& s, CallArgs& a) {
             const Value sub = a.get(0, "sub");
             if (!sub.is_string()) throw runtime_error("rfind() argument must be str");
             const size_t at = s.as_string().rfind(sub.as_string());
             return Value(at == std::string::npos ? int64_t{-1}
                                                  : static_cast<int64_t>(char_length(s.as_string().substr(0, at))));
         }},
        {"count",
         [](const Value& s, CallArgs& a) {
             const Value sub = a.get(0, "sub");
             if (!sub.is_string()) throw runtime_error("count() argument must be str");
             const std::string& x = s.as_string();
             const std::string& d = sub.as_string();
             if (d.empty()) return Value(static_cast<int64_t>(char_length(x) + 1));
             int64_t n = 0;
             for (size_t at = x.find(d); at != std::string::npos; at = x.find(d, at + d.size())) ++n;
             return Value(n);
         }},
        {"join",
         [](const Value& s, CallArgs& a) {
             std::string out;
             bool first = true;
             for (const Value& v : iterate(a.get(0, "iterable"))) {
                 if (!v.is_string())
                     throw runtime_error(std::string("sequence item: expected str instance, ") + v.type_name() +
                                         " found");
                 if (!first) out += s.as_string();
                 first = false;
                 out += v.as_string();
             }
             return Value(out);
         }},
        {"format", [](const Value& s, CallArgs& a) { return Value(py_format(s.as_string(), a)); }},
        {"isdigit",
         [](const Value& s, CallArgs&) {
             const std::string& x = s.as_string();
             return Value(!x.empty() && std::all_of(x.begin(), x.end(), [](char c) { return c >= '0' && c <= '9'; }));
         }},
        {"isalpha",
         [](const Value& s, CallArgs&) {
             const std::string& x = s.as_string();
             return Value(!x.empty() && std::all_of(x.begin(), x.end(), [](char c) { return is_alpha(c); }));
         }},
        {"isalnum",
         [](const Value& s, CallArgs&) {
             const std::string& x = s.as_string();
             return Value(!x.empty() && std::all_of(x.begin(), x.end(),
                                                    [](char c) { return is_alpha(c) || (c >= '0' && c <= '9'); }));
         }},
        {"isspace",
         [](const Value& s, CallArgs&) {
             const std::string& x = s.as_string();
             return Value(!x.empty() && std::all_of(x.begin(), x.end(), is_py_space));
         }},
        {"islower",
         [](const Value& s, CallArgs&) {
             const std::string& x = s.as_string();
             return Value(std::any_of(x.begin(), x.end(), is_alpha) && ascii_lower(x) == x);
         }},
        {"isupper",
         [](const Value& s, CallArgs&) {
             const std::string& x = s.as_string();
             return Value(std::any_of(x.begin(), x.end(), is_alpha) && ascii_upper(x) == x);
         }},
    };
    auto it = methods.find(name);
    if (it == methods.end()) return Value::undefined("'str object' has no attribute '" + name + "'");
    return bound(obj, name, it->second);
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

// ---- numbers -----------------------------------------------------------------------------

int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return q;
}

int64_t py_mod(int64_t a, int64_t b) {
    int64_t r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
    if (a.is_undefined()) undefined_error(a);
    if (b.is_undefined()) undefined_error(b);
    throw runtime_error("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" + b.type_name() +
                        "'");
}

Value repeat(const Value& seq, int64_t n) {
    if (seq.is_string()) {
        std::string out;
        for (int64_t i = 0; i < n; ++i) out += seq.as_string();
        return Value(out);
    }
    ValueList out;
    for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.items().begin(), seq.items().end());
    return Value::list(std::move(out), seq.is_tuple());
}

// ---- filters ---------------------------------------------------------------------------------

using FilterFn = std::function<Value(const Value&, const CallArgs&)>;
using TestFn = std::function<bool(const Value&, const CallArgs&)>;

const std::map<std::string, TestFn>& tests();
const std::map<std::string, FilterFn>& filters();

// Attribute lookup with dots ("a.b") and integer parts, as jinja2's make_attrgetter.
Value attr_path(const Value& v, const std::string& path) {
    Value cur = v;
    size_t start = 0;
    for (;;) {
        const size_t dot = path.find('.', start);
        const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        if (!part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            cur = get_item(cur, Value(static_cast<int64_t>(std::stoll(part))));
        } else {
            cur = get_item(cur, Value(part));
        }
        if (dot == std::string::npos) return cur;
        if (cur.is_undefined()) return cur;
        start = dot + 1;
    }
}

Value sort_key(const Value& v, bool case_sensitive) {
    if (!case_sensitive && v.is_string()) return Value(ascii_lower(v.as_string()));
    return v;
}

// select / reject / selectattr / rejectattr
Value select_items(const Value& input, const CallArgs& args, bool by_attr, bool keep_if) {
    ValueList out;
    size_t next = 0;
    std::string attr;
    if (by_attr) {
        const Value a = args.get(next++, "attribute");
        if (!a.is_string()) throw runtime_error("selectattr/rejectattr need an attribute name");
        attr = a.as_string();
    }
    const Value test_name = args.get(next, "\x01");
    CallArgs test_args;
    for (size_t i = next + 1; i < args.positional.size(); ++i) test_args.positional.push_back(args.positional[i]);
    for (const Value& item : iterate(input)) {
        const Value subject = by_attr ? attr_path(item, attr) : item;
        bool ok;
        if (test_name.is_undefined()) {
            ok = subject.truthy();
        } else {
            if (!test_name.is_string()) throw runtime_error("the test name must be a string");
            ok = apply_test(test_name.as_string(), subject, test_args);
        }
        if (ok == keep_if) out.push_back(item);
    }
    return Value::list(std::move(out));
}

std::string html_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&#34;";
                break;
            case '\'':
                out += "&#39;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

Value to_int(const Value& v, const Value& dflt) {
    const Value d = dflt.is_undefined() ? Value(int64_t{0}) : dflt;
    if (v.is_int() || v.is_bool()) return Value(v.as_int());
    if (v.is_number()) return std::isfinite(v.as_double()) ? Value(static_cast<int64_t>(std::trunc(v.as_double()))) : d;
    if (v.is_string()) {
        std::string s = py_strip(v.as_string(), Value(), true, true);
        if (s.empty()) return d;
        char* end = nullptr;
        errno = 0;
        const long long i = std::strtoll(s.c_str(), &end, 10);
        if (*end == '\0' && errno == 0) return Value(static_cast<int64_t>(i));
        const double f = std::strtod(s.c_str(), &end);
        if (*end == '\0' && std::isfinite(f)) return Value(static_cast<int64_t>(std::trunc(f)));
    }
    return d;
}

Value to_float(const Value& v, const Value& dflt) {
    const Value d = dflt.is_undefined() ? Value(0.0) : dflt;
    if (v.is_numeric()) return Value(v.as_double());
    if (v.is_string()) {
        const std::string s = py_strip(v.as_string(), Value(), true, true);
        char* end = nullptr;
        const double f = std::strtod(s.c_str(), &end);
        if (!s.empty() && *end == '\0') return Value(f);
    }
    return d;
}

JsonStyle json_style(const CallArgs& a) {
    JsonStyle st;
    const Value ensure_ascii = a.get(0, "ensure_ascii");
    const Value indent = a.get(1, "indent");
    const Value separators = a.get(2, "separators");
    const Value sort_keys = a.get(3, "sort_keys");
    st.ensure_ascii = ensure_ascii.truthy();
    st.sort_keys = sort_keys.truthy();
    if (indent.is_int()) {
        st.indent = static_cast<int>(std::max<int64_t>(0, indent.as_int()));
        st.item_sep = ",";
    } else if (indent.is_string()) {
        st.indent_text = indent.as_string();
        st.indent = 0;
        st.item_sep = ",";
    } else if (!indent.is_undefined() && !indent.is_none()) {
        throw runtime_error(std::string("tojson: indent must be an int or a str, not ") + indent.type_name());
    }
    if (separators.is_list()) {
        if (separators.items().size() != 2 || !separators.items()[0].is_string() || !separators.items()[1].is_string())
            throw runtime_error("tojson: separators must be a pair of strings");
        st.item_sep = separators.items()[0].as_string();
        st.key_sep = separators.items()[1].as_string();
    } else if (!separators.is_undefined() && !separators.is_none()) {
        throw runtime_error("tojson: separators must be a pair of strings");
    }
    return st;
}

std::string indent_text(const std::string& s, const Value& width, bool first, bool blank) {
    const std::string ind = width.is_string()
                                ? width.as_string()
                                : std::string(static_cast<size_t>(width.is_int() ? width.as_int() : 4), ' ');
    // jinja2 appends a newline before splitting lines, so a trailing newline adds no line.
    std::vector<std::string> lines;
    const std::string t = s + "\n";
    size_t start = 0;
    for (size_t i = 0; i < t.size(); ++i) {
        if (t[i] == '\n') {
            lines.push_back(t.substr(start, i - start));
            start = i + 1;
        }
    }
    std::string out = lines.empty() ? std::string() : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
        out += '\n';
        if (blank || !lines[i].empty()) out += ind;
        out += lines[i];
    }
    if (first) out = ind + out;
    return out;
}

const std::map<std::string, FilterFn>& filters() {
    static const std::map<std::string, FilterFn> table = [] {
        std::map<std::string, FilterFn> f;
        f["abs"] = [](const Value& v, const CallArgs&) {
            if (v.is_int() || v.is_bool()) return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
            if (v.is_number()) return Value(std::fabs(v.as_double()));
            throw runtime_error(std::string("bad operand type for abs(): '") + v.type_name() + "'");
        };
        f["attr"] = [](const Value& v, const CallArgs& a) {
            const Value n = a.get(0, "name");
            if (!n.is_string()) throw runtime_error("attr: the name must be a string");
            // Python getattr only: a dict's keys are not its attributes.
            if (v.is_dict() && !v.is_namespace()) {
                Value m = dict_method(v, n.as_string());
                return m.is_undefined() ? Value::undefined("'dict object' has no attribute '" + n.as_string() + "'")
                                        : m;
            }
            return get_attr(v, n.as_string());
        };
        f["batch"] = [](const Value& v, const CallArgs& a) {
            const int64_t n = to_index(a.get(0, "linecount"), "batch");
            if (n <= 0) throw runtime_error("batch: linecount must be positive");
            const Value fill = a.get(1, "fill_with");
            ValueList out, cur;
            for (const Value& x : iterate(v)) {
                cur.push_back(x);
                if (static_cast<int64_t>(cur.size()) == n) {
                    out.push_back(Value::list(std::move(cur)));
                    cur.clear();
                }
            }
            if (!cur.empty()) {
                if (!fill.is_undefined() && !fill.is_none()) {
                    while (static_cast<int64_t>(cur.size()) < n) cur.push_back(fill);
                }
                out.push_back(Value::list(std::move(cur)));
            }
            return Value::list(std::move(out));
        };
        f["capitalize"] = [](const Value& v, const CallArgs&) { return Value(py_capitalize(to_str(v))); };
        f["center"] = [](const Value& v, const CallArgs& a) {
            const std::string s = to_str(v);
            const Value w = a.get(0, "width");
            const int64_t width = w.is_int() ? w.as_int() : 80;
            const int64_t len = static_cast<int64_t>(char_length(s));
            if (width <= len) return Value(s);
            const int64_t total = width - len;
            const int64_t left = total / 2 + (total & width & 1);
            return Value(std::string(static_cast<size_t>(left), ' ') + s +
                         std::string(static_cast<size_t>(total - left), ' '));
        };
        f["default"] = [](const Value& v, const CallArgs& a) {
            const Value dflt = a.has(0, "default_value") ? a.get(0, "default_value") : Value(std::string());
            const bool boolean = a.get(1, "boolean").truthy();
            if (v.is_undefined() || (boolean && !v.truthy())) return dflt;
            return v;
        };
        f["d"] = f["default"];
        f["dictsort"] = [](const Value& v, const CallArgs& a) {
            if (!v.is_dict()) throw runtime_error("dictsort: a dict is required");
            const bool cs = a.get(0, "case_sensitive").truthy();
            const Value by = a.get(1, "by");
            const bool by_value = by.is_string() && by.as_string() == "value";
            const bool reverse = a.get(2, "reverse").truthy();
            ValueList out;
            for (const auto& [k, x] : v.entries()) out.push_back(Value::list({k, x}, true));
            std::stable_sort(out.begin(), out.end(), [&](const Value& x, const Value& y) {
                const size_t i = by_value ? 1 : 0;
                return less(sort_key(x.items()[i], cs), sort_key(y.items()[i], cs));
            });
            if (reverse) std::reverse(out.begin(), out.end());
            return Value::list(std::move(out));
        };
        f["escape"] = [](const Value& v, const CallArgs&) { return Value(html_escape(to_str(v))); };
        f["e"] = f["escape"];
        f["forceescape"] = f["escape"];
        f["first"] = [](const Value& v, const CallArgs&) {
            const ValueList items = iterate(v);
            if (items.empty()) return Value::undefined("No first item, sequence was empty.");
            return items.front();
        };
        f["float"] = [](const Value& v, const CallArgs& a) { return to_float(v, a.get(0, "default")); };
        f["format"] = [](const Value& v, const CallArgs& a) {
            if (!a.keyword.empty()) throw runtime_error("format: keyword arguments are not supported");
            return Value(percent_format(to_str(v), a.positional));
        };
        f["indent"] = [](const Value& v, const CallArgs& a) {
            return Value(
                indent_text(to_str(v), a.get(0, "width"), a.get(1, "first").truthy(), a.get(2, "blank").truthy()));
        };
        f["int"] = [](const Value& v, const CallArgs& a) { return to_int(v, a.get(0, "default")); };
        f["items"] = [](const Value& v, const CallArgs&) {
            if (v.is_undefined()) return Value::list();
            if (!v.is_dict())
                throw runtime_error(std::string("items: can only get item pairs from a mapping, not ") + v.type_name());
            ValueList out;
            for (const auto& [k, x] : v.entries()) out.push_back(Value::list({k, x}, true));
            return Value::list(std::move(out));
        };
        f["join"] = [](const Value& v, const CallArgs& a) {
            const Value sep = a.get(0, "d");
            const Value attr = a.get(1, "attribute");
            std::string out;
            bool first = true;
            for (const Value& x : iterate(v)) {
                if (!first && sep.is_string()) out += sep.as_string();
                first = false;
                out += to_str(attr.is_string() ? attr_path(x, attr.as_string()) : x);
            }
            return Value(out);
        };
        f["last"] = [](const Value& v, const CallArgs&) {
            const ValueList items = iterate(v);
            if (items.empty()) return Value::undefined("No last item, sequence was empty.");
            return items.back();
        };
        f["length"] = [](const Value& v, const CallArgs&) {
            if (v.is_string()) return Value(static_cast<int64_t>(char_length(v.as_string())));
            if (v.is_list()) return Value(static_cast<int64_t>(v.items().size()));
            if (v.is_dict()) return Value(static_cast<int64_t>(v.entries().size()));
            if (v.is_undefined()) return Value(int64_t{0});
            throw runtime_error(std::string("object of type '") + v.type_name() + "' has no len()");
        };
        f["count"] = f["length"];
        f["list"] = [](const Value& v, const CallArgs&) { return Value::list(iterate(v)); };
        f["lower"] = [](const Value& v, const CallArgs&) { return Value(ascii_lower(to_str(v))); };
        f["upper"] = [](const Value& v, const CallArgs&) { return Value(ascii_upper(to_str(v))); };
        f["map"] = [](const Value& v, const CallArgs& a) {
            ValueList out;
            const Value attr = a.get(static_cast<size_t>(-1), "attribute");
            if (attr.is_string()) {
                const Value dflt = a.get(static_cast<size_t>(-1), "default");
                for (const Value& x : iterate(v)) {
                    Value y = attr_path(x, attr.as_string());
                    out.push_back(y.is_undefined() && !dflt.is_undefined() ? dflt : y);
                }
                return Value::list(std::move(out));
            }
            if (a.positional.empty() || !a.positional[0].is_string())
                throw runtime_error("map: needs a filter name or attribute=");
            const std::string name = a.positional[0].as_string();
            CallArgs rest;
            rest.positional.assign(a.positional.begin() + 1, a.positional.end());
            rest.keyword = a.keyword;
            for (const Value& x : iterate(v)) out.push_back(apply_filter(name, x, rest));
            return Value::list(std::move(out));
        };
        auto min_max = [](bool want_max) {
            return [want_max](const Value& v, const CallArgs& a) {
                const bool cs = a.get(0, "case_sensitive").truthy();
                const Value attr = a.get(1, "attribute");
                const ValueList items = iterate(v);
                if (items.empty())
                    return Value::undefined(want_max ? "No largest item, sequence was empty."
                                                     : "No smallest item, sequence was empty.");
                const Value* best = &items[0];
                auto key = [&](const Value& x) {
                    return sort_key(attr.is_string() ? attr_path(x, attr.as_string()) : x, cs);
                };
                for (const Value& x : items) {
                    if (want_max ? less(key(*best), key(x)) : less(key(x), key(*best))) best = &x;
                }
                return *best;
            };
        };
        f["max"] = min_max(true);
        f["min"] = min_max(false);
        f["pprint"] = [](const Value& v, const CallArgs&) { return Value(to_repr(v)); };
        f["reject"] = [](const Value& v, const CallArgs& a) { return select_items(v, a, false, false); };
        f["rejectattr"] = [](const Value& v, const CallArgs& a) { return select_items(v, a, true, false); };
        f["select"] = [](const Value& v, const CallArgs& a) { return select_items(v, a, false, true); };
        f["selectattr"] = [](const Value& v, const CallArgs& a) { return select_items(v, a, true, true); };
        f["replace"] = [](const Value& v, const CallArgs& a) {
            const Value from = a.get(0, "old"), to = a.get(1, "new"), count = a.get(2, "count");
            return Value(py_replace(to_str(v), to_str(from), to_str(to), count.is_int() ? count.as_int() : -1));
        };
        f["reverse"] = [](const Value& v, const CallArgs&) {
            if (v.is_string()) {
                std::vector<std::string> cs = chars_of(v.as_string());
                std::string out;
                for (auto it = cs.rbegin(); it != cs.rend(); ++it) out += *it;
                return Value(out);
            }
            ValueList items = iterate(v);
            std::reverse(items.begin(), items.end());
            return Value::list(std::move(items));
        };
        f["round"] = [](const Value& v, const CallArgs& a) {
            const Value p = a.get(0, "precision");
            const Value m = a.get(1, "method");
            const double scale = std::pow(10.0, p.is_int() ? static_cast<double>(p.as_int()) : 0.0);
            const std::string method = m.is_string() ? m.as_string() : "common";
            const double x = v.as_double() * scale;
            double r;
            if (method == "common") {
                r = std::nearbyint(x);  // Python's round(): halves to even
            } else if (method == "ceil") {
                r = std::ceil(x);
            } else if (method == "floor") {
                r = std::floor(x);
            } else {
                throw runtime_error("round: method must be common, ceil or floor");
            }
            return Value(r / scale);
        };
        f["safe"] = [](const Value& v, const CallArgs&) { return v; };
        f["sort"] = [](const Value& v, const CallArgs& a) {
            const bool reverse = a.get(0, "reverse").truthy();
            const bool cs = a.get(1, "case_sensitive").truthy();
            const Value attr = a.get(2, "attribute");
            ValueList items = iterate(v);
            std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
                auto key = [&](const Value& z) {
                    return sort_key(attr.is_string() ? attr_path(z, attr.as_string()) : z, cs);
                };
                return reverse ? less(key(y), key(x)) : less(key(x), key(y));
            });
            return Value::list(std::move(items));
        };
        f["string"] = [](const Value& v, const CallArgs&) { return Value(to_str(v)); };
        f["sum"] = [](const Value& v, const CallArgs& a) {
            const Value attr = a.get(0, "attribute");
            Value total = a.has(1, "start") ? a.get(1, "start") : Value(int64_t{0});
            for (const Value& x : iterate(v))
                total = binary_op("+", total, attr.is_string() ? attr_path(x, attr.as_string()) : x);
            return total;
        };
        f["title"] = [](const Value& v, const CallArgs&) {
            // jinja2's title: words start after '-', whitespace, '(', '{', '[' or '<' (not after a
            // digit, unlike str.title()); the first letter of a word upper-cased, the rest lower.
            const std::string s = to_str(v);
            std::string out;
            bool word_start = true;
            for (char c : s) {
                const bool sep = c == '-' || is_py_space(c) || c == '(' || c == '{' || c == '[' || c == '<';
                if (sep) {
                    out += c;
                    word_start = true;
                } else {
                    out += word_start ? ascii_upper(std::string(1, c)) : ascii_lower(std::string(1, c));
                    word_start = false;
                }
            }
            return Value(out);
        };
        f["tojson"] = [](const Value& v, const CallArgs& a) {
            try {
                return Value(to_json(v, json_style(a)));
            } catch (const std::invalid_argument& e) {
                if (v.is_undefined()) undefined_error(v);
                throw runtime_error(std::string("tojson: ") + e.what());
            }
        };
        f["trim"] = [](const Value& v, const CallArgs& a) {
            return Value(py_strip(to_str(v), a.get(0, "chars"), true, true));
        };
        f["truncate"] = [](const Value& v, const CallArgs& a) {
            const std::string s = to_str(v);
            const Value lv = a.get(0, "length");
            const int64_t length = lv.is_int() ? lv.as_int() : 255;
            const bool killwords = a.get(1, "killwords").truthy();
            const Value ev = a.get(2, "end");
            const std::string end = ev.is_string() ? ev.as_string() : "...";
            const Value lw = a.get(3, "leeway");
            const int64_t leeway = lw.is_int() ? lw.as_int() : 5;
            std::vector<std::string> cs = chars_of(s);
            const int64_t n = static_cast<int64_t>(cs.size());
            if (n <= length + leeway) return Value(s);
            const int64_t keep = std::max<int64_t>(0, length - static_cast<int64_t>(char_length(end)));
            std::string head;
            for (int64_t i = 0; i < keep; ++i) head += cs[static_cast<size_t>(i)];
            if (!killwords) {
                const size_t sp = head.rfind(' ');
                if (sp != std::string::npos) head = head.substr(0, sp);
            }
            return Value(head + end);
        };
        f["unique"] = [](const Value& v, const CallArgs& a) {
            const bool cs = a.get(0, "case_sensitive").truthy();
            const Value attr = a.get(1, "attribute");
            ValueList out, seen;
            for (const Value& x : iterate(v)) {
                const Value key = sort_key(attr.is_string() ? attr_path(x, attr.as_string()) : x, cs);
                if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equal(s, key); })) {
                    seen.push_back(key);
                    out.push_back(x);
                }
            }
            return Value::list(std::move(out));
        };
        f["wordcount"] = [](const Value& v, const CallArgs&) {
            return Value(static_cast<int64_t>(py_split(to_str(v), Value(), Value(), false).items().size()));
        };
        return f;
    }();
    return table;
}

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
        return Value::undefined("'" + std::string(obj.is_namespace() ? "Namespace" : "dict object") +
                                "' has no attribute '" + name + "'");
    }
    if (obj.is_string()) return string_method(obj, name);
    if (obj.is_list()) {
        Value m = list_method(obj, name);
        if (!m.is_undefined()) return m;
        if (is_mutating(name)) return unsafe(obj, name);
        return Value::undefined("'list object' has no attribute '" + name + "'");
    }
    return Value::undefined("'" + to_str(obj) + "' has no attribute '" + name + "'");
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
    return Value::undefined("'" + std::string(obj.type_name()) + "' object is not subscriptable");
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

Value binary_op(const std::string& op, const Value& a, const Value& b) {
    if (op == "~") return Value(to_str(a) + to_str(b));
    const bool nums = a.is_numeric() && b.is_numeric();
    const bool ints = nums && !a.is_number() && !b.is_number();
    if (op == "+") {
        if (ints) return Value(a.as_int() + b.as_int());
        if (nums) return Value(a.as_double() + b.as_double());
        if (a.is_string() && b.is_string()) return Value(a.as_string() + b.as_string());
        if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
            ValueList out = a.items();
            out.insert(out.end(), b.items().begin(), b.items().end());
            return Value::list(std::move(out), a.is_tuple());
        }
        unsupported(op, a, b);
    }
    if (op == "-") {
        if (ints) return Value(a.as_int() - b.as_int());
        if (nums) return Value(a.as_double() - b.as_double());
        unsupported(op, a, b);
    }
    if (op == "*") {
        if (ints) return Value(a.as_int() * b.as_int());
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
            for (int64_t i = 0; i < b.as_int() && i < 64; ++i) r *= a.as_int();
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
    return a.is_number() ? Value(-a.as_double()) : Value(-a.as_int());
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

Value apply_filter(const std::string& name, const Value& input, const CallArgs& args) {
    const auto& table = filters();
    auto it = table.find(name);
    if (it == table.end()) throw runtime_error("no filter named '" + name + "'");
    return it->second(input, args);
}

bool apply_test(const std::string& name, const Value& input, const CallArgs& args) {
    const auto& table = tests();
    auto it = table.find(name);
    if (it == table.end()) throw runtime_error("no test named '" + name + "'");
    return it->second(input, args);
}

bool has_filter(const std::string& name) { return filters().count(name) != 0; }
bool has_test(const std::string& name) { return tests().count(name) != 0; }

}  // namespace gridlm::jinja
