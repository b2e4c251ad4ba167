// The interpreter: walks the syntax tree with jinja2's scoping (a for loop and a macro call open
// a scope; if/set do not) and Python's evaluation rules (builtins.cpp).
#include "engine/jinja/template.h"

#include <memory>
#include <stdexcept>

#include "engine/jinja/ast.h"
#include "engine/jinja/builtins.h"

namespace gridlm::jinja {

TemplateError::TemplateError(int line, std::string reason, bool raised)
    : Error(line > 0 ? str("line ", line, ": ", reason) : reason),
      line_(line),
      reason_(std::move(reason)),
      raised_(raised) {}

namespace {

using namespace ast;

struct Scope {
    std::vector<std::pair<std::string, Value>> vars;
    std::shared_ptr<Scope> parent;

    const Value* find(const std::string& name) const {
        for (const auto& [k, v] : vars) {
            if (k == name) return &v;
        }
        return parent ? parent->find(name) : nullptr;
    }
    Value* find_mutable(const std::string& name) {
        for (auto& [k, v] : vars) {
            if (k == name) return &v;
        }
        return parent ? parent->find_mutable(name) : nullptr;
    }
    void set(const std::string& name, Value v) {
        for (auto& [k, x] : vars) {
            if (k == name) {
                x = std::move(v);
                return;
            }
        }
        vars.emplace_back(name, std::move(v));
    }
};
using ScopePtr = std::shared_ptr<Scope>;

ScopePtr child(const ScopePtr& parent) {
    auto s = std::make_shared<Scope>();
    s->parent = parent;
    return s;
}

enum class Flow { normal, break_loop, continue_loop };

// Rendering nests templates' own recursion (macros calling macros) on the C++ stack; a bound
// keeps a runaway template an error instead of a crash.
constexpr int max_depth = 200;
// A render may take this many steps (statements run, loop iterations, items a filter walks) and
// write this many bytes: a runaway template fails its record instead of hanging the job or
// exhausting a rank's memory. Real chat templates take a few thousand steps.
constexpr int64_t max_steps = 2'000'000;
constexpr size_t max_output_bytes = size_t{64} << 20;

class Renderer {
public:
    explicit Renderer(const RenderOptions& options) : options_(options) {}

    Flow exec_body(const Body& body, const ScopePtr& scope, std::string& out) {
        for (const StmtPtr& st : body) {
            const Flow f = exec(*st, scope, out);
            if (f != Flow::normal) return f;
        }
        return Flow::normal;
    }

    Flow exec(const Stmt& st, const ScopePtr& scope, std::string& out) {
        try {
            step(1);
            const Flow f = exec_unchecked(st, scope, out);
            if (out.size() > max_output_bytes) throw std::runtime_error("the template wrote more than 64 MiB");
            return f;
        } catch (const TemplateError& e) {
            if (e.line() == 0) throw TemplateError(st.line, e.reason(), e.raised());
            throw;
        } catch (const std::exception& e) {  // Python-like errors of the builtins, and out of memory
            throw TemplateError(st.line, e.what());
        }
    }

