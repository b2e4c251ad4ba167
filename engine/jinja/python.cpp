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

// Python's str.format for the forms templates use: {} {0} {name}, with {{ and }} escapes.
// One replacement field's format spec, Python's mini-language without grouping and '#':
// [[fill]align][sign][0][width][.precision][type], types s d n b o x X e E f F g G %.
std::string format_spec(const Value& v, const std::string& spec) {
    if (spec.empty()) return to_str(v);
    size_t i = 0;
    std::string fill = " ";
    char align = 0;
    auto is_align = [](char c) { return c == '<' || c == '>' || c == '^' || c == '='; };
    const std::vector<std::string> cs = chars_of(spec);
    if (cs.size() >= 2 && cs[1].size() == 1 && is_align(cs[1][0])) {
        fill = cs[0];
        align = cs[1][0];
        i = cs[0].size() + 1;
    } else if (is_align(spec[0])) {
        align = spec[0];
        i = 1;
    }
    char sign = '-';
    if (i < spec.size() && (spec[i] == '+' || spec[i] == '-' || spec[i] == ' ')) sign = spec[i++];
    if (i < spec.size() && spec[i] == '0') {
        if (!align) {
            fill = "0";
            align = '=';
        }
        ++i;
    }
    int64_t width = 0;
    while (i < spec.size() && std::isdigit(static_cast<unsigned char>(spec[i]))) width = width * 10 + (spec[i++] - '0');
    int precision = -1;
    if (i < spec.size() && spec[i] == '.') {
        precision = 0;
        ++i;
        while (i < spec.size() && std::isdigit(static_cast<unsigned char>(spec[i])))
            precision = precision * 10 + (spec[i++] - '0');
    }
    char type = 0;
    if (i < spec.size()) type = spec[i++];
    if (i != spec.size() || width > 4096 || precision > 512)
        throw runtime_error("format spec '" + spec + "' is not supported");
    std::string body;
    bool negative = false;
    char buf[600];
    if (type == 0 && v.is_string()) type = 's';
    if (type == 0 && (v.is_int() || v.is_bool())) type = 'd';
    if (type == 0 && v.is_number()) type = precision >= 0 ? 'g' : 'r';
    switch (type) {
        case 's':
            if (!v.is_string())
                throw runtime_error(std::string("Unknown format code 's' for object of type '") + v.type_name() + "'");
            body = v.as_string();
            if (precision >= 0) {
                std::string cut;
                const std::vector<std::string> chars = chars_of(body);
                for (size_t k = 0; k < chars.size() && k < static_cast<size_t>(precision); ++k) cut += chars[k];
                body = cut;
            }
            if (!align) align = '<';
            break;
        case 'd':
        case 'n':
        case 'b':
        case 'o':
        case 'x':
        case 'X': {
            if (!v.is_int() && !v.is_bool())
                throw runtime_error(std::string("Unknown format code '") + type + "' for object of type '" +
                                    v.type_name() + "'");
            const int64_t x = v.as_int();
            negative = x < 0;
            const uint64_t mag = negative ? 0 - static_cast<uint64_t>(x) : static_cast<uint64_t>(x);
            if (type == 'b') {
                for (uint64_t m = mag; m; m >>= 1) body.insert(body.begin(), static_cast<char>('0' + (m & 1)));
                if (body.empty()) body = "0";
            } else {
                std::snprintf(buf, sizeof(buf),
                              type == 'o'   ? "%llo"
                              : type == 'x' ? "%llx"
                              : type == 'X' ? "%llX"
                                            : "%llu",
                              static_cast<unsigned long long>(mag));
                body = buf;
            }
            break;
        }
        case 'e':
        case 'E':
        case 'f':
        case 'F':
        case 'g':
        case 'G':
        case '%':
        case 'r': {
            if (!v.is_numeric())
                throw runtime_error(std::string("Unknown format code '") + type + "' for object of type '" +
                                    v.type_name() + "'");
            double x = v.as_double();
            negative = std::signbit(x) && !std::isnan(x);
            x = std::fabs(x);
            if (type == 'r') {
                body = float_repr(x);
            } else if (type == '%') {
                std::snprintf(buf, sizeof(buf), "%.*f%%", precision < 0 ? 6 : precision, x * 100.0);
                body = buf;
            } else {
                const char f[] = {'%', '.', '*', type, 0};
                std::snprintf(buf, sizeof(buf), f, precision < 0 ? 6 : precision, x);
                body = buf;
            }
            break;
        }
        default:
            throw runtime_error(std::string("format code '") + type + "' is not supported");
    }
    std::string prefix;
    if (negative) {
        prefix = "-";
    } else if (sign == '+' && type != 's') {
        prefix = "+";
    } else if (sign == ' ' && type != 's') {
        prefix = " ";
    }
    if (!align) align = '>';
    const int64_t len = static_cast<int64_t>(char_length(prefix + body));
    std::string pad;
    for (int64_t k = len; k < width; ++k) pad += fill;
    if (align == '<') return prefix + body + pad;
    if (align == '=') return prefix + pad + body;
    if (align == '^') {
        const size_t left = static_cast<size_t>((width - len) / 2);
        std::string l, r;
        for (size_t k = 0; k < left; ++k) l += fill;
        for (int64_t k = len + static_cast<int64_t>(left); k < width; ++k) r += fill;
        return l + prefix + body + r;
    }
    return pad + prefix + body;
}

