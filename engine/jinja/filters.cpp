// jinja2's builtin filters, with HF's tojson (see builtins.h).
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <stdexcept>

#include "engine/core/text_escape.h"
#include "engine/jinja/builtins.h"
#include "engine/jinja/python.h"

namespace gridlm::jinja {

using std::runtime_error;

namespace {

using FilterFn = std::function<Value(const Value&, const CallArgs&)>;

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
            if (v.is_int() || v.is_bool()) {
                if (v.as_int() == INT64_MIN)
                    throw runtime_error("integer overflow (values beyond 64 bits are not supported)");
                return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
            }
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

}  // namespace

Value apply_filter(const std::string& name, const Value& input, const CallArgs& args) {
    const auto& table = filters();
    auto it = table.find(name);
    if (it == table.end()) throw runtime_error("no filter named '" + name + "'");
    return it->second(input, args);
}

bool has_filter(const std::string& name) { return filters().count(name) != 0; }

}  // namespace gridlm::jinja
