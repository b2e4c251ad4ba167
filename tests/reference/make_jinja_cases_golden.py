#!/usr/bin/env python3
# Makes tests/reference/golden/jinja_cases.json: small templates, one language feature each,
# rendered by Python jinja2 the way HF transformers renders chat templates, so that the C++
# interpreter (engine/jinja) is checked feature by feature against the reference and not against
# itself. A case that jinja2 refuses is recorded with its error; the interpreter must refuse it
# too.
#
# Versions used for the committed golden: jinja2 3.1.6 (Python 3.11).
# Usage:
#   python3 -m venv /tmp/tplenv && /tmp/tplenv/bin/pip install jinja2==3.1.6
#   /tmp/tplenv/bin/python tests/reference/make_jinja_cases_golden.py --out tests/reference/golden
#
# Output: {"generator": {...}, "cases": [{"name", "template", "vars", "text" | "error"}]}; vars is
# a JSON object of the variables the template is rendered with.
import argparse
import json
import os
import sys

import jinja2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_template_golden import hf_environment  # noqa: E402

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi 😀 there"},
    {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nHello!"},
    {"role": "user", "content": "  spaced  "},
]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                                            "parameters": {"type": "object", "properties": {
                                                "city": {"type": "string"}, "days": {"type": "integer"},
                                                "unit": {"enum": ["c", "f"]}, "ratio": 0.5}}}}]

