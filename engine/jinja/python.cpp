// Python string and number behaviour (see python.h).
#include "engine/jinja/python.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>

#include "engine/jinja/builtins.h"
#include "engine/tokenizer/utf8.h"

namespace gridlm::jinja {

using std::runtime_error;

namespace {

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

}  // namespace

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

int64_t to_index(const Value& v, const char* what) {
    if (v.is_int() || v.is_bool()) return v.as_int();
    throw runtime_error(std::string(what) + " indices must be integers, not " + v.type_name());
}

// printf-style `fmt % args` (the format filter): %s %r %d %i %f %% with an optional precision.
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
int64_t floor_div(int64_t a, int64_t b) {
    if (b == -1) {  // INT64_MIN / -1 does not fit
        if (a == INT64_MIN) throw std::runtime_error("integer overflow (values beyond 64 bits are not supported)");
        return -a;
    }
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return q;
}

int64_t py_mod(int64_t a, int64_t b) {
    if (b == -1) return 0;
    int64_t r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}

}  // namespace gridlm::jinja