    Value eval(const Expr& e, const ScopePtr& scope) {
        switch (e.kind) {
            case ExprKind::literal:
                return e.value;
            case ExprKind::name: {
                if (const Value* v = scope->find(e.name)) return *v;
                return Value::undefined("'" + e.name + "' is undefined");
            }
            case ExprKind::list: {
                ValueList items;
                for (const ExprPtr& x : e.items) items.push_back(eval(*x, scope));
                return Value::list(std::move(items), e.flag);
            }
            case ExprKind::dict: {
                ValueDict entries;
                for (const auto& [k, v] : e.pairs) {
                    Value key = eval(*k, scope);
                    Value val = eval(*v, scope);
                    bool replaced = false;
                    for (auto& [ek, ev] : entries) {
                        if (equal(ek, key)) {
                            ev = val;
                            replaced = true;
                        }
                    }
                    if (!replaced) entries.emplace_back(std::move(key), std::move(val));
                }
                return Value::dict(std::move(entries));
            }
            case ExprKind::get_attr:
                return get_attr(eval(*e.a, scope), e.name);
            case ExprKind::get_item:
                return get_item(eval(*e.a, scope), eval(*e.b, scope));
            case ExprKind::slice: {
                const Value obj = eval(*e.a, scope);
                return get_slice(obj, e.b ? eval(*e.b, scope) : Value(), e.c ? eval(*e.c, scope) : Value(),
                                 e.d ? eval(*e.d, scope) : Value());
            }
            case ExprKind::call: {
                const Value f = eval(*e.a, scope);
                CallArgs args = eval_args(e.args, scope);
                return call(f, args);
            }
            case ExprKind::filter: {
                const Value input = eval(*e.a, scope);
                step(input.is_list() ? input.items().size() : input.is_dict() ? input.entries().size() : 1);
                CallArgs args = eval_args(e.args, scope);
                return apply_filter(e.name, input, args);
            }
            case ExprKind::test: {
                const Value input = eval(*e.a, scope);
                CallArgs args = eval_args(e.args, scope);
                return Value(apply_test(e.name, input, args) != e.flag);
            }
            case ExprKind::unary: {
                const Value v = eval(*e.a, scope);
                if (e.name == "not") return Value(!v.truthy());
                return unary_op(e.name, v);
            }
            case ExprKind::binary: {
                if (e.name == "and") {
                    Value a = eval(*e.a, scope);
                    return a.truthy() ? eval(*e.b, scope) : a;
                }
                if (e.name == "or") {
                    Value a = eval(*e.a, scope);
                    return a.truthy() ? a : eval(*e.b, scope);
                }
                const Value a = eval(*e.a, scope);
                const Value b = eval(*e.b, scope);
                return binary_op(e.name, a, b);
            }
            case ExprKind::compare: {
                Value left = eval(*e.a, scope);
                for (const auto& [op, rhs] : e.comparisons) {
                    Value right = eval(*rhs, scope);
                    if (!compare_op(op, left, right)) return Value(false);
                    left = std::move(right);
                }
                return Value(true);
            }
            case ExprKind::conditional: {
                if (eval(*e.b, scope).truthy()) return eval(*e.a, scope);
                return e.c ? eval(*e.c, scope)
                           : Value::undefined("the condition of an inline if was false and it has no else");
            }
        }
        throw std::runtime_error("unknown expression");
    }

    Value call(const Value& f, CallArgs& args) {
        if (f.is_function()) {
            if (++depth_ > max_depth) throw std::runtime_error("calls nested more than 200 deep");
            struct Guard {
                int& d;
                ~Guard() { --d; }
            } guard{depth_};
            return f.callable()(args);
        }
        if (f.is_undefined()) undefined_error(f);
        throw std::runtime_error(std::string("'") + f.type_name() + "' object is not callable");
    }