# (name, template, variables)
CASES = [
    # Output and literals
    ("text_only", "plain text", {}),
    ("print_int_float_bool_none", "{{ 1 }}|{{ 1.5 }}|{{ 2.0 }}|{{ true }}|{{ none }}|{{ 1e3 }}|{{ 1e-7 }}", {}),
    ("print_list_dict", "{{ [1, 'a', none, true] }} {{ {'k': 'v', 'n': [1.0]} }} {{ (1, 2) }} {{ (1,) }}", {}),
    ("print_repr_quotes", "{{ [\"it's\", 'say \"x\"', 'both \\' \"', 'tab\\tnl\\n'] }}", {}),
    ("print_undefined", "[{{ nothing }}]", {}),
    ("string_escapes", "{{ 'a\\nb\\tc\\\\d\\'e\\u00e9\\x41' }}", {}),
    ("adjacent_strings", "{{ 'ab' 'cd' \"ef\" }}", {}),
    ("print_float_repr", "{{ 0.1 + 0.2 }} {{ 1 / 3 }} {{ 10 / 2 }} {{ 1e16 }} {{ 123456789012345678.0 }} {{ 0.0001 }}", {}),
    # Whitespace control as HF sets it (trim_blocks, lstrip_blocks)
    ("trim_blocks", "{% if true %}\nyes\n{% endif %}\nafter", {}),
    ("lstrip_blocks", "line\n    {% if true %}\n    body\n    {% endif %}\nend", {}),
    ("lstrip_not_for_prints", "a\n    {{ 'x' }}\n    b", {}),
    ("minus_strips", "a   {%- if true -%}   b   {%- endif -%}   c", {}),
    ("minus_on_prints", "a \n {{- 'b' -}} \n c", {}),
    ("plus_keeps", "x\n    {%+ if true %}y{% endif +%}\nz", {}),
    ("comment_trim", "a\n  {# comment #}\nb {#- c -#} c", {}),
    ("trailing_newline_dropped", "one\ntwo\n", {}),
    ("crlf_normalised", "a\r\nb\r\n{% if true %}\r\nc{% endif %}", {}),
    ("raw_block", "{% raw %}{{ not parsed }}{% endraw %}", {}),
    ("lstrip_after_text_same_line", "x {% if true %}y{% endif %}", {}),
    ("lstrip_after_print_same_line", "{{ 'a' }}   {% if true %}b{% endif %}", {}),
    ("strip_then_lstrip", "{%- if true -%}\n    {% if true %}x{% endif %}{% endif %}", {}),
    ("tabs_lstrip", "\t\t{% if true %}t{% endif %}", {}),
    # Expressions
    ("arith", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 7 / 2 }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }}", {}),
    ("arith_float", "{{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 2 ** -1 }} {{ 3 - 0.5 }}", {}),
    ("unary", "{{ -3 }} {{ - (2 + 1) }} {{ +4 }} {{ not true }} {{ not 0 }}", {}),
    ("concat_tilde", "{{ 1 ~ 'a' ~ none ~ true ~ [1] }}", {}),
    ("string_plus", "{{ 'a' + 'b' }} {{ 'ab' * 3 }} {{ [1] + [2, 3] }} {{ [0] * 2 }}", {}),
    ("string_plus_int_error", "{{ 'a' + 1 }}", {}),
    ("compare_chain", "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ none == none }}", {}),
    ("compare_mixed_eq", "{{ 1 == '1' }} {{ true == 1 }} {{ [1] == [1] }} {{ {'a': 1} == {'a': 1} }} {{ (1, 2) == [1, 2] }}", {}),
    ("compare_type_error", "{{ 1 < 'a' }}", {}),
    ("in_operator", "{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'x' not in 'abc' }} {{ 3 not in [1] }}", {}),
    ("and_or_values", "{{ 0 or 'x' }} {{ 'a' and 'b' }} {{ '' and 'b' }} {{ none or none }} [{{ nothing or '' }}]", {}),
    ("conditional_expr", "{{ 'y' if true else 'n' }} {{ 'y' if 0 else 'n' }} [{{ 'y' if false }}]", {}),
    ("nested_conditional", "{{ 'a' if x == 1 else 'b' if x == 2 else 'c' }}", {"x": 2}),
    ("subscript", "{{ messages[0]['role'] }} {{ messages[-1].content }} {{ messages[1]['content'] }}", {"messages": MESSAGES}),
    ("slices", "{{ [1,2,3,4,5][1:3] }} {{ [1,2,3][::-1] }} {{ [1,2,3,4,5][-2:] }} {{ 'hello'[1:-1] }} {{ 'héllo'[::2] }} {{ [1,2,3][5:] }}", {}),
    ("slice_messages", "{% for m in messages[1:] %}{{ m.role }},{% endfor %}", {"messages": MESSAGES}),
    ("string_index_unicode", "{{ 'é😀x'[1] }} {{ 'abc'[-1] }} {{ 'é😀x' | length }}", {}),
    ("dict_literal_order", "{{ {'b': 1, 'a': 2, 'b': 3} }}", {}),
    ("dot_integer", "{{ items.1 }}", {"items": ["a", "b"]}),
    ("missing_key_is_undefined", "[{{ d.missing }}] [{{ d['missing'] }}] {{ d.missing is defined }}", {"d": {"k": 1}}),
    ("attr_of_undefined_error", "{{ nothing.attr }}", {}),
    ("attr_of_none_undefined", "[{{ n.attr }}] {{ n.attr is defined }}", {"n": None}),
    ("index_out_of_range", "[{{ [1][5] }}]", {}),
    ("undefined_in_arith_error", "{{ nothing + 1 }}", {}),
    ("call_non_callable", "{{ 'a'() }}", {}),
    ("tuple_print", "{{ 1, 2 }}", {}),
    # Statements
    ("if_elif_else", "{% for x in [1, 2, 3] %}{% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %} {% endfor %}", {}),
    ("for_loop_vars",
     "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}"
     "{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}", {}),
    ("for_prev_next", "{% for x in [1, 2, 3] %}[{{ loop.previtem }}|{{ loop.nextitem }}]{% endfor %}", {}),
    ("for_cycle", "{% for x in range(5) %}{{ loop.cycle('a', 'b') }}{% endfor %}", {}),
    ("for_else", "{% for x in [] %}x{% else %}empty{% endfor %}", {}),
    ("for_filter", "{% for m in messages if m.role != 'system' %}{{ loop.index }}{{ m.role }} {% endfor %}", {"messages": MESSAGES}),
    ("for_unpack_items", "{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }},{% endfor %}", {}),
    ("for_dict_keys", "{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}", {}),
    ("for_undefined_empty", "{% for x in nothing %}x{% else %}none{% endfor %}", {}),
    ("for_none_error", "{% for x in n %}x{% endfor %}", {"n": None}),
    ("for_break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("nested_loops", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }} {% endfor %}{{ loop.index }}|{% endfor %}", {}),
    ("set_scoping_loop", "{% set x = 1 %}{% for i in [1, 2] %}{% set x = i * 10 %}{{ x }} {% endfor %}{{ x }}", {}),
    ("set_in_if_top", "{% if true %}{% set y = 'set' %}{% endif %}{{ y }}", {}),
    ("namespace", "{% set ns = namespace(n=0, found=false) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }} {{ ns.found }}", {}),
    ("namespace_new_attr", "{% set ns = namespace() %}{% set ns.x = 'new' %}{{ ns.x }}", {}),
    ("set_attr_non_namespace_error", "{% set d = {} %}{% set d.x = 1 %}", {}),
    ("set_tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c, d = [3, 4] %}{{ c }}{{ d }}", {}),
    ("set_block", "{% set body %}  inner {{ 1 + 1 }}  {% endset %}[{{ body }}]", {}),
    ("set_block_filter", "{% set body | upper %}abc{% endset %}{{ body }}", {}),
    ("macro_basic", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('a') }} {{ greet('b', '?') }} {{ greet(name='c', punct='.') }}", {}),
    ("macro_sees_globals", "{% set g = 'G' %}{% macro m() %}{{ g }}{{ bos_token }}{% endmacro %}{{ m() }}", {"bos_token": "<s>"}),
    ("macro_varargs_kwargs", "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k='v') }}", {}),
    ("macro_missing_arg", "{% macro m(a, b) %}[{{ a }}][{{ b }}]{% endmacro %}{{ m(1) }}", {}),
    ("call_block", "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold{% endcall %}", {}),
    ("call_block_args", "{% macro each(xs) %}{% for x in xs %}{{ caller(x) }}{% endfor %}{% endmacro %}{% call(v) each([1, 2]) %}<{{ v }}>{% endcall %}", {}),
    ("filter_block", "{% filter upper %}shout {{ 'x' }}{% endfilter %}", {}),
    ("generation_block", "{% generation %}kept{% endgeneration %}", {}),
    ("raise_exception", "{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}", {"messages": MESSAGES}),
    # Filters
    ("filter_trim", "[{{ '  a b  ' | trim }}] [{{ 'xxaxx' | trim('x') }}]", {}),
    ("filter_length_count", "{{ messages | length }} {{ 'héllo' | length }} {{ {'a': 1} | count }} {{ nothing | length }}", {"messages": MESSAGES}),
    ("filter_case", "{{ 'Hello World' | upper }} {{ 'Hello World' | lower }} {{ 'hello wORLD' | capitalize }} {{ 'hello wORLD-x y2z' | title }}", {}),
    ("filter_tojson", "{{ tools | tojson }}", {"tools": TOOLS}),
    ("filter_tojson_indent", "{{ tools | tojson(indent=4) }}", {"tools": TOOLS}),
    ("filter_tojson_sort_sep", "{{ {'b': 1, 'a': [1, 2]} | tojson(sort_keys=true, separators=(',', ':')) }}", {}),
    ("filter_tojson_scalars", "{{ 'é\"\\n\\u0001' | tojson }} {{ none | tojson }} {{ true | tojson }} {{ 1.0 | tojson }} {{ [] | tojson }} {{ {} | tojson(indent=2) }}", {}),
    ("filter_tojson_ensure_ascii", "{{ 'é😀' | tojson(ensure_ascii=true) }}", {}),
    ("filter_tojson_undefined_error", "{{ nothing | tojson }}", {}),
    ("filter_replace", "{{ 'aaa' | replace('a', 'b') }} {{ 'aaa' | replace('a', 'b', 2) }} {{ 'abc' | replace('', '-') }}", {}),
    ("filter_default", "{{ nothing | default('d') }} {{ '' | default('d') }} {{ '' | default('d', true) }} {{ none | default('d') }} {{ x | d('y') }}", {}),
    ("filter_first_last", "{{ [1, 2, 3] | first }} {{ [1, 2, 3] | last }} {{ 'abc' | first }} [{{ [] | first }}]", {}),
    ("filter_join", "{{ [1, 2, 3] | join(', ') }} {{ messages | map(attribute='role') | join('/') }} {{ ['a', 'b'] | join }}", {"messages": MESSAGES}),
    ("filter_selectattr", "{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }}", {"messages": MESSAGES}),
    ("filter_rejectattr", "{{ messages | rejectattr('role', 'eq', 'user') | list | length }}", {"messages": MESSAGES}),
    ("filter_selectattr_truthy", "{{ [{'a': 1}, {'a': 0}, {'b': 1}] | selectattr('a') | list }}", {}),
    ("filter_select_reject", "{{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3, 4] | reject('even') | list }} {{ [0, 1, '', 'a'] | select | list }}", {}),
    ("filter_map_filter", "{{ ['a', 'b'] | map('upper') | list }} {{ [1.6, 2.2] | map('int') | list }}", {}),
    ("filter_items", "{% for k, v in {'x': 1, 'y': [2]} | items %}{{ k }}:{{ v }};{% endfor %}", {}),
    ("filter_string_int_float", "{{ 5 | string }}{{ [1] | string }} {{ '42' | int + 1 }} {{ '4.7' | int }} {{ 'x' | int(7) }} {{ '2.5' | float }} {{ 3 | float }}", {}),
    ("filter_list", "{{ 'abc' | list }} {{ {'a': 1} | list }}", {}),
    ("filter_abs_round", "{{ -3 | abs }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 2.1 | round(method='ceil') }}", {}),
    ("filter_sort", "{{ [3, 1, 2] | sort }} {{ ['b', 'A', 'c'] | sort }} {{ [3, 1] | sort(reverse=true) }} {{ messages | sort(attribute='role') | map(attribute='role') | list }}", {"messages": MESSAGES}),
    ("filter_unique", "{{ [1, 2, 1, 3] | unique | list }} {{ ['a', 'A', 'b'] | unique | list }}", {}),
    ("filter_reverse", "{{ 'abc' | reverse }} {{ [1, 2, 3] | reverse | list }}", {}),
    ("filter_sum_max_min", "{{ [1, 2, 3] | sum }} {{ [1, 5, 3] | max }} {{ [4, 2, 8] | min }} {{ [{'n': 2}, {'n': 3}] | sum(attribute='n') }}", {}),
    ("filter_indent", "{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent(2, blank=true) }}", {}),
    ("filter_center_wordcount", "[{{ 'ab' | center(6) }}] {{ 'one two  three' | wordcount }}", {}),
    ("filter_truncate", "{{ 'the quick brown fox jumps over' | truncate(15) }} {{ 'short' | truncate(15) }}", {}),
    ("filter_batch", "{{ [1, 2, 3, 4, 5] | batch(2) | list }} {{ [1, 2, 3] | batch(2, 'x') | list }}", {}),
    ("filter_dictsort", "{{ {'b': 1, 'a': 2} | dictsort }} {{ {'b': 1, 'a': 2} | dictsort(by='value') }}", {}),
    ("filter_format", "{{ '%s-%d' | format('a', 3) }} {{ '%.2f' | format(3.14159) }}", {}),
    ("filter_escape_safe", "{{ '<a href=\"x\">&</a>' | e }} {{ 'x' | safe }}", {}),
    ("filter_chain_args", "{{ messages | map(attribute='content') | select('string') | map('trim') | join('|') }}", {"messages": MESSAGES}),
    ("filter_attr", "{{ messages[0] | attr('role') }}", {"messages": MESSAGES}),
    ("unknown_filter_error", "{{ 'a' | nosuchfilter }}", {}),
    ("unknown_filter_dead_branch", "{% if false %}{{ x | nosuchfilter }}{% endif %}ok", {}),
    # Tests
    ("tests_types",
     "{{ 'a' is string }}{{ 1 is number }}{{ 1.5 is float }}{{ 1 is integer }}{{ true is integer }}{{ true is boolean }}"
     "{{ {} is mapping }}{{ [] is sequence }}{{ 'a' is iterable }}{{ none is none }}{{ 1 is none }}", {}),
    ("tests_defined", "{{ x is defined }}{{ y is defined }}{{ y is undefined }}{{ x is not defined }}", {"x": 1}),
    ("tests_compare", "{{ 1 is equalto 1 }}{{ 'a' is eq 'a' }}{{ 2 is gt 1 }}{{ 2 is ge(3) }}{{ 1 is lt 2 }}{{ 3 is ne 3 }}", {}),
    ("tests_numbers", "{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(2) }}", {}),
    ("tests_sameas_truefalse", "{{ false is sameas false }}{{ none is sameas none }}{{ true is true }}{{ 1 is true }}{{ false is false }}", {}),
    ("tests_in_callable", "{{ 2 is in [1, 2] }}{{ range is callable }}{{ 'upper' is filter }}{{ 'odd' is test }}", {}),
    ("tests_case", "{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ 'aB' is lower }}", {}),
    ("test_in_condition", "{% if messages[0].content is string and messages[0].role in ['system', 'developer'] %}ok{% endif %}", {"messages": MESSAGES}),
    ("not_is_precedence", "{{ not x is defined }} {{ not x is none }}", {"x": None}),
    ("unknown_test_error", "{{ 1 is nosuchtest }}", {}),
    ("unknown_test_dead_branch", "{% if false and x is nosuchtest %}{% endif %}ok", {}),
    # String methods
    ("str_strip", "[{{ '  a  '.strip() }}][{{ '\\n a \\n'.lstrip() }}][{{ ' a \\n'.rstrip() }}][{{ 'xxaxx'.strip('x') }}][{{ '\\n\\nhi'.lstrip('\\n') }}]", {}),
    ("str_split", "{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a b c'.rsplit(' ', 1) }} {{ '</think>x</think>y'.split('</think>')[-1] }}", {}),
    ("str_startswith", "{{ 'hello'.startswith('he') }}{{ 'hello'.endswith('lo') }}{{ 'hello'.startswith(('x', 'h')) }}{{ 'hi'.endswith('hello') }}", {}),
    ("str_case_methods", "{{ 'ab cd'.upper() }} {{ 'AB'.lower() }} {{ 'ab cd'.title() }} {{ 'aB'.capitalize() }}", {}),
    ("str_replace_find", "{{ 'aXbX'.replace('X', '-') }} {{ 'abcb'.find('b') }} {{ 'abcb'.rfind('b') }} {{ 'abc'.find('z') }} {{ 'aaa'.count('a') }}", {}),
    ("str_join_format", "{{ '-'.join(['a', 'b']) }} {{ '{} and {}'.format(1, 'x') }} {{ '{name}!'.format(name='N') }}", {}),
    ("str_format_specs", "{{ '{:>5}|{:<4}|{:^7}|{:05d}|{:.2f}|{!r}|{:+d}|{:x}|{:*^9}|{:.3}|{:e}|{:%}'.format('a', 'b', 'mid', 7, 2.5, 'x', 3, 255, 'c', 'abcdef', 1234.5, 0.25) }}", {}),
    ("str_format_unicode_floats", "{{ '{:é>4}|{:>6}|{:g}|{:.3g}|{}|{:.1f}|{:b}|{:o}'.format('a', 'é😀', 0.0001, 1234567.0, 1.5, -0.05, 5, 8) }}", {}),
    ("str_format_negative_sign", "{{ '{:05d}|{:>8.2f}|{: d}|{:=+6d}|{:<6d}|'.format(-42, -3.14159, 5, 7, -3) }}", {}),
    ("str_format_lookups", "{{ '{0.x}|{0[y][1]}|{d[x]}'.format(d, d=d) }}", {"d": {"x": 1, "y": [5, 6]}}),
    ("str_format_lookup_missing", "{{ '{0.nope}'.format(d) }}", {"d": {"x": 1}}),
    ("str_format_bad_code", "{{ '{:d}'.format('s') }}", {}),
    ("str_predicates", "{{ '123'.isdigit() }}{{ 'ab'.isalpha() }}{{ ' '.isspace() }}{{ 'a1'.isalnum() }}{{ ''.isdigit() }}", {}),
    ("str_splitlines", "{{ 'a\\nb\\r\\nc\\n'.splitlines() }}", {}),
    ("dict_methods", "{{ d.keys() | list }} {{ d.values() | list }} {{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 5) }} {{ d.items() | list }}", {"d": {"a": 1, "b": [2]}}),
    ("list_methods", "{{ [1, 2, 1].count(1) }} {{ ['a', 'b'].index('b') }}", {}),
    ("list_append_refused", "{% set l = [1] %}{{ l.append(2) }}", {}),
    ("dict_update_refused", "{% set d = {} %}{{ d.update({'a': 1}) }}", {}),
    ("messages_content_loop", "{% for m in messages %}{{ m['role'] | upper }}: {{ m['content'] | trim }}\n{% endfor %}", {"messages": MESSAGES}),
    # Globals
    ("range_forms", "{{ range(3) | list }} {{ range(1, 4) | list }} {{ range(10, 0, -3) | list }}", {}),
    ("dict_global", "{{ dict(a=1, b='x') }}", {}),
    ("strftime_now", "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M') }}", {}),
    # Syntax errors
    ("error_unclosed_if", "{% if true %}x", {}),
    ("error_unclosed_for", "{% for x in y %}x{% endif %}", {}),
    ("error_unknown_tag", "{% frobnicate %}", {}),
    ("error_unclosed_print", "{{ 'a' ", {}),
    ("error_unclosed_string", "{{ 'abc }}", {}),
    ("error_bad_expression", "{{ 1 + }}", {}),
    ("error_stray_endfor", "x{% endfor %}", {}),
    ("error_unclosed_comment", "{# never closed", {}),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/reference/golden")
    args = ap.parse_args()
    env = hf_environment()
    cases = []
    names = set()
    n_err = 0
    for name, source, variables in CASES:
        assert name not in names, name
        names.add(name)
        case = {"name": name, "template": source, "vars": variables}
        try:
            case["text"] = env.from_string(source).render(**variables)
        except Exception as e:  # noqa: BLE001 -- any jinja2 failure is a recorded outcome
            case["error"] = f"{type(e).__name__}: {e}"
            n_err += 1
        cases.append(case)
    out = {"generator": {"jinja2": jinja2.__version__, "python": sys.version.split()[0]}, "cases": cases}
    with open(os.path.join(args.out, "jinja_cases.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(cases)} cases, {n_err} errors")


if __name__ == "__main__":
    main()
