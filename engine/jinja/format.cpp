// Python string formatting for templates: str.format with format specs, and printf-style `%`
// (see python.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "engine/jinja/builtins.h"
#include "engine/jinja/python.h"

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
}  // namespace

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

}  // namespace gridlm::jinja