// Python's str.format: {} {0} {name} fields with !r / !s conversions and format specs, {{ and }}
// escapes; attribute and index lookups inside fields ({0.name}, {0[k]}) are not supported.
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
            std::string spec, conversion;
            if (const size_t colon = field.find(':'); colon != std::string::npos) {
                spec = field.substr(colon + 1);
                field = field.substr(0, colon);
            }
            if (const size_t bang = field.find('!'); bang != std::string::npos) {
                conversion = field.substr(bang + 1);
                field = field.substr(0, bang);
            }
            // {0.name} / {key[0]}: the argument, then attribute and index lookups (jinja2's
            // sandboxed formatter looks them up as the template's `.` and `[]` do).
            std::string path;
            if (const size_t cut = field.find_first_of(".["); cut != std::string::npos) {
                path = field.substr(cut);
                field = field.substr(0, cut);
            }
            Value v;
            if (field.empty()) {
                v = args.get(auto_index++, "\x01");
            } else if (std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
                if (field.size() > 6) throw runtime_error("format field index '" + field + "' is out of range");
                v = args.get(static_cast<size_t>(std::stoul(field)), "\x01");
            } else {
                v = args.get(static_cast<size_t>(-1), field);
            }
            if (v.is_undefined()) throw runtime_error("format: no argument for field '{" + field + "}'");
            for (size_t p = 0; p < path.size();) {
                if (path[p] == '.') {
                    const size_t end = path.find_first_of(".[", p + 1);
                    v = get_attr(v, path.substr(p + 1, end == std::string::npos ? std::string::npos : end - p - 1));
                    p = end == std::string::npos ? path.size() : end;
                } else {
                    const size_t end = path.find(']', p);
                    if (end == std::string::npos) throw runtime_error("Missing ']' in format string");
                    const std::string key = path.substr(p + 1, end - p - 1);
                    const bool digits =
                        !key.empty() && key.size() < 10 &&
                        std::all_of(key.begin(), key.end(), [](char d) { return d >= '0' && d <= '9'; });
                    v = get_item(v, digits ? Value(static_cast<int64_t>(std::stoll(key))) : Value(key));
                    p = end + 1;
                }
            }
            if (conversion == "r" || conversion == "a") {
                v = Value(to_repr(v));
            } else if (conversion == "s") {
                v = Value(to_str(v));
            } else if (!conversion.empty()) {
                throw runtime_error("Unknown conversion specifier " + conversion);
            }
            out += format_spec(v, spec);
            i = close;
        } else if (c == '}') {
            throw runtime_error("Single '}' encountered in format string");
        } else {
            out += c;
        }
    }
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