    ScopePtr globals() {
        auto g = std::make_shared<Scope>();
        g->set("range",
               Value::function(
                   [](CallArgs& a) {
                       int64_t start = 0, stop, step = 1;
                       auto idx = [](const Value& v) {
                           if (!v.is_int() && !v.is_bool())
                               throw std::runtime_error(std::string("range() needs integers, got ") + v.type_name());
                           return v.as_int();
                       };
                       if (a.positional.size() == 1) {
                           stop = idx(a.positional[0]);
                       } else if (a.positional.size() == 2 || a.positional.size() == 3) {
                           start = idx(a.positional[0]);
                           stop = idx(a.positional[1]);
                           if (a.positional.size() == 3) step = idx(a.positional[2]);
                       } else {
                           throw std::runtime_error("range() takes 1 to 3 arguments");
                       }
                       if (step == 0) throw std::runtime_error("range() arg 3 must not be zero");
                       ValueList out;
                       for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
                           if (out.size() >= 1000000) throw std::runtime_error("range() of over a million items");
                           out.push_back(Value(i));
                       }
                       return Value::list(std::move(out));
                   },
                   "range"));
        g->set("dict", Value::function(
                           [](CallArgs& a) {
                               ValueDict d;
                               if (!a.positional.empty() && a.positional[0].is_dict()) d = a.positional[0].entries();
                               for (auto& [k, v] : a.keyword) d.emplace_back(Value(k), v);
                               return Value::dict(std::move(d));
                           },
                           "dict"));
        g->set("namespace", Value::function(
                                [](CallArgs& a) {
                                    ValueDict d;
                                    if (!a.positional.empty() && a.positional[0].is_dict())
                                        d = a.positional[0].entries();
                                    for (auto& [k, v] : a.keyword) d.emplace_back(Value(k), v);
                                    return Value::namespace_object(std::move(d));
                                },
                                "namespace"));
        g->set("raise_exception",
               Value::function(
                   [](CallArgs& a) -> Value { throw TemplateError(0, to_str(a.get(0, "message")), /*raised=*/true); },
                   "raise_exception"));
        const RenderOptions opts = options_;
        g->set("strftime_now", Value::function(
                                   [opts](CallArgs& a) {
                                       const Value fmt = a.get(0, "format");
                                       if (!fmt.is_string())
                                           throw std::runtime_error("strftime_now() needs a format string");
                                       const std::time_t t = opts.now ? *opts.now : std::time(nullptr);
                                       std::tm tm{};
                                       localtime_r(&t, &tm);
                                       char buf[256];
                                       const size_t n = std::strftime(buf, sizeof(buf), fmt.as_string().c_str(), &tm);
                                       return Value(std::string(buf, n));
                                   },
                                   "strftime_now"));
        return g;
    }

private:
    CallArgs eval_args(const Args& a, const ScopePtr& scope) {
        CallArgs out;
        for (const ExprPtr& x : a.positional) out.positional.push_back(eval(*x, scope));
        for (const auto& [k, x] : a.keyword) out.keyword.emplace_back(k, eval(*x, scope));
        return out;
    }

    void assign(const ScopePtr& scope, const std::vector<std::string>& targets, const Value& v) {
        if (targets.size() == 1) {
            scope->set(targets[0], v);
            return;
        }
        const ValueList items = iterate(v);
        if (items.size() != targets.size()) {
            throw std::runtime_error(str("cannot unpack ", items.size(), " values into ", targets.size(), " names"));
        }
        for (size_t i = 0; i < targets.size(); ++i) scope->set(targets[i], items[i]);
    }

    Value apply_filters(const std::vector<ExprPtr>& filters, Value v, const ScopePtr& scope) {
        for (const ExprPtr& f : filters) {
            CallArgs args = eval_args(f->args, scope);
            v = apply_filter(f->name, v, args);
        }
        return v;
    }

