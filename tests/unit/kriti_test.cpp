// The Kriti engine (SPEC §11): templates parsed once and rendered against
// walhook's body, with Kriti's semantics (hasura/kriti-lang), exact numbers,
// positions in every error, and bounds on hostile templates and inputs.
#include "walhook/kriti.h"

#include <doctest/doctest.h>

#include <string>

namespace walhook::kriti {
namespace {

// walhook's standard body (SPEC §4) for an INSERT into shop.public.products.
constexpr std::string_view kBody = R"({"specversion":"1.0","id":"42","type":"DB_INSERT",)"
                                   R"("source":"node-1","time":"2026-11-28T10:00:00.123Z",)"
                                   R"("data":{"db":"shop","schema":"public","col":"products",)"
                                   R"("doc":{"id":7,"name":"Café Crème","price":12.50,)"
                                   R"("tags":["new","sale"],"big":9007199254740993,)"
                                   R"("meta":{"color":"red","a b":1},"note":null,"stock":0},)"
                                   R"("find":{"id":7}}})";

// The rendered text, or "error: " and the message. Every template is also
// rendered over only the parts of the input it reads (BodyPaths, as delivery
// does it), which must make the same text or the same error.
std::string Render(std::string_view tmpl, std::string_view input = kBody, Mode mode = Mode::kJson,
                   std::string_view base_url = "https://search.example/api", Limits limits = {}) {
  auto t = Parse(tmpl, mode);
  if (!t.ok()) return "error: " + t.error();
  auto outcome = [](const Result<std::string>& r) { return r.ok() ? *r : "error: " + r.error(); };
  const std::string whole = outcome(kriti::Render(**t, Bindings{input, base_url}, limits));
  BodyPaths paths;
  paths.Add(**t);
  auto in = Input::Bind(Bindings{input, base_url}, &paths);
  const std::string read =
      in.ok() ? outcome(kriti::Render(**t, *in, limits)) : "error: " + in.error();
  CHECK_MESSAGE(read == whole, "the template's paths only, for " << tmpl);
  return whole;
}

std::string Str(std::string_view tmpl, std::string_view input = kBody) {
  return Render(tmpl, input, Mode::kString);
}

TEST_CASE("kriti: JSON literals render as compact JSON") {
  CHECK(Render("null") == "null");
  CHECK(Render(" true ") == "true");
  CHECK(Render("false") == "false");
  CHECK(Render("-12.50e+3") == "-12.50e+3");
  CHECK(Render(R"("a\"b\\c\n\u00e9\ud83d\ude00")") == "\"a\\\"b\\\\c\\né😀\"");
  CHECK(Render(R"({ "a" : [1, 2, {"b": []}], "c": {} })") == R"({"a":[1,2,{"b":[]}],"c":{}})");
  CHECK(Render("[]") == "[]");
  CHECK(Render("# a comment\n[1, # and another\n 2]") == "[1,2]");
  // A repeated key: the last value wins.
  CHECK(Render(R"({"a": 1, "b": 2, "a": 3})") == R"({"a":3,"b":2})");
}

TEST_CASE("kriti: paths over $body and $ copy the value with its JSON text") {
  CHECK(Render("{{ $body.data.doc.id }}") == "7");
  CHECK(Render("{{$.data.doc.price}}") == "12.50");
  CHECK(Render("{{ $body.data.doc.big }}") == "9007199254740993");
  CHECK(Render("{{ $body['data']['doc'].name }}") == "\"Café Crème\"");
  CHECK(Render("{{ $body.data.doc.tags[1] }}") == "\"sale\"");
  CHECK(Render("{{ $body.data.doc.meta['a b'] }}") == "1");
  CHECK(Render("{{ $body.data.find }}") == R"({"id":7})");
  CHECK(Render("{{ $ }}") == kBody);
  CHECK(Render(R"({"id": {{$body.data.doc.id}}, "price": {{ $body.data.doc.price }}})") ==
        R"({"id":7,"price":12.50})");
  CHECK(Render("{{ $base_url }}") == "\"https://search.example/api\"");
  // $base_url unbound (empty) is null.
  CHECK(Render("{{ $base_url }}", kBody, Mode::kJson, "") == "null");
}

TEST_CASE("kriti: a missing path is null; the optional forms are null on a wrong type too") {
  CHECK(Render("{{ $body.data.nothing }}") == "null");
  CHECK(Render("{{ $body.data.nothing.deeper[3] }}") == "null");
  CHECK(Render("{{ $body.data.doc.tags[2] }}") == "null");
  CHECK(Render("{{ $body.data.doc.tags[-1] }}") == "null");
  CHECK(Render("{{ $body.data.doc.note.x }}") == "null");
  CHECK(Render("{{ $body?.data?.doc?['name'] }}") == "\"Café Crème\"");
  CHECK(Render("{{ $body.data.doc.name?.x }}") == "null");
  CHECK(Render("{{ $body.data.doc.tags?['x'] }}") == "null");
  CHECK(Render("{{ $body.data.doc?[0] }}") == "null");
  // The plain forms on a wrong type are type errors, with the position.
  CHECK(Render("{{ $body.data.doc.name.x }}") ==
        "error: line 1, column 23: cannot look up a key in a string");
  CHECK(Render("{{ $body.data.doc.tags['x'] }}") ==
        "error: line 1, column 23: an array's index must be a whole number, not a string");
  CHECK(Render("{{ $body.data.doc.tags[0.5] }}") ==
        "error: line 1, column 23: an array's index must be a whole number, not 0.5");
  CHECK(Render("{{ $body.data.doc[0] }}") ==
        "error: line 1, column 18: an object's key must be a string, not a number");
}

TEST_CASE("kriti: string interpolation") {
  CHECK(Render(R"("{{$body.data.col}}/{{ $body.data.doc.id }}")") == "\"products/7\"");
  // Numbers keep their text, booleans print as JSON.
  CHECK(Render(R"("{{ $body.data.doc.price }} {{ true }} {{ 1 == 1 }}")") == "\"12.50 true true\"");
  CHECK(Render(R"("{ not a template } {{ 'x' }}")") == "\"{ not a template } x\"");
  CHECK(Render(R"("")") == "\"\"");
  CHECK(Render(R"("{{ $body.data.doc.note }}")") ==
        "error: line 1, column 5: cannot interpolate null into a string");
  CHECK(Render(R"("a{{ $body.data.doc.tags }}")") ==
        "error: line 1, column 6: cannot interpolate an array into a string");
  // Keys may be templates too.
  CHECK(Render(R"({"{{$body.data.col}}_id": 1})") == R"({"products_id":1})");
}

TEST_CASE("kriti: string templates (url, headers, query parameters) render to text") {
  CHECK(Str("{{$base_url}}/indexes/{{$body.data.col}}/documents/{{$body.data.doc.id}}") ==
        "https://search.example/api/indexes/products/documents/7");
  CHECK(Str("plain text, \"quotes\" and \\ stay as they are #x") ==
        "plain text, \"quotes\" and \\ stay as they are #x");
  CHECK(Str("") == "");
  CHECK(Str("q={{ escapeUri($body.data.doc.name) }}") == "q=Caf%C3%A9%20Cr%C3%A8me");
  CHECK(Str("Bearer {{ $body.data.doc.meta.color }}") == "Bearer red");
  CHECK(Str("{{ $body.data.doc.id }}") == "7");
  CHECK(Str("x {{ $body.data.nothing }}") ==
        "error: line 1, column 6: cannot interpolate null into a string");
  CHECK(Str("{{ $body.data.nothing ?? 'none' }}") == "none");
  CHECK(Str("a {{ $body.id") ==
        "error: line 1, column 14: expected '}}' to close the expression, "
        "found the end of the template");
}

TEST_CASE("kriti: comparison, boolean operators, in and ??") {
  CHECK(Render("[1 < 2, 1 > 2, 2 <= 2, 3 >= 4, 1 == 1.0, 12.50 == 12.5, 1 != 2]") ==
        "[true,false,true,false,true,true,true]");
  CHECK(Render("[true && true, true && false, false || true, false || false]") ==
        "[true,false,true,false]");
  CHECK(Render("{{ $body.data.doc.price > 10 && $body.data.col == 'products' }}") == "true");
  CHECK(Render(R"({{ "b" < "a" }})") == "false");
  CHECK(Render(R"({{ [1, 2] == [1, 2] }})") == "true");
  CHECK(Render(R"({{ {"a": 1, "b": 2} == {"b": 2, "a": 1} }})") == "true");
  // Different kinds order object < array < string < number < boolean < null.
  CHECK(Render(R"([{} < [], [] < "", "" < 0, 0 < false, false < null, null == null])") ==
        "[true,true,true,true,true,true]");
  CHECK(Render("{{ 'sale' in $body.data.doc.tags }}") == "true");
  CHECK(Render("{{ 'color' in $body.data.doc.meta }}") == "true");
  CHECK(Render("{{ 'size' in $body.data.doc.meta }}") == "false");
  CHECK(Render("{{ $body.data.nothing ?? 'default' }}") == "\"default\"");
  CHECK(Render("{{ $body.data.doc.stock ?? 5 }}") == "0");
  CHECK(Render("{{ null ?? null ?? 3 }}") == "3");
  CHECK(Render("{{ $body.data.x ?? 0 < 1 }}") == "true");
  CHECK(Render("{{ 1 && true }}") == "error: line 1, column 4: && needs booleans, not a number");
  CHECK(Render("{{ true || 'x' }}") == "error: line 1, column 4: || needs booleans, not a string");
  CHECK(Render("{{ 1 in 'abc' }}") ==
        "error: line 1, column 4: in needs an object or an array on its right, not a string");
  CHECK(Render("{{ 1 in {} }}") ==
        "error: line 1, column 4: in an object, in needs a string on its left, not a number");
}

TEST_CASE("kriti: if, elif, else") {
  const std::string t = R"({{ if $body.type == 'DB_DELETE' }} "gone"
{{ elif $body.data.doc.price > 100 }} "dear"
{{ elif $body.data.doc.price > 10 }} "fair"
{{ else }} "cheap" {{ end }})";
  CHECK(Render(t) == "\"fair\"");
  CHECK(Render("{{ if false }} 1 {{ end }}") == "null");
  CHECK(Render(R"({"a": {{ if true }} {"b": {{ $body.id }}} {{ else }} null {{ end }}})") ==
        R"({"a":{"b":"42"}})");
  CHECK(Render("{{ if $body.data.nothing }} 1 {{ else }} 2 {{ end }}") ==
        "error: line 1, column 7: if needs a boolean, not null");
  CHECK(Render("{{ if true }} 1 {{ else }} 2") ==
        "error: line 1, column 29: expected '{{ else }}', '{{ elif … }}' or '{{ end }}', found "
        "the end of the template");
  CHECK(Render("{{ end }}") == "error: line 1, column 4: 'end' without 'if' or 'range'");
}

TEST_CASE("kriti: range over arrays, with and without the index") {
  CHECK(
      Render(
          "{{ range i, t := $body.data.doc.tags }} {\"n\": {{ i }}, \"tag\": {{ t }}} {{ end }}") ==
      R"([{"n":0,"tag":"new"},{"n":1,"tag":"sale"}])");
  CHECK(Render(R"({{ range _, t := $body.data.doc.tags }} "#{{ t }}" {{ end }})") ==
        R"(["#new","#sale"])");
  CHECK(Render("{{ range _, x := [] }} x {{ end }}") == "[]");
  // Nested ranges, inner binders shadowing outer ones.
  CHECK(Render("{{ range i, x := [[1,2],[3]] }} {{ range i, y := x }} [{{i}}, {{y}}] {{ end }} {{ "
               "end }}") == "[[[0,1],[1,2]],[[0,3]]]");
  CHECK(Render("{{ range i, x := $body.data.doc.meta }} x {{ end }}") ==
        "error: line 1, column 1: range needs an array, not an object");
  CHECK(Render("{{ range i, x := $body.data.nothing }} x {{ end }}") ==
        "error: line 1, column 1: range needs an array, not null");
  // A binder is known only inside its range.
  CHECK(Render("[{{ range _, x := [1] }} x {{ end }}, {{ x }}]") ==
        "error: line 1, column 42: unknown name 'x' (known: $, $body, $base_url)");
}

TEST_CASE("kriti: functions") {
  SUBCASE("strings") {
    CHECK(Render("{{ toUpper($body.data.doc.name) }}") == "\"CAFÉ CRÈME\"");
    CHECK(Render("{{ toLower 'ÀB Ω' }}") == "\"àb ω\"");
    CHECK(Render("{{ toTitle('hello wORLD, élan-vital 1st') }}") ==
          "\"Hello World, Élan-Vital 1St\"");
    CHECK(Render("{{ toCaseFold('Straße ΣΑΣ') }}") == "\"strasse σασ\"");
    CHECK(Render("{{ toUpper('ß') }}") == "\"SS\"");
    CHECK(Render("{{ escapeUri('a b/c?d=é&~-._') }}") == "\"a%20b%2Fc%3Fd%3D%C3%A9%26~-._\"");
    CHECK(Render("{{ toUpper 1 }}") ==
          "error: line 1, column 4: toUpper: expected a string, not a number");
    CHECK(Render("{{ escapeUri(null) }}") ==
          "error: line 1, column 4: escapeUri: expected a string, not null");
  }
  SUBCASE("not, empty, size") {
    CHECK(Render("[not(true), not false]") == "[false,true]");
    CHECK(Render("{{ not 1 }}") ==
          "error: line 1, column 4: not: expected a boolean, not a number");
    CHECK(
        Render(
            R"([empty([]), empty({}), empty(" \t"), empty("x"), empty(0), empty(0.0e5), empty(2), empty(null), empty([1])])") ==
        "[true,true,true,false,true,true,false,true,false]");
    CHECK(Render("{{ empty true }}") ==
          "error: line 1, column 4: empty: a boolean is neither empty nor not");
    CHECK(
        Render(
            R"([size([1,2]), size({"a":1}), size("héllo"), size(12.50), size(true), size(null)])") ==
        "[2,1,5,12.50,1,0]");
    CHECK(Render("{{ size $body.data.doc.tags }}") == "2");
  }
  SUBCASE("head, tail, inverse") {
    CHECK(Render(R"([head([1,2]), head("éa"), tail([1,2,3]), tail("éab"), tail([]), tail("")])") ==
          R"([1,"é",[2,3],"ab",[],""])");
    CHECK(Render("{{ head [] }}") == "error: line 1, column 4: head: an empty array has no head");
    CHECK(Render("{{ head '' }}") == "error: line 1, column 4: head: an empty string has no head");
    CHECK(Render("{{ head 1 }}") ==
          "error: line 1, column 4: head: expected an array or a string, not a number");
    CHECK(Render("{{ tail {} }}") ==
          "error: line 1, column 4: tail: expected an array or a string, not an object");
    CHECK(
        Render(
            R"([inverse([1,2,3]), inverse("aé😀"), inverse(4), inverse(true), inverse(null), inverse({"a":1})])") ==
        R"([[3,2,1],"😀éa",0.25,false,null,{"a":1}])");
    CHECK(Render("{{ inverse 0 }}") ==
          "error: line 1, column 4: inverse: 1/0 is not a finite number");
  }
  SUBCASE("concat, toPairs, fromPairs, removeNulls") {
    CHECK(Render(R"({{ concat [[1,2],[3],[]] }})") == "[1,2,3]");
    CHECK(Render(R"({{ concat ["a", "b", "é"] }})") == R"("abé")");
    CHECK(Render(R"({{ concat [{"a":1,"b":2}, {"b":3,"c":4}] }})") == R"({"a":1,"b":3,"c":4})");
    CHECK(Render("{{ concat [] }}") == "[]");
    CHECK(Render(R"({{ concat [[1], "a"] }})") ==
          "error: line 1, column 4: concat: expected an array of arrays, of strings or of objects");
    CHECK(Render(R"({{ concat {{ range i, x := [5, 6] }} [{{ i }}, {{ x }}] {{ end }} }})") ==
          "[0,5,1,6]");
    CHECK(Render("{{ toPairs $body.data.doc.meta }}") == R"([["color","red"],["a b",1]])");
    CHECK(Render(R"({{ fromPairs [["a", 1], ["b", [2]], ["a", 3]] }})") == R"({"a":3,"b":[2]})");
    CHECK(Render("{{ fromPairs(toPairs($body.data.find)) }}") == R"({"id":7})");
    CHECK(Render(R"({{ fromPairs [[1, 2]] }})") ==
          "error: line 1, column 4: fromPairs: expected an array of [key, value] pairs with string "
          "keys; item 0 is not one");
    CHECK(Render("{{ toPairs [] }}") ==
          "error: line 1, column 4: toPairs: expected an object, not an array");
    CHECK(Render("{{ removeNulls [1, null, [null], null] }}") == "[1,[null]]");
    CHECK(Render("{{ removeNulls {} }}") ==
          "error: line 1, column 4: removeNulls: expected an array, not an object");
  }
}

TEST_CASE("kriti: functions, ranges and conditions compose as in kriti-lang's examples") {
  constexpr std::string_view kStaff =
      R"([{"uid": "A-1", "name": "ada", "pets": [1, 2], "kind": "cat", "tags": []},)"
      R"( {"uid": "B-2", "name": "bob", "pets": [], "kind": "dog", "tags": ["x"]},)"
      R"( {"uid": "C-3", "name": "cy", "pets": [3], "kind": "eel", "tags": ["y"]}])";
  const std::string t = R"({
    "people": {{ removeNulls
      {{ range i, p := $ }}
        {{ if i >= 1 }}
          {{ fromPairs [["id", {{ toLower p.uid }}], ["pets", {{ size p.pets }}],
                        ["kind", {{ toUpper (head p.kind) }}], ["has_tags", {{ not (empty p.tags) }}],
                        ["name", {{ toTitle (inverse p.name) }}], ["rest", {{ tail p.name }}]] }}
        {{ else }} null {{ end }}
      {{ end }} }},
    "missing": [{{ $[0].nothing }}, {{ $[0]['nothing'] }}, {{ $[99] }}, {{ $[99]?.uid }},
                {{ $[0].nothing?.deeper }}, {{ $[0].nothing?.deeper ?? true }}]
  })";
  CHECK(Render(t, kStaff) ==
        R"({"people":[{"id":"b-2","pets":0,"kind":"D","has_tags":true,"name":"Bob","rest":"ob"},)"
        R"({"id":"c-3","pets":1,"kind":"E","has_tags":true,"name":"Yc","rest":"y"}],)"
        R"("missing":[null,null,null,null,null,true]})");
}

TEST_CASE("kriti: objects with many members keep the last of repeated keys") {
  std::string t = "{";
  for (int i = 0; i < 40; ++i)
    t += "\"k" + std::to_string(i % 20) + "\": " + std::to_string(i) + ",";
  t += "\"end\": {{ $session_variables }}}";
  std::string want = "{";
  for (int i = 0; i < 20; ++i)
    want += "\"k" + std::to_string(i) + "\":" + std::to_string(i + 20) + ",";
  want += "\"end\":null}";
  CHECK(Render(t) == want);
}

TEST_CASE("kriti: comparisons count the values they visit against the step limit") {
  std::string big = "[";
  for (int i = 0; i < 5000; ++i) big += i == 0 ? "[1,2,3]" : ",[1,2,3]";
  big += "]";
  Limits few;
  few.max_steps = 10000;
  // 3 × 5000 × 4 values compared: past the limit although the template is tiny.
  CHECK(Render("[{{ $ == $ }}, {{ $ == $ }}, {{ $ == $ }}]", big, Mode::kJson, "", few)
            .find("the template takes more than 10000 steps") != std::string::npos);
  CHECK(Render("{{ $ == $ }}", big) == "true");
}

TEST_CASE("kriti: parse errors give the line and the column in characters") {
  CHECK(Render("{\"a\": 1,\n \"b\": }") == "error: line 2, column 7: expected a value, found '}'");
  CHECK(Render("{\"é\": [1 2]}") == "error: line 1, column 10: expected ',' or ']', found '2'");
  CHECK(Render("{{ $bdy.id }}") ==
        "error: line 1, column 4: unknown name '$bdy' (known: $, $body, $base_url)");
  CHECK(Render("{{ nosuch(1) }}") ==
        "error: line 1, column 4: unknown name 'nosuch' (known: $, $body, $base_url)");
  CHECK(Render("\"abc") == "error: line 1, column 1: unterminated string");
  CHECK(Render("007") == "error: line 1, column 1: a number cannot start with 0");
  // A literal a JSON reader would refuse (found by kriti_fuzz).
  CHECK(Render("[1, 4e0000000004444443]") == "error: line 1, column 5: a number out of range");
  CHECK(Render("[1e308, 1e-400]") == "[1e308,1e-400]");
  CHECK(Render("{{ 1 }} 2") ==
        "error: line 1, column 9: expected the end of the template, found '2'");
  CHECK(Render("{{ toUpper }}") ==
        "error: line 1, column 12: expected an argument for toUpper, found '}'");
  CHECK(Render("{{ range i, size := [] }} 1 {{ end }}") ==
        "error: line 1, column 13: 'size' is a function");
  CHECK(Render("@") == "error: line 1, column 1: unexpected '@'");
  // A token shown in an error stays on one line (found by kriti_fuzz).
  CHECK(Render("{{ $ 'a\nb\tcdefghijklmnopqrstuvwxyz' }}") ==
        "error: line 1, column 6: expected '}}' to close the expression, found "
        "''a\\x0ab\\x09cdefghijklmnopqrstu...'");
  CHECK(Render(std::string("\"\xff\"")) == "error: line 1, column 2: invalid UTF-8");
  CHECK(Render("") == "error: line 1, column 1: expected a value, found the end of the template");
}

TEST_CASE("kriti: the input is read with json.h's bounds; its errors say input") {
  CHECK(Render("1", "{").starts_with("error: input: $body: not JSON"));
  std::string deep(600, '[');
  deep += std::string(600, ']');
  CHECK(Render("1", deep) == "error: input: $body: nested deeper than 512 levels");
  // A template may be rendered many times over inputs bound once.
  auto t = Parse("{{ $body.data.doc.id }}", Mode::kJson);
  REQUIRE(t.ok());
  auto in = Input::Bind(Bindings{kBody, ""});
  REQUIRE(in.ok());
  for (int i = 0; i < 3; ++i) CHECK(*kriti::Render(**t, *in) == "7");
}

// The parts of $body each template needs (Render above also checks every
// template of this file both ways).
TEST_CASE("kriti: a body read for some templates builds only what they read, checked whole") {
  auto parse = [](std::string_view text, Mode mode = Mode::kJson) {
    auto t = Parse(text, mode);
    REQUIRE_MESSAGE(t.ok(), text);
    return *t;
  };
  auto render = [](const auto& t, const Result<Input>& in) {
    REQUIRE(in.ok());
    auto r = kriti::Render(*t, *in);
    return r.ok() ? *r : "error: " + r.error();
  };
  const auto id = parse("{{ $body.data.doc.id }}");
  const auto url =
      parse("https://x.example/{{ $body['data']?.col }}/{{ $body.type }}", Mode::kString);
  const auto tags = parse("{{ range i, t := $body.data.doc.tags }} {{ t }} {{ end }}");
  const auto find = parse("{{ $body.data.find }}");
  const auto keyed = parse("{{ $body.data.doc[$body.data.col] }}");
  BodyPaths paths;
  paths.Add(*id);
  paths.Add(*url);
  paths.Add(*tags);
  const auto in = Input::Bind(Bindings{kBody, ""}, &paths);
  CHECK(render(id, in) == "7");
  CHECK(render(url, in) == "https://x.example/products/DB_INSERT");
  CHECK(render(tags, in) == R"(["new","sale"])");
  // What none of them reads is not there: a template the paths were not
  // made from finds null.
  CHECK(render(find, in) == "null");
  CHECK(render(parse("{{ size $body.data.doc }}"), in) == "2");  // id and tags only
  // A lookup by a computed key reads the whole value it looks in.
  paths.Add(*keyed);
  const auto all_doc = Input::Bind(Bindings{kBody, ""}, &paths);
  CHECK(render(parse("{{ size $body.data.doc }}"), all_doc) == "8");
  CHECK(render(find, all_doc) == "null");
  BodyPaths whole;
  whole.Add(*parse("{{ $ }}"));
  CHECK(render(parse("{{ $ }}"), Input::Bind(Bindings{kBody, ""}, &whole)) == kBody);

  // The parts left out are still checked: the same errors as a whole read.
  std::string deep = R"({"data": {"doc": {"id": 1}}, "skipped": )";
  deep += std::string(600, '[') + std::string(600, ']') + "}";
  auto bad = Input::Bind(Bindings{deep, ""}, &paths);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error() == "input: $body: nested deeper than 512 levels");
  bad = Input::Bind(Bindings{R"({"skipped": ["\udc00"], "data": 1})", ""}, &paths);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().starts_with("input: $body: invalid UTF-8"));
  const std::string raw_bad = "{\"skipped\": \"\xff\"}";
  bad = Input::Bind(Bindings{raw_bad, ""}, &paths);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().starts_with("input: $body: invalid UTF-8"));
  bad = Input::Bind(Bindings{R"({"skipped": {"a": [1, 2}, "data": 1})", ""}, &paths);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().starts_with("input: $body: not JSON"));
  // Repeated keys: the last one, as in a whole read; skipped values of any
  // shape between them.
  const auto repeated = Input::Bind(
      Bindings{R"({"data": {"doc": {"id": 1}}, "x": [{"data": 5}], "data": {"doc": {"id": 2}}})",
               ""},
      &paths);
  CHECK(render(id, repeated) == "2");
  // Another body's shape: an array or a string where an object was looked for.
  CHECK(render(id, Input::Bind(Bindings{R"({"data": [1, {"doc": 3}]})", ""}, &paths)) ==
        "error: line 1, column 14: an array's index must be a whole number, not a string");
  CHECK(render(id, Input::Bind(Bindings{R"("text")", ""}, &paths)) ==
        "error: line 1, column 9: cannot look up a key in a string");
}

