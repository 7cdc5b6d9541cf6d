#!/usr/bin/env python3
"""Render chat templates with transformers' own Jinja environment and write
the expected outputs that tests/test_chat_template.c compares byte for byte.

    python3 tools/gen_chat_template_fixtures.py            # writes tests/fixtures/chat_templates/

Writes, under tests/fixtures/chat_templates/:
  templates/NAME.jinja   the templates (copied from SOURCES below; data)
  contexts/CONV.json     {messages, tools, add_generation_prompt, bos_token, ...}; units.json is the
                         context of the unit templates
  expected.json          {"cases": [{"template", "context", "output" | "error"}],
                          "parse_errors": {"NAME": message},
                          "units": [{"template", "context", "output" | "error"}]}
Every context is passed as it is (json.loads of its file) to
Template.render(**ctx), the call transformers' render_jinja_template makes.
strftime_now is pinned to 2026-01-15 12:00:00 UTC (the C test pins the same
clock with moe_chat_template_set_time) so outputs are reproducible.
"""
import datetime
import glob
import json
import os
import sys

import jinja2
import transformers
from transformers.utils import chat_template_utils as ctu

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "chat_templates")
SHARED = "/work/shared/chat-templates"
LLAMA_CPP = "/tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp/models/templates"
FIXED_TIME = 1768478400  # 2026-01-15T12:00:00Z

# Templates not in the directories above, as their models ship them.
EXTRA = {
    # Mixtral-8x7B-Instruct-v0.1 tokenizer_config.json (mistral "v1" template with a system prompt)
    "mistralai-Mixtral-8x7B-Instruct-v0.1":
        "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content'] %}\n"
        "    {%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif %}\n\n"
        "{{- bos_token }}\n{%- for message in loop_messages %}\n"
        "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
        "        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}\n"
        "    {%- endif %}\n    {%- if message['role'] == 'user' %}\n"
        "        {%- if loop.first and system_message is defined %}\n"
        "            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}\n"
        "        {%- else %}\n            {{- ' [INST] ' + message['content'] + ' [/INST]' }}\n        {%- endif %}\n"
        "    {%- elif message['role'] == 'assistant' %}\n        {{- ' ' + message['content'] + eos_token}}\n"
        "    {%- else %}\n        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}\n"
        "    {%- endif %}\n{%- endfor %}\n",
    # the first Mixtral-8x7B-Instruct-v0.1 template (user/assistant only)
    "mistralai-Mixtral-8x7B-Instruct-v0.1-original":
        "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
        "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
        "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
        "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}",
    # OLMoE-1B-7B-0924-Instruct (the Tulu template)
    "allenai-OLMoE-1B-7B-0924-Instruct":
        "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '\n' }}"
        "{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '\n' }}"
        "{% elif message['role'] == 'assistant' %}{% if not loop.last %}{{ '<|assistant|>\n'  + message['content'] + eos_token + '\n' }}"
        "{% else %}{{ '<|assistant|>\n'  + message['content'] + eos_token }}{% endif %}{% endif %}"
        "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}{% endfor %}",
}

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name, e.g. \"Paris\""},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "description": "Days ahead", "default": 0}},
        "required": ["city"]}}}]