    // A macro as a callable: binds arguments in a scope under the one it was defined in.
    Value make_macro(const Stmt& st, const ScopePtr& scope) {
        std::weak_ptr<Scope> defined_in = scope;
        const Stmt* macro = &st;
        return Value::function(
            [this, macro, defined_in](CallArgs& args) {
                ScopePtr parent = defined_in.lock();
                if (!parent) throw std::runtime_error("macro '" + macro->text + "' called after its scope ended");
                ScopePtr s = child(parent);
                ValueList extra;
                for (size_t i = 0; i < args.positional.size(); ++i) {
                    if (i < macro->params.size()) {
                        s->set(macro->params[i].name, args.positional[i]);
                    } else {
                        extra.push_back(args.positional[i]);
                    }
                }
                ValueDict extra_kw;
                for (auto& [k, v] : args.keyword) {
                    bool is_param = false;
                    for (const Param& p : macro->params) is_param = is_param || p.name == k;
                    if (is_param || k == "caller") {
                        s->set(k, v);
                    } else {
                        extra_kw.emplace_back(Value(k), v);
                    }
                }
                for (const Param& p : macro->params) {
                    bool bound = false;
                    for (const auto& [k, v] : s->vars) bound = bound || k == p.name;
                    if (!bound) {
                        s->set(p.name, p.default_value ? eval(*p.default_value, s)
                                                       : Value::undefined("parameter '" + p.name + "' of macro '" +
                                                                          macro->text + "' was not given"));
                    }
                }
                s->set("varargs", Value::list(std::move(extra), /*tuple=*/true));
                s->set("kwargs", Value::dict(std::move(extra_kw)));
                std::string out;
                exec_body(macro->body, s, out);
                return Value(std::move(out));
            },
            st.text);
    }

    Flow exec_unchecked(const Stmt& st, const ScopePtr& scope, std::string& out) {
        switch (st.kind) {
            case StmtKind::text:
                out += st.text;
                return Flow::normal;
            case StmtKind::print:
                out += to_str(eval(*st.expr, scope));
                return Flow::normal;
            case StmtKind::if_: {
                for (const auto& [cond, body] : st.branches) {
                    if (eval(*cond, scope).truthy()) return exec_body(body, scope, out);
                }
                return exec_body(st.else_body, scope, out);
            }
            case StmtKind::for_:
                return exec_for(st, scope, out);
            case StmtKind::set: {
                Value v = eval(*st.expr, scope);
                if (!st.text.empty()) {
                    Value* ns = scope->find_mutable(st.targets[0]);
                    if (!ns || !ns->is_namespace()) {
                        throw std::runtime_error("cannot assign attribute '" + st.text + "' of '" + st.targets[0] +
                                                 "': not a namespace()");
                    }
                    for (auto& [k, x] : ns->mutable_entries()) {
                        if (k.is_string() && k.as_string() == st.text) {
                            x = std::move(v);
                            return Flow::normal;
                        }
                    }
                    ns->mutable_entries().emplace_back(Value(st.text), std::move(v));
                    return Flow::normal;
                }
                assign(scope, st.targets, v);
                return Flow::normal;
            }
            case StmtKind::set_block: {
                std::string captured;
                exec_body(st.body, scope, captured);
                scope->set(st.targets[0], apply_filters(st.filters, Value(std::move(captured)), scope));
                return Flow::normal;
            }
            case StmtKind::macro:
                scope->set(st.text, make_macro(st, scope));
                return Flow::normal;
            case StmtKind::call_block: {
                std::weak_ptr<Scope> site = scope;
                const Stmt* block = &st;
                Value caller = Value::function(
                    [this, block, site](CallArgs& args) {
                        ScopePtr parent = site.lock();
                        if (!parent) throw std::runtime_error("caller() used after its scope ended");
                        ScopePtr s = child(parent);
                        for (size_t i = 0; i < block->params.size(); ++i) {
                            Value v = args.get(i, block->params[i].name);
                            if (v.is_undefined() && block->params[i].default_value)
                                v = eval(*block->params[i].default_value, s);
                            s->set(block->params[i].name, v);
                        }
                        std::string text;
                        exec_body(block->body, s, text);
                        return Value(std::move(text));
                    },
                    "caller");
                const Value f = eval(*st.expr->a, scope);
                CallArgs args = eval_args(st.expr->args, scope);
                args.keyword.emplace_back("caller", caller);
                out += to_str(call(f, args));
                return Flow::normal;
            }
            case StmtKind::filter_block: {
                std::string captured;
                exec_body(st.body, scope, captured);
                out += to_str(apply_filters(st.filters, Value(std::move(captured)), scope));
                return Flow::normal;
            }
            case StmtKind::break_:
                return Flow::break_loop;
            case StmtKind::continue_:
                return Flow::continue_loop;
            case StmtKind::scope:
                return exec_body(st.body, scope, out);
        }
        return Flow::normal;
    }