TEST_CASE("kriti: hostile templates and inputs are bounded") {
  SUBCASE("nesting") {
    std::string deep(200, '[');
    deep += std::string(200, ']');
    CHECK(Render(deep) == "error: line 1, column 129: nested deeper than 128 levels");
    std::string chain = "{{ ";
    for (int i = 0; i < 300; ++i) chain += "null ?? ";
    chain += "1 }}";
    CHECK(Render(chain).starts_with("error: "));
    std::string ors = "{{ true";
    for (int i = 0; i < 300; ++i) ors += " || true";
    ors += " }}";
    CHECK(Render(ors).find("nested deeper than 128 levels") != std::string::npos);
    std::string calls = "{{ ";
    for (int i = 0; i < 300; ++i) calls += "not ";
    calls += "true }}";
    CHECK(Render(calls).find("nested deeper than 128 levels") != std::string::npos);
  }
  SUBCASE("steps: a huge range stops at the step limit") {
    std::string big = "[";
    for (int i = 0; i < 2000; ++i) big += i == 0 ? "0" : ",0";
    big += "]";
    const std::string t =
        "{{ range _, a := $ }} {{ range _, b := $ }} {{ range _, c := $ }} 1 {{ end }} {{ end }} "
        "{{ end }}";
    CHECK(Render(t, big).starts_with("error: line 1, column "));
    Limits few;
    few.max_steps = 1000;
    CHECK(Render("{{ range _, a := $ }} [{{ a }}] {{ end }}", big, Mode::kJson, "", few) ==
          "error: line 1, column 23: the template takes more than 1000 steps");
  }
  SUBCASE("output: a result past the cap is refused") {
    Limits small;
    small.max_output_bytes = 64;
    CHECK(Render("{{ range _, x := [1,2,3,4,5,6,7,8] }} {{ $body.data }} {{ end }}", kBody,
                 Mode::kJson, "",
                 small) == "error: line 1, column 1: the result is longer than 64 bytes");
    CHECK(Render("\"{{ $body.id }}\"", kBody, Mode::kString, "", small) == "\"42\"");
  }
  SUBCASE("memory: strings doubled in a loop stop at the budget") {
    Limits small;
    small.max_output_bytes = 1024;
    const std::string t =
        R"({{ range _, x := [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20] }} {{ concat [$body.s, $body.s, $body.s, $body.s] }} {{ end }})";
    const std::string input = R"({"s": ")" + std::string(20000, 'x') + "\"}";
    CHECK(Render(t, input, Mode::kJson, "", small).find("the template builds more than") !=
          std::string::npos);
  }
  SUBCASE("a template longer than the cap") {
    std::string t(300 * 1024, ' ');
    t += "1";
    CHECK(Render(t) == "error: line 1, column 1: the template is longer than 262144 bytes");
  }
}

}  // namespace
}  // namespace walhook::kriti