SYS = {"role": "system", "content": "You are a helpful assistant."}
U1 = {"role": "user", "content": "Hello! How are you?"}
A1 = {"role": "assistant", "content": "I am fine, thank you. How can I help?"}
U2 = {"role": "user", "content": "What is 2 + 2?"}
CALL = {"role": "assistant", "content": "", "tool_calls": [{"id": "abc123def", "type": "function", "function": {
    "name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]}
TOOL = {"role": "tool", "tool_call_id": "abc123def", "name": "get_weather", "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}"}
A_AFTER = {"role": "assistant", "content": "It is 21.5 °C and clear in Paris."}


def ctx(messages, gen=True, tools=None, **extra):
    c = {"messages": messages, "tools": tools, "documents": None, "add_generation_prompt": gen,
         "bos_token": "<s>", "eos_token": "</s>"}
    c.update(extra)
    return c


CONTEXTS = {
    "system_user": ctx([SYS, U1]),
    "system_user_nogen": ctx([SYS, U1], gen=False),
    "multi_turn": ctx([U1, A1, U2]),
    "multi_turn_nogen": ctx([SYS, U1, A1, U2, {"role": "assistant", "content": "4"}], gen=False),
    "tools_list": ctx([SYS, {"role": "user", "content": "What's the weather in Paris?"}], tools=TOOLS),
    "tool_calls": ctx([SYS, {"role": "user", "content": "What's the weather in Paris?"}, CALL, TOOL, A_AFTER,
                       {"role": "user", "content": "Thanks!"}], tools=TOOLS),
    "non_ascii": ctx([{"role": "user", "content": "Grüß dich! Ça va? 日本語で答えて 🙂"},
                      {"role": "assistant", "content": "はい、元気です — ¡gracias! ✓"},
                      {"role": "user", "content": "Ω≈ç√ ∫˜µ≤"}]),
    "special_chars": ctx([{"role": "system", "content": "  Use \"quotes\", 'apostrophes', back\\slashes & <tags>.\n"},
                          {"role": "user", "content": "{{ not_a_var }} {% if %} {# c #}\n\ttab\r\nline <|im_end|> </s> [INST]\x01"},
                          {"role": "assistant", "content": "  spaced reply  \n\n"},
                          {"role": "user", "content": "{\"json\": [1, 2.5, null, true]}"}]),
    "reasoning": ctx([U1, {"role": "assistant", "content": "Fine.", "reasoning_content": "The user greets me.",
                           "thinking": "The user greets me."}, U2], enable_thinking=False),
    "user_only": ctx([U1], gen=False),
}

# Small templates for the language features; expected output from jinja2.
U = dict(xs=[1, 2, 3], d={"a": 1, "b": [1, 2], "c": {"x": "y"}}, s="héllo wörld", n=None, t=True, f=1.5,
         words=["b", "A", "c", "a"], msgs=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                                          {"role": "user", "content": "bye", "tag": 1}])
UNITS = [
    "a {{- ' b ' -}} c", "x  {%- if true %} y {% endif -%}  z", "{% if true %}\n  yes\n{% endif %}\nend",
    "  {% for x in xs %}\n  {{ x }}\n  {% endfor %}\n", "  {%+ if true %}kept{% endif %}", "{% if true +%}\nnl{% endif %}",
    "line\n    {# comment #}\nafter", "{#- c -#}  x  {#- c #}", "{% raw %}{{ not }}{% endraw %}", "a\r\nb\rc\n",
    "trailing newline\n", "trailing two\n\n",
    "{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}",
    "{% for x in [] %}a{% else %}empty{% endfor %}", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
    "{% for k in d %}{{ k }}{% endfor %}", "{% for x in xs if x > 1 %}{{ x }}{{ loop.index }}{{ loop.last }}{% endfor %}",
    "{% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}",
    "{% for x in xs %}{{ loop.previtem }}-{{ loop.nextitem }}-{{ loop.cycle('a', 'b') }} {% endfor %}",
    "{% set ns = namespace(c=0, found=false) %}{% for x in xs %}{% set ns.c = ns.c + x %}{% endfor %}{{ ns.c }}{{ ns.found }}",
    "{% for x in xs %}{% set y = x %}{% endfor %}[{{ y }}]", "{% set y = 1 %}{% for x in xs %}{{ y }}{% set y = 2 %}{{ y }}{% endfor %}{{ y }}",
    "{% set a, b = 1, 'two' %}{{ a }}{{ b }}", "{% set blk %}  inner {{ xs|length }} {% endset %}[{{ blk }}]",
    "{% set blk | trim | upper %}  inner  {% endset %}[{{ blk }}]",
    "{% macro m(a, b=2, c='x') %}{{ a }}{{ b }}{{ c }}{% endmacro %}{{ m(1) }}{{ m(1, 3) }}{{ m(1, c='z') }}{{ m() }}",
    "{% macro m() %}{{ v }}{% endmacro %}{% set v = 3 %}{{ m() }}",
    "{% macro outer() %}<{{ caller() }}>{% endmacro %}{% call outer() %}body{% endcall %}",
    "{% macro outer() %}<{{ caller(5) }}>{% endmacro %}{% call(n) outer() %}n={{ n }}{% endcall %}",
    "{% filter upper %}abc {{ s }}{% endfilter %}", "{% generation %}gen{% endgeneration %}",
    "{{ xs }} {{ d }} {{ (1, 'a') }} {{ (1,) }} {{ [] }} {{ {} }} {{ n }} {{ t }} {{ f }} {{ 1.0 }} {{ 1e20 }} {{ 1e-7 }} {{ 0.1 + 0.2 }}",
    "{{ ['it\\'s', \"q\\\"\", 'nl\\n', 'tab\\t', 'bs\\\\', 'é', '\\x01', '\\u00e9\\U0001F600'] }}",
    "{{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 1 + 2 * 3 - 4 }} {{ 2 ** 3 ** 2 }}",
    "{{ 1 + true }} {{ 3 * 'ab' }} {{ [1] * 2 }} {{ 'a' ~ 1 ~ n ~ t }} {{ xs + [4] }} {{ 'a' + 'b' }} {{ -f }} {{ +1 }}",
    "{{ 1 < 2 < 3 }} {{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 != 2 }} {{ 3 >= 3 }} {{ 'x' in 'xyz' }} {{ 2 in xs }} {{ 'a' in d }} {{ 5 not in xs }}",
    "{{ true and 'x' }} {{ false or 'y' }} {{ not 0 }} {{ 'a' if t else 'b' }} {{ 'a' if n else 'b' }} [{{ 'a' if n }}] {{ n or 'dflt' }}",
    "{{ s[0] }} {{ s[-1] }} {{ s[1:4] }} {{ s[::-1] }} {{ s[::2] }} {{ xs[1:] }} {{ xs[:-1] }} {{ xs[-2:] }} {{ xs[::-1] }} {{ s[100:] }}",
    "{{ d.a }} {{ d['b'][1] }} {{ d.c.x }} {{ xs.0 }} [{{ d.zz }}] [{{ xs[10] }}] [{{ n.attr }}]",
    "{{ missing is defined }} {{ missing is undefined }} {{ d.zz is defined }} {{ d.a is defined }} {{ n is none }} {{ s is string }} {{ d is mapping }} {{ xs is iterable }} {{ xs is sequence }} {{ 1 is number }} {{ 1 is integer }} {{ 1.5 is integer }} {{ t is boolean }} {{ t is true }} {{ t is false }} {{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 1 is equalto 1 }} {{ 'a' is eq 'a' }} {{ 2 is in xs }} {{ xs is not none }} {{ m is callable }} {{ range is callable }}",
    "[{{ missing }}] [{{ missing|default('dflt') }}] [{{ ''|default('e', true) }}] [{{ n|d('nd') }}] [{{ missing|length }}]",
    "{{ '  pad  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ s|length }}|{{ xs|count }}|{{ s|upper }}|{{ 'ABC'|lower }}|{{ 'hello world'|title }}|{{ 'hELLO'|capitalize }}|{{ 'aaa'|replace('a', 'b') }}|{{ 'aaa'|replace('a', 'b', 2) }}",
    "{{ xs|join(', ') }}|{{ xs|first }}|{{ xs|last }}|{{ xs|list }}|{{ 'abc'|list }}|{{ d|list }}|{{ xs|sum }}|{{ xs|min }}|{{ xs|max }}|{{ words|sort }}|{{ words|sort(reverse=true) }}|{{ words|sort(case_sensitive=true) }}|{{ words|unique|list }}",
    "{{ d|items|list }}|{{ d|dictsort }}|{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ s|tojson }}|{{ [1.5, none, true]|tojson }}|{{ d|tojson(separators=(',', ':')) }}|{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}|{{ 'é'|tojson(ensure_ascii=true) }}",
    "{{ msgs|selectattr('role', 'equalto', 'user')|map(attribute='content')|join(',') }}|{{ msgs|rejectattr('role', 'eq', 'user')|list|length }}|{{ msgs|selectattr('tag')|list|length }}|{{ msgs|selectattr('tag', 'defined')|map(attribute='content')|first }}|{{ xs|select('odd')|list }}|{{ xs|reject('odd')|list }}|{{ xs|map('string')|join }}|{{ msgs|map(attribute='tag', default=0)|list }}",
    "{{ '42'|int + 1 }}|{{ 'x'|int }}|{{ '4.7'|int }}|{{ 3|float }}|{{ '2.5'|float }}|{{ 2.567|round(2) }}|{{ 2.5|round }}|{{ -3|abs }}|{{ 3.7|int }}|{{ 'a b  c'|wordcount }}|{{ xs|batch(2)|list }}|{{ '<a&b>'|escape }}|{{ xs|string }}|{{ 5|string }}",
    "{{ 'line1\\nline2\\n\\nline4'|indent(2) }}|{{ 'a\\nb'|indent(4, true) }}|{{ 'a\\n\\nb'|indent('> ', blank=true) }}",
    "{{ s.startswith('hé') }} {{ s.endswith(('x', 'ld')) }} {{ '  x  '.strip() }}|{{ 'xxyxx'.lstrip('x') }}|{{ 'xxyxx'.rstrip('x') }}|{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ s.replace('l', 'L') }} {{ s.upper() }} {{ 'Ab'.lower() }} {{ 'ab cd'.title() }} {{ 'ab'.capitalize() }} {{ s.find('l') }} {{ s.find('z') }} {{ s.count('l') }} {{ '-'.join(['a', 'b']) }} {{ '{} and {}'.format('x', 1) }}",
    "{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 'def') }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }}",
    "{{ range(3)|list }} {{ range(1, 6, 2)|list }} {{ namespace(a=1).a }} {{ dict(x=1) }} {{ strftime_now('%Y-%m-%d %H:%M') }}",
    "{{ raise_exception('refused: ' ~ xs|length) }}", "{{ missing.attr }}", "{{ d.zz.attr }}", "{{ xs.append(4) }}",
    "{{ 1 / 0 }}", "{{ 'a' + 1 }}", "{{ missing + 1 }}", "{% for x in 5 %}{% endfor %}", "{{ undefined_fn() }}",
    "{% set ns = namespace() %}{% set ns._x = 1 %}", "{{ 'abc' is unknowntest }}", "{{ x|nosuchfilter }}",
    "{% include 'x' %}", "{% if true %}unclosed", "{{ 'unterminated }}", "{% endfor %}", "{{ 1 + }}",
    "{{ {'a': {'b': 1}} }}", "{{ [1, 2,] }} {{ (1, 2,) }} {{ {'a': 1,} }}", "{{ 'adj' 'acent' }}",
    "{%- set x = 'a' -%}\n\n{{- x -}}\n\n{%- if x %}\n  ok\n{%- endif %}",
    "{% for m in msgs %}{% if loop.first %}{% set first = m %}{% endif %}{% endfor %}{{ first is defined }}",
    "{% macro r(n) %}{% if n > 0 %}{{ n }}{{ r(n - 1) }}{% endif %}{% endmacro %}{{ r(3) }}",
    "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}",
    "{% for a in range(5) %}{% for b in range(3) %}{{ loop.index }}{% endfor %}{{ loop.index }}|{% endfor %}",
    "{{ xs|length > 2 and xs[0] == 1 }} {{ not xs|length }} {{ -xs|length }} {{ (xs|length) ** 2 }}",
    "{{ 999999999 * 999999999 }} {{ -2 ** 62 }}", "{{ 'a'|safe + '<b>' }} {{ '<b>' + 'a'|safe }} {{ ('<x>'|safe + '&')|trim }} {{ '<'|e }}",
    "{{ d.items()|length }} {{ d.items() }} {{ d.keys() }} {{ range(3) }} {{ range(3)|length }} {{ range(5)[1] }} {{ (xs|select('odd')) is sequence }}",
    "{% if false %}{{ x|nofilter }}{{ x is notest }}{% endif %}ok {{ (x|nof) if false else 'c' }}", "{% if x|nofilter %}{% endif %}",
    "{{ none|selectattr('a')|list }} {{ none|map('string')|list }} {{ ''|select|list }}", "{{ xs|map('string')|tojson }}",
    "{{ xs|select('odd')|length }}", "{{ d.items()|tojson }}", "{{ none|join }}", "{{ 'é' * 3 }}{{ 'x'|center(5) }}|", "{{ t|tojson }} {{ none|tojson }} {{ 1.0|tojson }} {{ 'a\"\\\\\\n\\u0001'|tojson }}",
]


def compile_tpl(src):
    return ctu._compile_jinja_template(src)


def render(src, context):
    try:
        tpl = compile_tpl(src)
    except Exception as e:  # noqa: BLE001 - any refusal is recorded
        return {"error": f"{type(e).__name__}: {e}", "parse": True}
    try:
        return {"output": tpl.render(**context)}
    except Exception as e:  # noqa: BLE001
        return {"error": f"{type(e).__name__}: {e}"}


class FixedDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime.datetime.fromtimestamp(FIXED_TIME, datetime.timezone.utc).replace(tzinfo=None)


def main():
    ctu.datetime = FixedDatetime  # strftime_now reads datetime.now()
    ctu._compile_jinja_template.cache_clear()
    sources = {}
    for path in sorted(glob.glob(os.path.join(SHARED, "*.jinja"))):
        sources[os.path.basename(path)[:-6]] = open(path, encoding="utf-8").read()
    for name, src in EXTRA.items():
        sources[name] = src
    # every template llama.cpp collects (the same name in SHARED wins)
    for path in sorted(glob.glob(os.path.join(LLAMA_CPP, "*.jinja"))):
        name = os.path.basename(path)[:-6]
        if name not in sources:
            sources[name] = open(path, encoding="utf-8").read()

    tdir = os.path.join(OUT, "templates")
    os.makedirs(tdir, exist_ok=True)
    for old in glob.glob(os.path.join(tdir, "*.jinja")):
        os.remove(old)
    for name, src in sources.items():
        with open(os.path.join(tdir, name + ".jinja"), "w", encoding="utf-8", newline="") as f:
            f.write(src)

    cases, parse_errors = [], {}
    for name, src in sources.items():
        for conv, context in CONTEXTS.items():
            r = render(src, json.loads(json.dumps(context)))
            if r.pop("parse", False):
                parse_errors[name] = r["error"]
                break
            cases.append({"template": name, "context": conv, **r})
    units = []
    for src in UNITS:
        r = render(src, U)
        r.pop("parse", None)
        units.append({"template": src, **r})
    cdir = os.path.join(OUT, "contexts")
    os.makedirs(cdir, exist_ok=True)
    for name, context in {"units": U, **CONTEXTS}.items():
        with open(os.path.join(cdir, name + ".json"), "w", encoding="utf-8") as f:
            json.dump(context, f, ensure_ascii=False, indent=1)
            f.write("\n")
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"jinja2": jinja2.__version__, "transformers": transformers.__version__, "fixed_time": FIXED_TIME,
                   "cases": cases, "parse_errors": parse_errors, "units": units}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    ok = sum("output" in c for c in cases)
    print(f"{len(sources)} templates, {len(cases)} cases ({ok} render, {len(cases) - ok} raise), "
          f"{len(parse_errors)} refused by jinja2, {len(units)} unit templates")


if __name__ == "__main__":
    main()