    Flow exec_for(const Stmt& st, const ScopePtr& scope, std::string& out) {
        const Value seq = eval(*st.expr, scope);
        if (seq.is_none()) throw std::runtime_error("'NoneType' object is not iterable");
        ValueList items = iterate(seq);
        ScopePtr s = child(scope);
        if (st.cond) {
            ValueList kept;
            for (const Value& item : items) {
                assign(s, st.targets, item);
                if (eval(*st.cond, s).truthy()) kept.push_back(item);
            }
            items = std::move(kept);
        }
        if (items.empty()) return exec_body(st.else_body, scope, out);
        const int64_t n = static_cast<int64_t>(items.size());
        // One loop object for the whole loop, its values updated each iteration (a template that
        // keeps `loop` in a variable sees it advance, as jinja2's LoopContext does).
        auto index = std::make_shared<int64_t>(0);
        Value loop = Value::dict({
            {Value("index"), Value()},
            {Value("index0"), Value()},
            {Value("revindex"), Value()},
            {Value("revindex0"), Value()},
            {Value("first"), Value()},
            {Value("last"), Value()},
            {Value("length"), Value(n)},
            {Value("depth"), Value(int64_t{1})},
            {Value("depth0"), Value(int64_t{0})},
            {Value("previtem"), Value()},
            {Value("nextitem"), Value()},
            {Value("cycle"), Value::function(
                                 [index](CallArgs& a) {
                                     if (a.positional.empty()) throw std::runtime_error("no items for cycling given");
                                     return a.positional[static_cast<size_t>(*index) % a.positional.size()];
                                 },
                                 "cycle")},
        });
        s->set("loop", loop);
        ValueDict& fields = loop.mutable_entries();
        for (int64_t i = 0; i < n; ++i) {
            step(1);
            assign(s, st.targets, items[static_cast<size_t>(i)]);
            *index = i;
            fields[0].second = Value(i + 1);
            fields[1].second = Value(i);
            fields[2].second = Value(n - i);
            fields[3].second = Value(n - i - 1);
            fields[4].second = Value(i == 0);
            fields[5].second = Value(i == n - 1);
            fields[9].second =
                i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("there is no previous item");
            fields[10].second =
                i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value::undefined("there is no next item");
            if (const Value* cur = s->find("loop"); !cur || !cur->is_dict() || &cur->entries() != &fields) {
                s->set("loop", loop);  // the body rebound `loop`: this iteration's object again
            }
            const Flow f = exec_body(st.body, s, out);
            if (f == Flow::break_loop) break;
        }
        return Flow::normal;
    }

    void step(size_t n) {
        steps_ += static_cast<int64_t>(n);
        if (steps_ > max_steps) {
            throw std::runtime_error(
                "the template ran more than 2,000,000 steps (statements, loop iterations, filtered items): a "
                "runaway loop?");
        }
    }

    RenderOptions options_;
    int depth_ = 0;
    int64_t steps_ = 0;
};

}  // namespace

Template::Template(const std::string& source) {
    std::string src;
    src.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {  // jinja2 normalises newlines to \n
        if (source[i] == '\r') {
            src += '\n';
            if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
        } else {
            src += source[i];
        }
    }
    body_ = ast::parse(src);
}

Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const std::vector<std::pair<std::string, Value>>& variables,
                             const RenderOptions& options) const {
    Renderer r(options);
    ScopePtr scope = child(r.globals());
    for (const auto& [k, v] : variables) scope->set(k, v);
    std::string out;
    const Flow f = r.exec_body(body_, scope, out);
    if (f != Flow::normal) throw TemplateError(0, "'break' or 'continue' outside a for loop");
    return out;
}

}  // namespace gridlm::jinja
